"""Store-platform integrations at rest: credentials encrypted with the channels' SecretBox,
decrypted only into :class:`~engine.domain.integrations.Integration` values in memory."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any, Final

from connectors.stores.base import Tokens
from engine.adapters.secrets import SecretBox, mask
from engine.domain.identity import new_id
from engine.domain.integrations import (
    CONNECTED,
    DISCONNECTED,
    Integration,
    empty_progress,
    webhook_state,
)
from engine.services.ports import Document
from engine.services.repositories import Repositories

# A merchant connects a handful of stores; the list route reads at most this many.
MAX_INTEGRATIONS: Final = 50


class IntegrationVaultRecords:
    def __init__(self, repos: Repositories, box: SecretBox) -> None:
        self._repos = repos
        self._box = box

    async def create(
        self, merchant_id: str, kind: str, api_base: str, credentials: Mapping[str, str]
    ) -> Integration:
        now = time.time()
        doc: Document = {
            "_id": new_id("in"),
            "merchant_id": merchant_id,
            "kind": kind,
            "api_base": api_base,
            "secrets_enc": {k: self._box.encrypt(v) for k, v in credentials.items() if v},
            "status": CONNECTED,
            "connected": True,
            "sync": empty_progress(),
            "token_rev": secrets.token_hex(8),
            "refresh_lease": "",
            "refresh_lease_until": 0.0,
            "expires_at": None,
            "synced_at": None,
            "created_at": now,
            "updated_at": now,
        }
        await self._repos.integrations.create(doc)
        return self._from(doc)

    async def get(self, integration_id: str) -> Integration | None:
        doc = await self._repos.integrations.get(integration_id)
        return None if doc is None else self._from(doc)

    async def get_owned(self, merchant_id: str, integration_id: str) -> Document | None:
        """The public view of one of the merchant's integrations (secrets masked)."""
        doc = await self._repos.integrations.get_owned(merchant_id, integration_id)
        return None if doc is None else self.public(doc)

    async def for_merchant(self, merchant_id: str) -> list[Document]:
        docs = await self._repos.integrations.for_merchant(merchant_id, limit=MAX_INTEGRATIONS)
        return [self.public(d) for d in docs if d.get("status") != DISCONNECTED]

    async def claim_refresh(self, integration: Integration, now: float, lease_s: float) -> bool:
        """Take the integration's refresh lease (across processes): False while another
        holder's lease runs, or when the tokens changed since ``integration`` was read."""
        doc = await self._repos.integrations.get(integration.id)
        if doc is None or doc.get("token_rev") != integration.token_rev:
            return False
        held = str(doc.get("refresh_lease") or "")
        if held and float(doc.get("refresh_lease_until") or 0.0) > now:
            return False
        claimed = await self._repos.integrations.update_if(
            integration.merchant_id,
            integration.id,
            {"token_rev": integration.token_rev, "refresh_lease": held},
            {"refresh_lease": secrets.token_hex(8), "refresh_lease_until": now + lease_s},
        )
        return claimed is not None

    async def set_tokens(self, integration: Integration, tokens: Tokens) -> Integration | None:
        changes = {
            "refresh_lease": "",
            "refresh_lease_until": 0.0,
            "secrets_enc.access_token": self._box.encrypt(tokens.access_token),
            "secrets_enc.refresh_token": self._box.encrypt(tokens.refresh_token),
            "expires_at": tokens.expires_at,
            "token_rev": secrets.token_hex(8),
            "updated_at": time.time(),
        }
        doc = await self._repos.integrations.update_if(
            integration.merchant_id,
            integration.id,
            {"token_rev": integration.token_rev, "connected": True},
            changes,
        )
        return None if doc is None else self._from(doc)

    async def disconnect(self, merchant_id: str, integration_id: str, at: float) -> bool:
        """The credentials are erased; the record stays so a late webhook finds
        "disconnected" rather than nothing (and never another merchant's integration)."""
        doc = await self._repos.integrations.update_if(
            merchant_id,
            integration_id,
            {"connected": True},
            {
                "status": DISCONNECTED,
                "connected": False,
                "secrets_enc": {},
                "disconnected_at": at,
                "updated_at": at,
            },
        )
        return doc is not None

    def _from(self, doc: Document) -> Integration:
        enc: dict[str, Any] = dict(doc.get("secrets_enc") or {})
        expires = doc.get("expires_at")
        synced = doc.get("synced_at")
        return Integration(
            id=str(doc["_id"]),
            merchant_id=str(doc["merchant_id"]),
            kind=str(doc["kind"]),
            api_base=str(doc.get("api_base") or ""),
            credentials={k: self._box.decrypt(str(v)) for k, v in enc.items() if v},
            status=str(doc.get("status") or CONNECTED),
            sync=dict(doc.get("sync") or empty_progress()),
            token_rev=str(doc.get("token_rev") or ""),
            expires_at=float(expires) if isinstance(expires, int | float) else None,
            synced_at=float(synced) if isinstance(synced, int | float) else None,
            webhooks=webhook_state(doc.get("webhooks")),
        )

    def public(self, doc: Document) -> Document:
        sync = dict(doc.get("sync") or empty_progress())
        enc: dict[str, Any] = dict(doc.get("secrets_enc") or {})
        return {
            "id": str(doc["_id"]),
            "kind": str(doc["kind"]),
            "api_base": str(doc.get("api_base") or ""),
            "status": str(doc.get("status") or CONNECTED),
            "sync": {
                "products": int(sync.get("products") or 0),
                "orders": int(sync.get("orders") or 0),
                "last_error": sync.get("last_error"),
            },
            "synced_at": doc.get("synced_at"),
            "webhooks": webhook_state(doc.get("webhooks")),
            "credentials": {k: mask(self._box.decrypt(str(v))) for k, v in enc.items() if v},
            "created_at": doc.get("created_at"),
        }
