"""Repositories: the records the engine keeps, each query scoped by merchant.

Written against the ``DocumentStore`` port, so the same code runs on MongoDB in production and
on the embedded store by default.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from engine.adapters.secrets import SecretBox, hash_api_key, mask, new_api_key
from engine.domain.channels import Channel
from engine.domain.conversation import MerchantProfile
from engine.services.ports import Document, DocumentStore

MERCHANTS = "merchants"
CHANNELS = "channels"
PRODUCTS = "products"
KNOWLEDGE = "knowledge"
JOBS = "jobs"
MESSAGES = "messages"
# Deleted records whose vectors are still to be removed (engine.services.indexing.tombstone).
TOMBSTONES = "index_tombstones"
# Records per bulk write: big enough to amortise a round trip, small enough that the embedded
# store (one event loop) interleaves a live turn's reads within ~100 ms of an import.
UPSERT_WAVE = 200
DELIVERIES = "deliveries"


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


class Records:
    def __init__(self, store: DocumentStore, box: SecretBox) -> None:
        self._store = store
        self._box = box

    async def ensure_indexes(self) -> None:
        await self._store.collection(MERCHANTS).create_index([("api_key_hash", 1)], unique=True)
        await self._store.collection(CHANNELS).create_index([("merchant_id", 1)])
        await self._store.collection(PRODUCTS).create_index(
            [("merchant_id", 1), ("sku", 1)], unique=True
        )
        # Keyset pages of the admin API's product list (sort _id; optional category filter).
        await self._store.collection(PRODUCTS).create_index([("merchant_id", 1), ("_id", 1)])
        await self._store.collection(PRODUCTS).create_index(
            [("merchant_id", 1), ("category", 1), ("_id", 1)]
        )
        await self._store.collection(KNOWLEDGE).create_index([("merchant_id", 1), ("doc_id", 1)])
        for name in (PRODUCTS, KNOWLEDGE):
            # The lexical index's freshness check (newest change per merchant) and the
            # indexer's sweep for records not indexed yet (IndexReconciler).
            await self._store.collection(name).create_index(
                [("merchant_id", 1), ("updated_at", -1)]
            )
            await self._store.collection(name).create_index([("index_state", 1)])
        await self._store.collection(TOMBSTONES).create_index([("merchant_id", 1)])
        await self._store.collection(JOBS).create_index([("merchant_id", 1)])
        await self._store.collection(MESSAGES).create_index(
            [("merchant_id", 1), ("conversation_key", 1), ("at", 1)]
        )

    # -- merchants ---------------------------------------------------------------------------
    async def create_merchant(self, name: str, default_language: str) -> tuple[str, str]:
        merchant_id = new_id("m")
        api_key = new_api_key()
        await self._store.collection(MERCHANTS).insert_one(
            {
                "_id": merchant_id,
                "name": name,
                "default_language": default_language,
                "api_key_hash": hash_api_key(api_key),
                "created_at": time.time(),
            }
        )
        return merchant_id, api_key

    async def merchant_by_api_key(self, api_key: str) -> Document | None:
        return await self._store.collection(MERCHANTS).find_one(
            {"api_key_hash": hash_api_key(api_key)}
        )

    async def merchant(self, merchant_id: str) -> Document | None:
        return await self._store.collection(MERCHANTS).find_one({"_id": merchant_id})

    async def profile(self, merchant_id: str) -> MerchantProfile | None:
        doc = await self.merchant(merchant_id)
        if doc is None:
            return None
        return MerchantProfile(merchant_id, str(doc["name"]), str(doc["default_language"]))

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
        await self._store.collection(CHANNELS).insert_one(
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
        doc = await self._store.collection(CHANNELS).find_one({"_id": channel_id})
        if doc is None or doc.get("deleted_at"):
            return None
        return self._channel_from(doc)

    def _secrets_of(self, doc: Document) -> dict[str, str]:
        enc: dict[str, str] = dict(doc.get("secrets_enc") or {})
        for legacy in ("bot_token", "secret_token"):  # documents written by the spine
            if doc.get(f"{legacy}_enc") and legacy not in enc:
                enc[legacy] = str(doc[f"{legacy}_enc"])
        return {k: self._box.decrypt(str(v)) for k, v in enc.items()}

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
        docs = await self._store.collection(CHANNELS).find(
            {"merchant_id": merchant_id}, sort=[("created_at", 1)], limit=1000
        )
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
        doc = await self._store.collection(CHANNELS).find_one(
            {"_id": channel_id, "merchant_id": merchant_id}
        )
        if doc is None or doc.get("deleted_at"):
            return None
        channel = self._channel_from(doc)
        await self._store.collection(CHANNELS).update_one(
            {"_id": channel_id, "merchant_id": merchant_id},
            {
                "$set": {
                    "deleted_at": time.time(),
                    "secrets_enc": {},
                    "bot_token_enc": "",
                    "secret_token_enc": "",
                }
            },
        )
        return channel

    # -- delivery records (keyed by the provider's message id) -----------------------------
    async def record_delivery(
        self,
        merchant_id: str,
        channel_id: str,
        provider_message_id: str,
        fields: dict[str, Any],
    ) -> None:
        """Upsert what we know about one provider message (sent, delivered, read, reaction...).

        Status webhooks can arrive before the send call returned, so this is an upsert from
        either side; later facts are ``$set`` on top, never a second record.
        """
        if not provider_message_id:
            return
        await self._store.collection(DELIVERIES).update_one(
            {"_id": f"{channel_id}:{provider_message_id}"},
            {
                "$set": {
                    **fields,
                    "merchant_id": merchant_id,
                    "channel_id": channel_id,
                    "provider_message_id": provider_message_id,
                    "updated_at": time.time(),
                }
            },
            upsert=True,
        )

    async def delivery(
        self, merchant_id: str, channel_id: str, provider_message_id: str
    ) -> Document | None:
        return await self._store.collection(DELIVERIES).find_one(
            {"_id": f"{channel_id}:{provider_message_id}", "merchant_id": merchant_id}
        )

    # -- catalog and knowledge ---------------------------------------------------------------
    async def upsert_product(self, merchant_id: str, doc: Document) -> None:
        sku = str(doc["sku"])
        body = {**doc, "merchant_id": merchant_id, "updated_at": time.time()}
        body.pop("_id", None)
        await self._store.collection(PRODUCTS).update_one(
            {"_id": f"{merchant_id}:{sku}"}, {"$set": body}, upsert=True
        )

    async def upsert_knowledge(self, merchant_id: str, doc: Document) -> None:
        body = {**doc, "merchant_id": merchant_id, "updated_at": time.time()}
        body.pop("_id", None)
        await self._store.collection(KNOWLEDGE).update_one(
            {"_id": f"{merchant_id}:{doc['doc_id']}"}, {"$set": body}, upsert=True
        )

    async def upsert_many(self, collection: str, merchant_id: str, docs: list[Document]) -> None:
        """Upsert by ``_id`` in bulk waves: one store round trip per wave, not per record."""
        coll = self._store.collection(collection)
        now = time.time()
        for start in range(0, len(docs), UPSERT_WAVE):
            await coll.bulk_upsert(
                [
                    (
                        {"_id": d["_id"], "merchant_id": merchant_id},
                        {
                            "$set": {
                                **{k: v for k, v in d.items() if k != "_id"},
                                "merchant_id": merchant_id,
                                "updated_at": now,
                            }
                        },
                    )
                    for d in docs[start : start + UPSERT_WAVE]
                ]
            )

    async def count_products(self, merchant_id: str) -> int:
        return await self._store.collection(PRODUCTS).count_documents({"merchant_id": merchant_id})

    # -- jobs --------------------------------------------------------------------------------
    async def create_job(self, merchant_id: str, kind: str, total: int, errors: list[Any]) -> str:
        job_id = new_id("job")
        await self._store.collection(JOBS).insert_one(
            {
                "_id": job_id,
                "merchant_id": merchant_id,
                "kind": kind,
                "status": "running",
                "progress": {"total": total, "stored": 0, "indexed": 0},
                "errors": errors,
                "created_at": time.time(),
                "updated_at": time.time(),
            }
        )
        return job_id

    async def update_job(self, job_id: str, **fields: Any) -> None:
        sets = {
            f"progress.{k}" if k in {"stored", "indexed", "total"} else k: v
            for k, v in fields.items()
        }
        sets["updated_at"] = time.time()
        await self._store.collection(JOBS).update_one({"_id": job_id}, {"$set": sets})

    async def job(self, merchant_id: str, job_id: str) -> Document | None:
        return await self._store.collection(JOBS).find_one(
            {"_id": job_id, "merchant_id": merchant_id}
        )

    # -- messages ----------------------------------------------------------------------------
    async def record_message(self, merchant_id: str, doc: Document) -> None:
        """Idempotent by ``_id``: a replayed turn overwrites, never duplicates."""
        await self._store.collection(MESSAGES).replace_one(
            {"_id": doc["_id"]}, {**doc, "merchant_id": merchant_id}, upsert=True
        )
        await self.touch_conversation(merchant_id, doc)

    # -- conversations ----------------------------------------------------------------------
    @property
    def documents(self) -> DocumentStore:
        """The store itself, for the admin API's own repositories (same port, same scoping)."""
        return self._store

    async def touch_conversation(self, merchant_id: str, message: Document) -> None:
        """Keep the conversation summary the agents' inbox lists, next to each message.

        A replayed message only moves ``last_message_at``; counters are bounded by the replay
        rate, so the summary stays correct enough for an inbox without a second write path.
        """
        key = str(message.get("conversation_key") or "")
        if not key:
            return
        at = float(message.get("at") or time.time())
        _, channel_id, customer_id = [*key.split(":", 2), "", ""][:3]
        inbound = message.get("direction") == "in"
        sets: dict[str, Any] = {
            "last_message_at": at,
            "last_text": str(message.get("text") or "")[:200],
            "updated_at": time.time(),
        }
        if message.get("handoff"):
            sets["status"] = "pending"
            sets["handoff"] = True
        mins = {"first_in_at": at} if inbound else {"first_reply_at": at}
        await self._store.collection(CONVERSATIONS).update_one(
            {"_id": conversation_id(key), "merchant_id": merchant_id},
            {
                "$set": sets,
                "$min": mins,
                "$inc": {"message_count": 1, "inbound_count" if inbound else "outbound_count": 1},
                "$setOnInsert": {
                    "conversation_key": key,
                    "channel_id": channel_id,
                    "customer_id": customer_id,
                    "created_at": at,
                    "labels": [],
                    "assignee": None,
                    "paused": False,
                    **({} if message.get("handoff") else {"status": "open"}),
                },
            },
            upsert=True,
        )


CONVERSATIONS = "conversations"


def conversation_id(conversation_key: str) -> str:
    """Opaque, URL-safe id of a conversation (keys hold channel and customer ids)."""
    import hashlib

    return "cv_" + hashlib.blake2b(conversation_key.encode(), digest_size=10).hexdigest()
