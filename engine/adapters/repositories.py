"""The repositories of ``engine.services.repositories``, written once over the table gateway.

Each named query is defined here and only here; ``engine.adapters.sqlite`` (embedded, default)
and ``engine.adapters.mongo`` (``MONGO_URL``) run it. :data:`SCHEMA` declares every table and the
indexes its queries walk: an index's fields are the query's equalities followed by its sort
field, so a list page is an index range read that stops after ``limit`` records.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

from engine.adapters.tables import (
    MAX_PAGE,
    Has,
    IndexSpec,
    Order,
    Range,
    Tables,
    TableSpec,
    Text,
    Where,
    get_path,
)
from engine.domain.catalog import KNOWLEDGE, PRODUCTS
from engine.domain.conversation import conversation_id
from engine.services.ports import Document, DuplicateKey
from engine.services.repositories import (
    ConversationFilter,
    Keyset,
    Page,
    Repositories,
)

__all__ = [
    "API_KEYS",
    "AUDIT",
    "CARTS",
    "CHANNELS",
    "CONVERSATIONS",
    "DELIVERIES",
    "GAPS",
    "JOBS",
    "KNOWLEDGE",
    "LEADS",
    "LEDGER",
    "MERCHANTS",
    "MESSAGES",
    "NOTES",
    "ORDERS",
    "PRODUCTS",
    "SCHEMA",
    "SETTLEMENTS",
    "TOMBSTONES",
    "UPSERT_WAVE",
    "USERS",
    "build_repositories",
    "conversation_id",
]

MERCHANTS: Final = "merchants"
USERS: Final = "users"
API_KEYS: Final = "api_keys"
AUDIT: Final = "audit"
CHANNELS: Final = "channels"
DELIVERIES: Final = "deliveries"
TOMBSTONES: Final = "index_tombstones"
JOBS: Final = "jobs"
MESSAGES: Final = "messages"
CONVERSATIONS: Final = "conversations"
NOTES: Final = "conversation_notes"
CARTS: Final = "carts"
ORDERS: Final = "orders"
LEADS: Final = "leads"
GAPS: Final = "knowledge_gaps"
LEDGER: Final = "ledger"
INTEGRATIONS: Final = "integrations"
STORE_EVENTS: Final = "store_events"
SETTLEMENTS: Final = "settlements"
PAYMENTS: Final = "payments"
PAYMENT_PROVIDERS: Final = "payment_providers"
PAYMENT_EVENTS: Final = "payment_events"

# Records per bulk write: one round trip (one transaction) per wave, small enough that a live
# turn's writes are not queued behind an import for long.
UPSERT_WAVE: Final = 200
# Rows per read when a query walks more than one page (scans, analytics windows).
SCAN_BATCH: Final = 2000


def _ix(*fields: str, unique: bool = False) -> IndexSpec:
    return IndexSpec(tuple(fields), unique)


M = "merchant_id"
SCHEMA: Final[tuple[TableSpec, ...]] = (
    TableSpec(MERCHANTS, (_ix("api_key_hash", unique=True),)),
    TableSpec(
        USERS,
        (
            _ix("email", unique=True),
            _ix(M, "created_at"),
            _ix(M, "role"),
            _ix("invite_hash"),
        ),
    ),
    TableSpec(API_KEYS, (_ix("key_hash", unique=True), _ix(M, "created_at"))),
    TableSpec(AUDIT, (_ix(M, "_id"),)),
    TableSpec(CHANNELS, (_ix(M, "created_at"),)),
    TableSpec(DELIVERIES),
    TableSpec(
        PRODUCTS,
        (
            _ix(M, "sku", unique=True),
            _ix(M, "_id"),
            _ix(M, "category", "_id"),
            # The lexical index's freshness check (newest change) and the indexer's sweep.
            _ix(M, "updated_at"),
            _ix("index_state", "_id"),
            _ix(M, "index_state", "_id"),
        ),
    ),
    TableSpec(
        KNOWLEDGE,
        (
            _ix(M, "_id"),
            _ix(M, "updated_at"),
            _ix("index_state", "_id"),
            _ix(M, "index_state", "_id"),
        ),
    ),
    TableSpec(TOMBSTONES, (_ix(M, "_id"),)),
    TableSpec(JOBS),
    TableSpec(MESSAGES, (_ix(M, "conversation_key", "at"), _ix(M, "at"))),
    TableSpec(
        CONVERSATIONS,
        (
            _ix(M, "last_message_at"),
            _ix(M, "status", "last_message_at"),
            _ix(M, "channel_id", "last_message_at"),
            _ix(M, "assignee", "last_message_at"),
            _ix(M, "labels", "last_message_at"),
        ),
        arrays=frozenset({"labels"}),
    ),
    TableSpec(NOTES, (_ix(M, "conversation_id", "_id"),)),
    TableSpec(CARTS, (_ix(M, "updated_at"), _ix(M, "channel_id", "updated_at"))),
    TableSpec(
        ORDERS,
        (
            _ix(M, "created_at"),
            _ix(M, "status", "created_at"),
            _ix(M, "phone", "created_at"),
            _ix(M, "conversation_key", "created_at"),
            _ix(M, "platform_order_number", "created_at"),
        ),
    ),
    TableSpec(LEADS, (_ix(M, "created_at"), _ix(M, "status", "created_at"), _ix(M, "order_id"))),
    TableSpec(GAPS, (_ix(M, "count", "last_at"),)),
    TableSpec(LEDGER, (_ix(M, "occurred_at"),)),
    TableSpec(INTEGRATIONS, (_ix(M, "created_at"), _ix("connected", "_id"))),
    TableSpec(STORE_EVENTS, (_ix("at", "_id"),)),
    TableSpec(SETTLEMENTS, (_ix(M, "date"),)),
    TableSpec(PAYMENTS, (_ix(M, "provider", "provider_ref"), _ix(M, "order_id"))),
    TableSpec(PAYMENT_PROVIDERS),
    TableSpec(PAYMENT_EVENTS, (_ix("state", "_id"),)),
)


def _keyset_of(doc: Document, order: Order) -> Keyset:
    return (None if order.field == "_id" else get_path(doc, order.field), str(doc["_id"]))


async def _page(
    tables: Tables,
    table: str,
    where: Where,
    order: Order,
    *,
    limit: int,
    after: Keyset | None,
    text: Text | None = None,
) -> Page:
    """One page plus whether there is another (one record more is read to know)."""
    if not 1 <= limit < MAX_PAGE:
        raise ValueError(f"limit must be 1..{MAX_PAGE - 1}, got {limit}")
    docs = await tables.page(table, where, order=order, limit=limit + 1, after=after, text=text)
    if len(docs) <= limit:
        return Page(docs, None)
    docs = docs[:limit]
    return Page(docs, _keyset_of(docs[-1], order))


async def _scan(
    tables: Tables, table: str, where: Where, order: Order, *, limit: int
) -> list[Document]:
    """Up to ``limit`` records in ``order``, read in keyset pages of ``SCAN_BATCH``."""
    out: list[Document] = []
    after: Keyset | None = None
    while len(out) < limit:
        want = min(SCAN_BATCH, limit - len(out))
        docs = await tables.page(table, where, order=order, limit=want, after=after)
        out += docs
        if len(docs) < want:
            break
        after = _keyset_of(docs[-1], order)
    return out


NEWEST = Order("created_at", descending=True)
OLDEST_MOVE = Order("occurred_at")


class _Table:
    def __init__(self, tables: Tables, table: str) -> None:
        self._t = tables
        self._name = table

    async def _owned(self, merchant_id: str, record_id: str) -> Document | None:
        return await self._t.get(self._name, record_id, {M: merchant_id})

    async def _exists(self, merchant_id: str, record_id: str) -> bool:
        return await self._owned(merchant_id, record_id) is not None

    async def _update(self, merchant_id: str, record_id: str, changes: Document) -> Document | None:
        return await self._t.patch(self._name, record_id, match={M: merchant_id}, changes=changes)

    async def _delete(self, merchant_id: str, record_id: str) -> bool:
        return await self._t.delete(self._name, record_id, {M: merchant_id})

    async def _insert_once(self, doc: Document) -> bool:
        """Insert-if-absent: False (nothing written) when the ``_id`` is there already."""
        try:
            await self._t.insert(self._name, doc)
        except DuplicateKey:
            return False
        return True


class MerchantRecords(_Table):
    def __init__(self, tables: Tables) -> None:
        super().__init__(tables, MERCHANTS)

    async def create(self, merchant: Document) -> None:
        await self._t.insert(self._name, merchant)

    async def get(self, merchant_id: str) -> Document | None:
        return await self._t.get(self._name, merchant_id)

    async def by_api_key_hash(self, key_hash: str) -> Document | None:
        return await self._t.first(self._name, {"api_key_hash": key_hash})

    async def update_profile(self, merchant_id: str, changes: Document) -> Document | None:
        return await self._t.patch(self._name, merchant_id, changes=changes)

    async def page(self, *, limit: int, after: Keyset | None) -> Page:
        return await _page(self._t, self._name, {}, Order(), limit=limit, after=after)

    async def replace_api_key_hash(
        self, merchant_id: str, old_hash: str, new_hash: str, at: float
    ) -> bool:
        changed = await self._t.patch(
            self._name,
            merchant_id,
            match={"api_key_hash": old_hash},
            changes={"api_key_hash": new_hash, "api_key_rotated_at": at},
        )
        return changed is not None

    async def delete(self, merchant_id: str) -> bool:
        return await self._t.delete(self._name, merchant_id)


class UserRecords(_Table):
    def __init__(self, tables: Tables) -> None:
        super().__init__(tables, USERS)

    async def create(self, user: Document) -> None:
        await self._t.insert(self._name, user)

    async def get(self, merchant_id: str, user_id: str) -> Document | None:
        return await self._owned(merchant_id, user_id)

    async def exists(self, merchant_id: str, user_id: str) -> bool:
        return await self._exists(merchant_id, user_id)

    async def by_email(self, email: str) -> Document | None:
        return await self._t.first(self._name, {"email": email})

    async def by_invite_hash(self, invite_hash: str) -> Document | None:
        return await self._t.first(self._name, {"invite_hash": invite_hash})

    async def accept_invite(self, user_id: str, invite_hash: str, password_hash: str) -> bool:
        changes = {"password_hash": password_hash, "invite_hash": None, "updated_at": time.time()}
        done = await self._t.patch(
            self._name, user_id, match={"invite_hash": invite_hash}, changes=changes
        )
        return done is not None

    async def set_role(self, merchant_id: str, user_id: str, role: str) -> bool:
        changes = {"role": role, "updated_at": time.time()}
        return await self._update(merchant_id, user_id, changes) is not None

    async def replace_password_hash(
        self, merchant_id: str, user_id: str, old_hash: str, new_hash: str
    ) -> bool:
        changes = {"password_hash": new_hash, "updated_at": time.time()}
        done = await self._t.patch(
            self._name, user_id, match={M: merchant_id, "password_hash": old_hash}, changes=changes
        )
        return done is not None

    async def count_owners(self, merchant_id: str) -> int:
        return await self._t.count(self._name, {M: merchant_id, "role": "owner"})

    async def delete(self, merchant_id: str, user_id: str) -> bool:
        return await self._delete(merchant_id, user_id)

    async def page(self, merchant_id: str, *, limit: int, after: Keyset | None) -> Page:
        return await _page(self._t, self._name, {M: merchant_id}, NEWEST, limit=limit, after=after)


class ApiKeyRecords(_Table):
    def __init__(self, tables: Tables) -> None:
        super().__init__(tables, API_KEYS)

    async def create(self, key: Document) -> None:
        await self._t.insert(self._name, key)

    async def get(self, merchant_id: str, key_id: str) -> Document | None:
        return await self._owned(merchant_id, key_id)

    async def exists(self, merchant_id: str, key_id: str) -> bool:
        return await self._exists(merchant_id, key_id)

    async def by_hash(self, key_hash: str) -> Document | None:
        return await self._t.first(self._name, {"key_hash": key_hash})

    async def revoke(self, merchant_id: str, key_id: str, at: float) -> Document | None:
        return await self._update(merchant_id, key_id, {"revoked_at": at})

    async def page(self, merchant_id: str, *, limit: int, after: Keyset | None) -> Page:
        return await _page(self._t, self._name, {M: merchant_id}, NEWEST, limit=limit, after=after)


class AuditRecords(_Table):
    def __init__(self, tables: Tables) -> None:
        super().__init__(tables, AUDIT)

    async def append(self, entry: Document) -> None:
        await self._t.insert(self._name, entry)

    async def page(self, merchant_id: str, *, limit: int, after: Keyset | None) -> Page:
        order = Order("_id", descending=True)
        return await _page(self._t, self._name, {M: merchant_id}, order, limit=limit, after=after)


class ChannelRecords(_Table):
    def __init__(self, tables: Tables) -> None:
        super().__init__(tables, CHANNELS)

    async def create(self, channel: Document) -> None:
        await self._t.insert(self._name, channel)

    async def get(self, channel_id: str) -> Document | None:
        return await self._t.get(self._name, channel_id)

    async def get_owned(self, merchant_id: str, channel_id: str) -> Document | None:
        return await self._owned(merchant_id, channel_id)

    async def for_merchant(self, merchant_id: str, *, limit: int) -> list[Document]:
        return await self._t.page(
            self._name, {M: merchant_id}, order=Order("created_at"), limit=limit
        )

    async def mark_deleted(self, merchant_id: str, channel_id: str, at: float) -> bool:
        erased = {"deleted_at": at, "secrets_enc": {}, "bot_token_enc": "", "secret_token_enc": ""}
        return await self._update(merchant_id, channel_id, erased) is not None


class DeliveryRecords(_Table):
    def __init__(self, tables: Tables) -> None:
        super().__init__(tables, DELIVERIES)

    async def record(
        self, merchant_id: str, channel_id: str, provider_message_id: str, fields: Document
    ) -> None:
        changes = {
            **fields,
            "channel_id": channel_id,
            "provider_message_id": provider_message_id,
            "updated_at": time.time(),
        }
        changes.pop(M, None)
        await self._t.patch(
            self._name,
            f"{channel_id}:{provider_message_id}",
            match={M: merchant_id},
            changes=changes,
            upsert=True,
        )

    async def get(
        self, merchant_id: str, channel_id: str, provider_message_id: str
    ) -> Document | None:
        return await self._owned(merchant_id, f"{channel_id}:{provider_message_id}")


INDEX_STATE = "index_state"
INDEX_REV = "index_rev"
PENDING = "pending"


class CatalogRecords(_Table):
    async def create(self, record: Document) -> None:
        await self._t.insert(self._name, record)

    async def get(self, merchant_id: str, record_id: str) -> Document | None:
        return await self._owned(merchant_id, record_id)

    async def exists(self, merchant_id: str, record_id: str) -> bool:
        return await self._exists(merchant_id, record_id)

    async def update(self, merchant_id: str, record_id: str, changes: Document) -> Document | None:
        return await self._update(merchant_id, record_id, changes)

    async def delete(self, merchant_id: str, record_id: str) -> bool:
        return await self._delete(merchant_id, record_id)

    async def upsert_many(self, merchant_id: str, records: list[Document], at: float) -> int:
        written = 0
        for start in range(0, len(records), UPSERT_WAVE):
            wave = [
                (
                    str(d["_id"]),
                    {
                        **{k: v for k, v in d.items() if k != "_id"},
                        M: merchant_id,
                        "updated_at": at,
                    },
                )
                for d in records[start : start + UPSERT_WAVE]
            ]
            written += await self._t.patch_many(self._name, wave, match={M: merchant_id})
        return written

    async def page(self, merchant_id: str, *, limit: int, after: Keyset | None) -> Page:
        return await _page(self._t, self._name, {M: merchant_id}, Order(), limit=limit, after=after)

    async def count(self, merchant_id: str) -> int:
        return await self._t.count(self._name, {M: merchant_id})

    async def newest_change(self, merchant_id: str) -> float | None:
        docs = await self._t.page(
            self._name, {M: merchant_id}, order=Order("updated_at", descending=True), limit=1
        )
        value = docs[0].get("updated_at") if docs else None
        return float(value) if isinstance(value, int | float) else None

    async def scan(
        self, merchant_id: str, *, batch: int = SCAN_BATCH
    ) -> AsyncIterator[list[Document]]:
        after: Keyset | None = None
        while True:
            docs = await self._t.page(
                self._name, {M: merchant_id}, order=Order(), limit=batch, after=after
            )
            if docs:
                yield docs
            if len(docs) < batch:
                return
            after = (None, str(docs[-1]["_id"]))

    async def pending(
        self, merchant_id: str | None, *, after_id: str | None, limit: int
    ) -> list[Document]:
        where: dict[str, Any] = {INDEX_STATE: PENDING}
        if merchant_id is not None:
            where[M] = merchant_id
        after = None if after_id is None else (None, after_id)
        return await self._t.page(self._name, where, order=Order(), limit=limit, after=after)

    async def mark_indexed(
        self, merchant_id: str, record_id: str, rev: Any, changes: Document
    ) -> bool:
        done = await self._t.patch(
            self._name, record_id, match={M: merchant_id, INDEX_REV: rev}, changes=changes
        )
        return done is not None


class ProductRecords(CatalogRecords):
    def __init__(self, tables: Tables) -> None:
        super().__init__(tables, PRODUCTS)

    async def by_sku(self, merchant_id: str, sku: str) -> Document | None:
        return await self._t.first(self._name, {M: merchant_id, "sku": sku})

    async def page_filtered(
        self,
        merchant_id: str,
        *,
        category: str | None,
        in_stock: bool | None,
        limit: int,
        after: Keyset | None,
    ) -> Page:
        where: dict[str, Any] = {M: merchant_id}
        if category is not None:
            where["category"] = category
        if in_stock is not None:
            where["in_stock"] = in_stock
        return await _page(self._t, self._name, where, Order(), limit=limit, after=after)

    async def categories(self, merchant_id: str, *, limit: int) -> list[tuple[str, int]]:
        # Two more than asked: null and "" (uncategorised) may take places in the top.
        rows = await self._t.count_by(self._name, "category", {M: merchant_id}, limit=limit + 2)
        named = [(str(v), n) for v, n in rows if v not in (None, "")]
        named.sort(key=lambda kv: (-kv[1], kv[0]))
        return named[:limit]


class KnowledgeRecords(CatalogRecords):
    def __init__(self, tables: Tables) -> None:
        super().__init__(tables, KNOWLEDGE)


class TombstoneRecords(_Table):
    def __init__(self, tables: Tables) -> None:
        super().__init__(tables, TOMBSTONES)

    async def add(self, tombstone: Document) -> None:
        await self._t.insert(self._name, tombstone)

    async def batch(self, merchant_id: str | None, *, limit: int) -> list[Document]:
        where = {} if merchant_id is None else {M: merchant_id}
        return await self._t.page(self._name, where, order=Order(), limit=limit)

    async def remove(self, merchant_id: str, tombstone_id: str) -> None:
        await self._delete(merchant_id, tombstone_id)


class JobRecords(_Table):
    def __init__(self, tables: Tables) -> None:
        super().__init__(tables, JOBS)

    async def create(self, job: Document) -> None:
        await self._t.insert(self._name, job)

    async def update(self, job_id: str, changes: Document) -> None:
        await self._t.patch(self._name, job_id, changes=changes)

    async def get(self, merchant_id: str, job_id: str) -> Document | None:
        return await self._owned(merchant_id, job_id)


class MessageRecords(_Table):
    def __init__(self, tables: Tables) -> None:
        super().__init__(tables, MESSAGES)

    async def record(self, merchant_id: str, message: Document) -> None:
        await self._t.put(self._name, {**message, M: merchant_id}, {M: merchant_id})

    async def page(
        self, merchant_id: str, conversation_key: str, *, limit: int, after: Keyset | None
    ) -> Page:
        where = {M: merchant_id, "conversation_key": conversation_key}
        order = Order("at", descending=True)
        return await _page(self._t, self._name, where, order, limit=limit, after=after)

    async def since(self, merchant_id: str, since: float, *, limit: int) -> list[Document]:
        where: Where = {M: merchant_id, "at": Range(gte=since)}
        return await _scan(self._t, self._name, where, Order("at", descending=True), limit=limit)


class ConversationRecords(_Table):
    def __init__(self, tables: Tables) -> None:
        super().__init__(tables, CONVERSATIONS)

    async def touch(self, merchant_id: str, message: Document) -> None:
        """The summary the agents' inbox lists, kept next to each message.

        A replayed message only moves ``last_message_at``; counters are bounded by the replay
        rate, so the summary stays correct enough for an inbox without a second write path.
        """
        key = str(message.get("conversation_key") or "")
        if not key:
            return
        at = float(message.get("at") or time.time())
        _, channel_id, customer_id = [*key.split(":", 2), "", ""][:3]
        inbound = message.get("direction") == "in"
        changes: Document = {
            "last_message_at": at,
            "last_text": str(message.get("text") or "")[:200],
            "updated_at": time.time(),
        }
        if message.get("handoff"):
            changes["status"] = "pending"
            changes["handoff"] = True
        await self._t.patch(
            self._name,
            conversation_id(key),
            match={M: merchant_id},
            changes=changes,
            increments={"message_count": 1, "inbound_count" if inbound else "outbound_count": 1},
            minimums={"first_in_at": at} if inbound else {"first_reply_at": at},
            on_insert={
                "conversation_key": key,
                "channel_id": channel_id,
                "customer_id": customer_id,
                "created_at": at,
                "labels": [],
                "assignee": None,
                "paused": False,
                "status": "open",
            },
            upsert=True,
        )

    async def get(self, merchant_id: str, conversation_id: str) -> Document | None:
        return await self._owned(merchant_id, conversation_id)

    async def exists(self, merchant_id: str, conversation_id: str) -> bool:
        return await self._exists(merchant_id, conversation_id)

    async def update(
        self, merchant_id: str, conversation_id: str, changes: Document
    ) -> Document | None:
        return await self._update(merchant_id, conversation_id, changes)

    async def page(
        self,
        merchant_id: str,
        filters: ConversationFilter,
        *,
        limit: int,
        after: Keyset | None,
    ) -> Page:
        where: dict[str, Any] = {M: merchant_id}
        if filters.channel_id:
            where["channel_id"] = filters.channel_id
        if filters.status:
            where["status"] = filters.status
        if filters.assignee:
            where["assignee"] = filters.assignee
        if filters.label:
            where["labels"] = Has(filters.label)
        text = Text(("last_text", "customer_id"), filters.text) if filters.text else None
        order = Order("last_message_at", descending=True)
        return await _page(self._t, self._name, where, order, limit=limit, after=after, text=text)

    async def active_since(
        self, merchant_id: str, since: float, *, channel_id: str | None, limit: int
    ) -> list[Document]:
        where: dict[str, Any] = {M: merchant_id, "last_message_at": Range(gte=since)}
        if channel_id:
            where["channel_id"] = channel_id
        order = Order("last_message_at", descending=True)
        return await _scan(self._t, self._name, where, order, limit=limit)


class NoteRecords(_Table):
    def __init__(self, tables: Tables) -> None:
        super().__init__(tables, NOTES)

    async def add(self, note: Document) -> None:
        await self._t.insert(self._name, note)

    async def for_conversation(
        self, merchant_id: str, conversation_id: str, *, limit: int
    ) -> list[Document]:
        where = {M: merchant_id, "conversation_id": conversation_id}
        return await self._t.page(self._name, where, order=Order(), limit=limit)


class CartRecords(_Table):
    def __init__(self, tables: Tables) -> None:
        super().__init__(tables, CARTS)

    async def save(self, merchant_id: str, cart: Document) -> None:
        changes = {k: v for k, v in cart.items() if k not in ("_id", M)}
        await self._t.patch(
            self._name, str(cart["_id"]), match={M: merchant_id}, changes=changes, upsert=True
        )

    async def remove(self, merchant_id: str, cart_id: str) -> None:
        await self._delete(merchant_id, cart_id)

    async def get(self, merchant_id: str, cart_id: str) -> Document | None:
        return await self._owned(merchant_id, cart_id)

    async def page(
        self, merchant_id: str, *, channel_id: str | None, limit: int, after: Keyset | None
    ) -> Page:
        where: dict[str, Any] = {M: merchant_id}
        if channel_id:
            where["channel_id"] = channel_id
        order = Order("updated_at", descending=True)
        return await _page(self._t, self._name, where, order, limit=limit, after=after)


class OrderRecords(_Table):
    def __init__(self, tables: Tables) -> None:
        super().__init__(tables, ORDERS)

    async def create(self, order: Document) -> None:
        await self._t.insert(self._name, order)

    async def get(self, merchant_id: str, order_id: str) -> Document | None:
        return await self._owned(merchant_id, order_id)

    async def for_phone(self, merchant_id: str, phone: str, *, limit: int) -> list[Document]:
        where = {M: merchant_id, "phone": phone}
        return await self._t.page(self._name, where, order=NEWEST, limit=limit)

    async def for_conversation(
        self, merchant_id: str, conversation_key: str, *, limit: int
    ) -> list[Document]:
        where = {M: merchant_id, "conversation_key": conversation_key}
        return await self._t.page(self._name, where, order=NEWEST, limit=limit)

    async def set_status(
        self, merchant_id: str, order_id: str, expected: str, status: str, at: float
    ) -> Document | None:
        return await self._t.patch(
            self._name,
            order_id,
            match={M: merchant_id, "status": expected},
            changes={"status": status, "updated_at": at},
        )

    async def page(
        self,
        merchant_id: str,
        *,
        status: str | None,
        phone: str | None,
        limit: int,
        after: Keyset | None,
    ) -> Page:
        where: dict[str, Any] = {M: merchant_id}
        if status:
            where["status"] = status
        if phone:
            where["phone"] = phone
        return await _page(self._t, self._name, where, NEWEST, limit=limit, after=after)

    async def since(self, merchant_id: str, since: float, *, limit: int) -> list[Document]:
        where: Where = {M: merchant_id, "created_at": Range(gte=since)}
        return await _scan(self._t, self._name, where, NEWEST, limit=limit)

    async def by_platform_number(
        self, merchant_id: str, number: str, *, limit: int
    ) -> list[Document]:
        where = {M: merchant_id, "platform_order_number": number}
        return await self._t.page(self._name, where, order=NEWEST, limit=limit)

    async def upsert_platform(
        self, merchant_id: str, order_id: str, fields: Document, *, on_insert: Document
    ) -> None:
        await self._t.patch(
            self._name,
            order_id,
            match={M: merchant_id},
            changes=fields,
            on_insert=on_insert,
            upsert=True,
        )


class LeadRecords(_Table):
    def __init__(self, tables: Tables) -> None:
        super().__init__(tables, LEADS)

    async def create(self, lead: Document) -> None:
        await self._t.insert(self._name, lead)

    async def get(self, merchant_id: str, lead_id: str) -> Document | None:
        return await self._owned(merchant_id, lead_id)

    async def update(self, merchant_id: str, lead_id: str, changes: Document) -> Document | None:
        return await self._update(merchant_id, lead_id, changes)

    async def for_order(self, merchant_id: str, order_id: str) -> list[Document]:
        where = {M: merchant_id, "order_id": order_id}
        return await self._t.page(self._name, where, order=Order(), limit=100)

    async def page(
        self, merchant_id: str, *, status: str | None, limit: int, after: Keyset | None
    ) -> Page:
        where: dict[str, Any] = {M: merchant_id}
        if status:
            where["status"] = status
        return await _page(self._t, self._name, where, NEWEST, limit=limit, after=after)


class GapRecords(_Table):
    def __init__(self, tables: Tables) -> None:
        super().__init__(tables, GAPS)

    async def bump(
        self, merchant_id: str, gap_id: str, question: str, facts: Document, at: float
    ) -> None:
        await self._t.patch(
            self._name,
            gap_id,
            match={M: merchant_id},
            changes={**facts, "last_at": at},
            increments={"count": 1},
            on_insert={"question": question, "first_at": at},
            upsert=True,
        )

    async def top(self, merchant_id: str, *, limit: int) -> list[Document]:
        order = Order("count", descending=True, then="last_at")
        return await self._t.page(self._name, {M: merchant_id}, order=order, limit=limit)


class LedgerRecords(_Table):
    def __init__(self, tables: Tables) -> None:
        super().__init__(tables, LEDGER)

    async def record(self, entry: Document) -> bool:
        return await self._insert_once(entry)

    async def between(
        self,
        merchant_id: str,
        start: float,
        end: float,
        *,
        limit: int,
        after: Keyset | None,
    ) -> Page:
        where: Where = {M: merchant_id, "occurred_at": Range(gte=start, lt=end)}
        return await _page(self._t, self._name, where, OLDEST_MOVE, limit=limit, after=after)


class IntegrationRecords(_Table):
    def __init__(self, tables: Tables) -> None:
        super().__init__(tables, INTEGRATIONS)

    async def create(self, integration: Document) -> None:
        await self._t.insert(self._name, integration)

    async def get(self, integration_id: str) -> Document | None:
        return await self._t.get(self._name, integration_id)

    async def get_owned(self, merchant_id: str, integration_id: str) -> Document | None:
        return await self._owned(merchant_id, integration_id)

    async def for_merchant(self, merchant_id: str, *, limit: int) -> list[Document]:
        return await self._t.page(
            self._name, {M: merchant_id}, order=Order("created_at"), limit=limit
        )

    async def update(
        self, merchant_id: str, integration_id: str, changes: Document
    ) -> Document | None:
        return await self._update(merchant_id, integration_id, changes)

    async def update_if(
        self, merchant_id: str, integration_id: str, expected: Document, changes: Document
    ) -> Document | None:
        return await self._t.patch(
            self._name, integration_id, match={**expected, M: merchant_id}, changes=changes
        )

    async def connected(self, *, after_id: str | None, limit: int) -> list[Document]:
        after = None if after_id is None else (None, after_id)
        return await self._t.page(
            self._name, {"connected": True}, order=Order(), limit=limit, after=after
        )

    async def bump(self, merchant_id: str, integration_id: str, field: str, by: int) -> None:
        await self._t.patch(
            self._name, integration_id, match={M: merchant_id}, changes={}, increments={field: by}
        )


class StoreEventRecords(_Table):
    def __init__(self, tables: Tables) -> None:
        super().__init__(tables, STORE_EVENTS)

    async def seen(self, merchant_id: str, event_key: str) -> bool:
        return await self._exists(merchant_id, event_key)

    async def record(self, entry: Document) -> bool:
        return await self._insert_once(entry)

    async def prune(self, before: float, *, limit: int) -> int:
        old = await self._t.page(
            self._name, {"at": Range(lt=before)}, order=Order("at"), limit=limit
        )
        gone = 0
        for doc in old:
            gone += await self._t.delete(self._name, str(doc["_id"]), {M: doc[M]})
        return gone


NEWEST_DATE = Order("date", descending=True)


class SettlementRecords(_Table):
    def __init__(self, tables: Tables) -> None:
        super().__init__(tables, SETTLEMENTS)

    async def insert(self, settlement: Document) -> bool:
        return await self._insert_once(settlement)

    async def get(self, merchant_id: str, date: str) -> Document | None:
        return await self._owned(merchant_id, f"{merchant_id}:{date}")

    async def replace_failed(
        self, merchant_id: str, date: str, changes: Document
    ) -> Document | None:
        return await self._t.patch(
            self._name,
            f"{merchant_id}:{date}",
            match={M: merchant_id, "status": "failed"},
            changes=changes,
        )

    async def page(self, merchant_id: str, *, limit: int, after: Keyset | None) -> Page:
        return await _page(
            self._t, self._name, {M: merchant_id}, NEWEST_DATE, limit=limit, after=after
        )

    async def between(
        self, merchant_id: str, first: str, last: str, *, limit: int
    ) -> list[Document]:
        where: Where = {M: merchant_id, "date": Range(gte=first, lte=last)}
        return await self._t.page(self._name, where, order=NEWEST_DATE, limit=limit)


class PaymentRecords(_Table):
    def __init__(self, tables: Tables) -> None:
        super().__init__(tables, PAYMENTS)

    async def create(self, payment: Document) -> None:
        await self._t.insert(self._name, payment)

    async def get(self, merchant_id: str, payment_id: str) -> Document | None:
        return await self._owned(merchant_id, payment_id)

    async def by_provider_ref(
        self, merchant_id: str, provider: str, provider_ref: str
    ) -> Document | None:
        where = {M: merchant_id, "provider": provider, "provider_ref": provider_ref}
        return await self._t.first(self._name, where)

    async def update(
        self, merchant_id: str, payment_id: str, changes: Document, *, expected: str | None
    ) -> Document | None:
        match: dict[str, Any] = {M: merchant_id}
        if expected is not None:
            match["status"] = expected
        return await self._t.patch(self._name, payment_id, match=match, changes=changes)

    async def claim(
        self, merchant_id: str, payment_id: str, expected: str, claim: str, at: float
    ) -> bool:
        changed = await self._t.patch(
            self._name,
            payment_id,
            match={M: merchant_id, "claim": expected, "url": ""},
            changes={"claim": claim, "claimed_at": at},
        )
        return changed is not None


class PaymentProviderRecords(_Table):
    def __init__(self, tables: Tables) -> None:
        super().__init__(tables, PAYMENT_PROVIDERS)

    async def put(self, merchant_id: str, config: Document) -> None:
        await self._t.put(self._name, {**config, "_id": merchant_id, M: merchant_id})

    async def get(self, merchant_id: str) -> Document | None:
        return await self._owned(merchant_id, merchant_id)


class PaymentEventRecords(_Table):
    def __init__(self, tables: Tables) -> None:
        super().__init__(tables, PAYMENT_EVENTS)

    async def record(self, event: Document) -> bool:
        return await self._insert_once({**event, "state": "recorded"})

    async def get(self, merchant_id: str, event_id: str) -> Document | None:
        return await self._owned(merchant_id, event_id)

    async def mark_applied(self, merchant_id: str, event_id: str, at: float) -> None:
        await self._update(merchant_id, event_id, {"state": "applied", "applied_at": at})

    async def unapplied(self, *, limit: int) -> list[Document]:
        return await self._t.page(self._name, {"state": "recorded"}, order=Order(), limit=limit)


def build_repositories(tables: Tables) -> Repositories:
    return Repositories(
        store=tables,
        merchants=MerchantRecords(tables),
        users=UserRecords(tables),
        api_keys=ApiKeyRecords(tables),
        audit=AuditRecords(tables),
        channels=ChannelRecords(tables),
        deliveries=DeliveryRecords(tables),
        products=ProductRecords(tables),
        knowledge=KnowledgeRecords(tables),
        tombstones=TombstoneRecords(tables),
        jobs=JobRecords(tables),
        messages=MessageRecords(tables),
        conversations=ConversationRecords(tables),
        notes=NoteRecords(tables),
        carts=CartRecords(tables),
        orders=OrderRecords(tables),
        leads=LeadRecords(tables),
        gaps=GapRecords(tables),
        ledger=LedgerRecords(tables),
        integrations=IntegrationRecords(tables),
        store_events=StoreEventRecords(tables),
        settlements=SettlementRecords(tables),
        payments=PaymentRecords(tables),
        payment_providers=PaymentProviderRecords(tables),
        payment_events=PaymentEventRecords(tables),
    )


def sqlite_repositories(path: Path, **options: Any) -> Repositories:
    """The embedded default: one SQLite file (``DATA_DIR/records.sqlite3``)."""
    from engine.adapters.sqlite import SqliteTables

    return build_repositories(SqliteTables(path, SCHEMA, **options))


def mongo_repositories(url: str, db: str) -> Repositories:
    from engine.adapters.mongo import MongoTables

    return build_repositories(MongoTables.connect(url, db, SCHEMA))
