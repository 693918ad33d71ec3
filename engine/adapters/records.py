"""Records: the use cases the gateway and the actors share, over the repositories.

A thin facade: channel secrets are encrypted here (the repositories only ever see
ciphertext), merchants get their API key here, and a recorded message also updates its
conversation's summary. Everything else is a named query of ``engine.services.repositories``.
"""

from __future__ import annotations

import time
from typing import Any

from connectors import registry
from engine.adapters.repositories import (
    CHANNELS,
    CONVERSATIONS,
    DELIVERIES,
    JOBS,
    KNOWLEDGE,
    MERCHANTS,
    MESSAGES,
    PRODUCTS,
    TOMBSTONES,
    UPSERT_WAVE,
    conversation_id,
)
from engine.adapters.secrets import SecretBox, hash_api_key, mask, new_api_key
from engine.domain.channels import Channel
from engine.domain.conversation import MerchantProfile
from engine.domain.identity import new_id
from engine.services.ports import Document
from engine.services.repositories import Repositories

__all__ = [
    "CHANNELS",
    "CONVERSATIONS",
    "DELIVERIES",
    "JOBS",
    "KNOWLEDGE",
    "MERCHANTS",
    "MESSAGES",
    "PRODUCTS",
    "TOMBSTONES",
    "UPSERT_WAVE",
    "Channel",
    "Records",
    "conversation_id",
    "new_id",
]

# Channels a merchant may connect (a listing is bounded by it).
MAX_CHANNELS = 1000


class Records:
    def __init__(self, repos: Repositories, box: SecretBox) -> None:
        self.repos = repos
        self._box = box

    async def ensure_indexes(self) -> None:
        await self.repos.ensure_indexes()

    # -- merchants ---------------------------------------------------------------------------
    async def create_merchant(self, name: str, default_language: str) -> tuple[str, str]:
        merchant_id = new_id("m")
        api_key = new_api_key()
        await self.repos.merchants.create(
            {
                "_id": merchant_id,
                "name": name,
                "default_language": default_language,
                "api_key_hash": hash_api_key(api_key),
                "created_at": time.time(),
            }
        )
        return merchant_id, api_key

    async def rotate_api_key(self, merchant_id: str) -> tuple[str, str] | None:
        """A new root key in place of the current one, in one compare-and-set write: the old
        key stops resolving the moment this returns. ``(new_key, old_hash)``; None when the
        merchant is gone or a concurrent rotation changed the key first."""
        doc = await self.repos.merchants.get(merchant_id)
        if doc is None or not doc.get("api_key_hash"):
            return None
        old_hash = str(doc["api_key_hash"])
        api_key = new_api_key()
        replaced = await self.repos.merchants.replace_api_key_hash(
            merchant_id, old_hash, hash_api_key(api_key), time.time()
        )
        return (api_key, old_hash) if replaced else None

    async def merchant_by_api_key(self, api_key: str) -> Document | None:
        return await self.repos.merchants.by_api_key_hash(hash_api_key(api_key))

    async def merchant(self, merchant_id: str) -> Document | None:
        return await self.repos.merchants.get(merchant_id)

    async def profile(self, merchant_id: str) -> MerchantProfile | None:
        doc = await self.merchant(merchant_id)
        if doc is None:
            return None
        return MerchantProfile(
            merchant_id,
            str(doc["name"]),
            str(doc["default_language"]),
            str(doc.get("tone") or "")[:200],
        )

    # -- channels ----------------------------------------------------------------------------
    async def create_channel(
        self,
        merchant_id: str,
        kind: str,
        api_base: str,
        bot_token: str = "",
        secret_token: str = "",
        *,
        secrets_: dict[str, str] | None = None,
        config: dict[str, str] | None = None,
    ) -> str:
        """Store a channel; every secret is encrypted with the SecretBox before it is written.

        The Telegram positional form (``bot_token``, ``secret_token``) is kept for callers of
        the spine; other kinds pass ``secrets_`` and non-secret ``config``.
        """
        channel_id = new_id("ch")
        values = dict(secrets_ or {})
        if bot_token:
            values["bot_token"] = bot_token
        if secret_token:
            values["secret_token"] = secret_token
        await self.repos.channels.create(
            {
                "_id": channel_id,
                "merchant_id": merchant_id,
                "kind": kind,
                "api_base": api_base,
                "config": dict(config or {}),
                "secrets_enc": {k: self._box.encrypt(v) for k, v in values.items() if v},
                "created_at": time.time(),
            }
        )
        return channel_id

    async def channel(self, channel_id: str) -> Channel | None:
        doc = await self.repos.channels.get(channel_id)
        if doc is None or doc.get("deleted_at"):
            return None
        return self._channel_from(doc)

    async def channel_kind(self, merchant_id: str, channel_id: str) -> str | None:
        """The kind of a conversation's channel: a built-in one every merchant has (webchat,
        playground) or a connected one of this merchant's; None when it is gone."""
        builtin = registry.builtin(channel_id)
        if builtin is not None:
            return builtin.kind
        channel = await self.channel(channel_id)
        if channel is None or channel.merchant_id != merchant_id:
            return None
        return channel.kind

    def _secrets_of(self, doc: Document) -> dict[str, str]:
        enc: dict[str, str] = dict(doc.get("secrets_enc") or {})
        for legacy in ("bot_token", "secret_token"):  # documents written by the spine
            if doc.get(f"{legacy}_enc") and legacy not in enc:
                enc[legacy] = str(doc[f"{legacy}_enc"])
        return {k: self._box.decrypt(str(v)) for k, v in enc.items() if v}

    def _channel_from(self, doc: Document) -> Channel:
        plain = self._secrets_of(doc)
        config: dict[str, str] = {k: str(v) for k, v in (doc.get("config") or {}).items()}
        return Channel(
            id=str(doc["_id"]),
            merchant_id=str(doc["merchant_id"]),
            kind=str(doc["kind"]),
            api_base=str(doc["api_base"]),
            bot_token=plain.get("bot_token", ""),
            secret_token=plain.get("secret_token", ""),
            access_token=plain.get("access_token", ""),
            app_secret=plain.get("app_secret", ""),
            verify_token=plain.get("verify_token", ""),
            account_id=config.get("account_id", ""),
            api_version=config.get("api_version", ""),
            template_name=config.get("template_name", ""),
            template_language=config.get("template_language", ""),
        )

    async def list_channels(self, merchant_id: str) -> list[Document]:
        """The merchant's channels with every secret masked (never the full value)."""
        docs = await self.repos.channels.for_merchant(merchant_id, limit=MAX_CHANNELS)
        out: list[Document] = []
        for doc in docs:
            if doc.get("deleted_at"):
                continue
            channel = self._channel_from(doc)
            secrets_shown = {
                name: mask(value) for name, value in self._secrets_of(doc).items() if value
            }
            out.append(
                {
                    "id": channel.id,
                    "kind": channel.kind,
                    "api_base": channel.api_base,
                    **{k: v for k, v in (doc.get("config") or {}).items()},
                    "secrets": secrets_shown,
                    "created_at": doc.get("created_at"),
                }
            )
        return out

    async def delete_channel(self, merchant_id: str, channel_id: str) -> Channel | None:
        """Disconnect: the secrets are erased, the id stays (so old outbox entries resolve to
        "channel no longer exists" instead of a stranger's channel)."""
        doc = await self.repos.channels.get_owned(merchant_id, channel_id)
        if doc is None or doc.get("deleted_at"):
            return None
        channel = self._channel_from(doc)
        await self.repos.channels.mark_deleted(merchant_id, channel_id, time.time())
        return channel

    # -- delivery records (keyed by the provider's message id) -----------------------------
    async def record_delivery(
        self, merchant_id: str, channel_id: str, provider_message_id: str, fields: dict[str, Any]
    ) -> None:
        """Upsert what we know about one provider message (sent, delivered, read, reaction...).

        Status webhooks can arrive before the send call returned, so this is an upsert from
        either side; later facts are set on top, never a second record.
        """
        if not provider_message_id:
            return
        await self.repos.deliveries.record(merchant_id, channel_id, provider_message_id, fields)

    async def delivery(
        self, merchant_id: str, channel_id: str, provider_message_id: str
    ) -> Document | None:
        return await self.repos.deliveries.get(merchant_id, channel_id, provider_message_id)

    # -- catalog and knowledge ---------------------------------------------------------------
    async def upsert_many(self, collection: str, merchant_id: str, docs: list[Document]) -> None:
        """Upsert by ``_id`` in bulk waves: one store round trip per wave, not per record."""
        await self.repos.catalog(collection).upsert_many(merchant_id, docs, time.time())

    async def count_products(self, merchant_id: str) -> int:
        return await self.repos.products.count(merchant_id)

    # -- jobs --------------------------------------------------------------------------------
    async def create_job(self, merchant_id: str, kind: str, total: int, errors: list[Any]) -> str:
        job_id = new_id("job")
        now = time.time()
        await self.repos.jobs.create(
            {
                "_id": job_id,
                "merchant_id": merchant_id,
                "kind": kind,
                "status": "running",
                "progress": {"total": total, "stored": 0, "indexed": 0},
                "errors": errors,
                "created_at": now,
                "updated_at": now,
            }
        )
        return job_id

    async def update_job(self, job_id: str, **fields: Any) -> None:
        changes = {
            f"progress.{k}" if k in {"stored", "indexed", "described", "total"} else k: v
            for k, v in fields.items()
        }
        changes["updated_at"] = time.time()
        await self.repos.jobs.update(job_id, changes)

    async def job(self, merchant_id: str, job_id: str) -> Document | None:
        return await self.repos.jobs.get(merchant_id, job_id)

    # -- messages ----------------------------------------------------------------------------
    async def record_message(self, merchant_id: str, doc: Document) -> None:
        """Idempotent by ``_id``: a replayed turn overwrites, never duplicates; the
        conversation's summary follows (the agents' inbox lists it)."""
        await self.repos.messages.record(merchant_id, doc)
        await self.repos.conversations.touch(merchant_id, doc)
