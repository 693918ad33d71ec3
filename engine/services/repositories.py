"""Repositories: the records the engine keeps, one port per aggregate, with named queries.

Use cases and HTTP handlers say what they want (``repos.users.by_email(email)``,
``repos.conversations.page(merchant_id, filters, limit=…, after=…)``); how a database spells
it lives behind these Protocols, in ``engine.adapters.repositories`` (one implementation over a
small table gateway with a SQLite and a MongoDB adapter). Records stay plain dicts where the
API returns dicts; their ``_id`` is always a string we chose, so they cross Ray and JSON as-is.

Tenant isolation: every method takes ``merchant_id`` and never answers with another merchant's
record, except the few global lookups the product needs before it knows the merchant, each
named for it: an API key's hash, an e-mail at login, an invitation's hash, a channel by id for
its webhook, and a job by id for the import worker that created it.

Pages are keyset pages on ``(sort field, _id)``: ``after`` is the :data:`Keyset` of the last
record of the previous page (``engine.http.paging`` turns it into the opaque API cursor), so a
page never shifts when records are inserted before it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from engine.services.ports import Document

__all__ = [
    "ApiKeyRepository",
    "AuditRepository",
    "CartRepository",
    "CatalogRepository",
    "ChannelRepository",
    "ConversationFilter",
    "ConversationRepository",
    "DeliveryRepository",
    "GapRepository",
    "JobRepository",
    "Keyset",
    "KnowledgeRepository",
    "LeadRepository",
    "LedgerRepository",
    "MerchantRepository",
    "MessageRepository",
    "NoteRepository",
    "OrderRepository",
    "Page",
    "PaymentEventRepository",
    "PaymentProviderRepository",
    "PaymentRepository",
    "ProductRepository",
    "RecordStore",
    "Repositories",
    "SettlementRepository",
    "TombstoneRepository",
    "UserRepository",
]

# (sort value, _id) of the last record of a page; the value is None for pages sorted by _id.
Keyset = tuple[Any, str]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list: the records, and where the next page starts (None: no more)."""

    items: list[Document]
    after: Keyset | None


@dataclass(frozen=True, slots=True)
class ConversationFilter:
    """The agents' inbox filters; ``text`` is a case-insensitive substring of the last message
    or the customer id."""

    channel_id: str | None = None
    status: str | None = None
    assignee: str | None = None
    label: str | None = None
    text: str | None = None


class MerchantRepository(Protocol):
    async def create(self, merchant: Document) -> None:
        """Raises ``DuplicateKey`` when the id or the API key hash exists."""
        ...

    async def get(self, merchant_id: str) -> Document | None: ...

    async def by_api_key_hash(self, key_hash: str) -> Document | None:
        """Global: the merchant a server API key belongs to."""
        ...

    async def update_profile(self, merchant_id: str, changes: Document) -> Document | None: ...

    async def replace_api_key_hash(
        self, merchant_id: str, old_hash: str, new_hash: str, at: float
    ) -> bool:
        """Compare-and-set: False when the root key changed meanwhile (a concurrent rotation
        won), so two rotations never both hand out a key and leave only one working."""
        ...

    async def delete(self, merchant_id: str) -> bool: ...

    async def page(self, *, limit: int, after: Keyset | None) -> Page:
        """Global: every merchant by id, for work that runs for each of them (settlement)."""
        ...


class UserRepository(Protocol):
    async def create(self, user: Document) -> None:
        """Raises ``DuplicateKey`` when the e-mail is taken (by any merchant)."""
        ...

    async def get(self, merchant_id: str, user_id: str) -> Document | None: ...

    async def exists(self, merchant_id: str, user_id: str) -> bool: ...

    async def by_email(self, email: str) -> Document | None:
        """Global: login and signup know an e-mail, not a merchant."""
        ...

    async def by_invite_hash(self, invite_hash: str) -> Document | None:
        """Global: an invitation link carries only its token."""
        ...

    async def accept_invite(self, user_id: str, invite_hash: str, password_hash: str) -> bool:
        """Compare-and-set: True only for the one request that used this invitation."""
        ...

    async def set_role(self, merchant_id: str, user_id: str, role: str) -> bool: ...

    async def replace_password_hash(
        self, merchant_id: str, user_id: str, old_hash: str, new_hash: str
    ) -> bool:
        """Compare-and-set: a password changed meanwhile is not overwritten."""
        ...

    async def count_owners(self, merchant_id: str) -> int: ...

    async def delete(self, merchant_id: str, user_id: str) -> bool: ...

    async def page(self, merchant_id: str, *, limit: int, after: Keyset | None) -> Page:
        """Newest first."""
        ...


class ApiKeyRepository(Protocol):
    async def create(self, key: Document) -> None: ...

    async def get(self, merchant_id: str, key_id: str) -> Document | None: ...

    async def exists(self, merchant_id: str, key_id: str) -> bool: ...

    async def by_hash(self, key_hash: str) -> Document | None:
        """Global: resolving a bearer key to its merchant."""
        ...

    async def revoke(self, merchant_id: str, key_id: str, at: float) -> Document | None:
        """The key after revocation, or None when this merchant has no such key."""
        ...

    async def page(self, merchant_id: str, *, limit: int, after: Keyset | None) -> Page:
        """Newest first."""
        ...


class AuditRepository(Protocol):
    async def append(self, entry: Document) -> None: ...

    async def page(self, merchant_id: str, *, limit: int, after: Keyset | None) -> Page:
        """Newest first (ids start with the time in milliseconds)."""
        ...


class ChannelRepository(Protocol):
    async def create(self, channel: Document) -> None: ...

    async def get(self, channel_id: str) -> Document | None:
        """Global: a webhook names only its channel id (the record names its merchant)."""
        ...

    async def get_owned(self, merchant_id: str, channel_id: str) -> Document | None: ...

    async def for_merchant(self, merchant_id: str, *, limit: int) -> list[Document]:
        """Oldest first, disconnected ones included (callers skip ``deleted_at``)."""
        ...

    async def mark_deleted(self, merchant_id: str, channel_id: str, at: float) -> bool:
        """Erase the secrets and mark the channel deleted; the id stays taken."""
        ...


class DeliveryRepository(Protocol):
    async def record(
        self, merchant_id: str, channel_id: str, provider_message_id: str, fields: Document
    ) -> None:
        """Upsert what is known about one provider message; later facts land on top."""
        ...

    async def get(
        self, merchant_id: str, channel_id: str, provider_message_id: str
    ) -> Document | None: ...


class CatalogRepository(Protocol):
    """Products and knowledge documents: merchant content the indexer keeps in the vectors."""

    async def create(self, record: Document) -> None:
        """Raises ``DuplicateKey`` when the id (or a product's SKU) exists."""
        ...

    async def get(self, merchant_id: str, record_id: str) -> Document | None: ...

    async def exists(self, merchant_id: str, record_id: str) -> bool: ...

    async def update(self, merchant_id: str, record_id: str, changes: Document) -> Document | None:
        """Set fields; the record after the change, or None when there is none."""
        ...

    async def delete(self, merchant_id: str, record_id: str) -> bool: ...

    async def upsert_many(self, merchant_id: str, records: list[Document], at: float) -> int:
        """Create or update by ``_id`` (fields set, ``updated_at`` = ``at``), in bulk waves."""
        ...

    async def page(self, merchant_id: str, *, limit: int, after: Keyset | None) -> Page:
        """By ``_id`` ascending (an export walks the whole catalogue this way)."""
        ...

    async def count(self, merchant_id: str) -> int: ...

    async def newest_change(self, merchant_id: str) -> float | None:
        """The latest ``updated_at`` (with :meth:`count`: has anything changed?)."""
        ...

    def scan(self, merchant_id: str, *, batch: int = 2000) -> AsyncIterator[list[Document]]:
        """Every record of the merchant in pages of ``batch`` (building a lexical index)."""
        ...

    async def pending(
        self, merchant_id: str | None, *, after_id: str | None, limit: int
    ) -> list[Document]:
        """Records not indexed yet, by ``_id`` (of one merchant, or all for the sweep)."""
        ...

    async def mark_indexed(
        self, merchant_id: str, record_id: str, rev: Any, changes: Document
    ) -> bool:
        """Compare-and-set on the revision: an edit made while indexing stays pending."""
        ...


class ProductRepository(CatalogRepository, Protocol):
    async def by_sku(self, merchant_id: str, sku: str) -> Document | None: ...

    async def page_filtered(
        self,
        merchant_id: str,
        *,
        category: str | None,
        in_stock: bool | None,
        limit: int,
        after: Keyset | None,
    ) -> Page:
        """By ``_id`` ascending, optionally one category and/or stock state."""
        ...

    async def categories(self, merchant_id: str, *, limit: int) -> list[tuple[str, int]]:
        """Category names with their product counts, most products first, then by name."""
        ...


class KnowledgeRepository(CatalogRepository, Protocol):
    pass


class TombstoneRepository(Protocol):
    async def add(self, tombstone: Document) -> None: ...

    async def batch(self, merchant_id: str | None, *, limit: int) -> list[Document]:
        """Some tombstones (of one merchant, or of all)."""
        ...

    async def remove(self, merchant_id: str, tombstone_id: str) -> None: ...


class JobRepository(Protocol):
    async def create(self, job: Document) -> None: ...

    async def update(self, job_id: str, changes: Document) -> None:
        """By id alone: the import worker that created the job reports on it."""
        ...

    async def get(self, merchant_id: str, job_id: str) -> Document | None: ...


class MessageRepository(Protocol):
    async def record(self, merchant_id: str, message: Document) -> None:
        """Idempotent by ``_id``: a replayed turn overwrites, never duplicates."""
        ...

    async def page(
        self, merchant_id: str, conversation_key: str, *, limit: int, after: Keyset | None
    ) -> Page:
        """A conversation's messages, newest first."""
        ...

    async def since(self, merchant_id: str, since: float, *, limit: int) -> list[Document]:
        """Messages at or after ``since`` (analytics), at most ``limit``."""
        ...


class ConversationRepository(Protocol):
    async def touch(self, merchant_id: str, message: Document) -> None:
        """Fold one recorded message into its conversation's summary (created on first)."""
        ...

    async def get(self, merchant_id: str, conversation_id: str) -> Document | None: ...

    async def exists(self, merchant_id: str, conversation_id: str) -> bool: ...

    async def update(
        self, merchant_id: str, conversation_id: str, changes: Document
    ) -> Document | None: ...

    async def page(
        self,
        merchant_id: str,
        filters: ConversationFilter,
        *,
        limit: int,
        after: Keyset | None,
    ) -> Page:
        """Most recent message first."""
        ...

    async def active_since(
        self, merchant_id: str, since: float, *, channel_id: str | None, limit: int
    ) -> list[Document]:
        """Conversations with a message at or after ``since`` (analytics), at most ``limit``."""
        ...


class NoteRepository(Protocol):
    async def add(self, note: Document) -> None: ...

    async def for_conversation(
        self, merchant_id: str, conversation_id: str, *, limit: int
    ) -> list[Document]:
        """Oldest first."""
        ...


class CartRepository(Protocol):
    async def save(self, merchant_id: str, cart: Document) -> None:
        """Create or replace the fields of the conversation's cart projection."""
        ...

    async def remove(self, merchant_id: str, cart_id: str) -> None: ...

    async def get(self, merchant_id: str, cart_id: str) -> Document | None: ...

    async def page(
        self, merchant_id: str, *, channel_id: str | None, limit: int, after: Keyset | None
    ) -> Page:
        """Most recently changed first."""
        ...


class OrderRepository(Protocol):
    async def create(self, order: Document) -> None: ...

    async def get(self, merchant_id: str, order_id: str) -> Document | None: ...

    async def for_phone(self, merchant_id: str, phone: str, *, limit: int) -> list[Document]:
        """Newest first; ``phone`` already normalised."""
        ...

    async def for_conversation(
        self, merchant_id: str, conversation_key: str, *, limit: int
    ) -> list[Document]:
        """Newest first."""
        ...

    async def set_status(
        self, merchant_id: str, order_id: str, expected: str, status: str, at: float
    ) -> Document | None:
        """Compare-and-set: None when the status is no longer ``expected`` (or no order)."""
        ...

    async def page(
        self,
        merchant_id: str,
        *,
        status: str | None,
        phone: str | None,
        limit: int,
        after: Keyset | None,
    ) -> Page:
        """Newest first."""
        ...

    async def since(self, merchant_id: str, since: float, *, limit: int) -> list[Document]: ...

    async def by_platform_number(
        self, merchant_id: str, number: str, *, limit: int
    ) -> list[Document]:
        """Orders a store platform numbered so, newest first."""
        ...

    async def upsert_platform(
        self, merchant_id: str, order_id: str, fields: Document, *, on_insert: Document
    ) -> None:
        """A store platform's order: ``fields`` (its status and totals) written on every event,
        ``on_insert`` only when the order is new to us."""
        ...


class LeadRepository(Protocol):
    async def create(self, lead: Document) -> None: ...

    async def get(self, merchant_id: str, lead_id: str) -> Document | None: ...

    async def update(
        self, merchant_id: str, lead_id: str, changes: Document
    ) -> Document | None: ...

    async def for_order(self, merchant_id: str, order_id: str) -> list[Document]: ...

    async def page(
        self, merchant_id: str, *, status: str | None, limit: int, after: Keyset | None
    ) -> Page:
        """Newest first."""
        ...


class GapRepository(Protocol):
    async def bump(
        self, merchant_id: str, gap_id: str, question: str, facts: Document, at: float
    ) -> None:
        """Count one more unanswered ask of this question; ``facts`` are the latest details."""
        ...

    async def top(self, merchant_id: str, *, limit: int) -> list[Document]:
        """Most asked first, then most recent."""
        ...


class LedgerRepository(Protocol):
    """Money movements (``engine.domain.ledger``): written once, never changed."""

    async def record(self, entry: Document) -> bool:
        """Append the entry; False (and nothing written) when its ``_id`` is already there,
        which is what a redelivered provider event looks like."""
        ...

    async def between(
        self,
        merchant_id: str,
        start: float,
        end: float,
        *,
        limit: int,
        after: Keyset | None,
    ) -> Page:
        """Entries with ``start <= occurred_at < end``, oldest first (then by ``_id``)."""
        ...


class IntegrationRepository(Protocol):
    """Store-platform connections (Salla, Zid, Shopify): credentials only ever encrypted, the
    sync's progress on the record itself."""

    async def create(self, integration: Document) -> None: ...

    async def get(self, integration_id: str) -> Document | None:
        """Global: a store webhook names only the integration."""
        ...

    async def get_owned(self, merchant_id: str, integration_id: str) -> Document | None: ...

    async def for_merchant(self, merchant_id: str, *, limit: int) -> list[Document]:
        """Oldest first, disconnected ones included (the caller filters)."""
        ...

    async def update(
        self, merchant_id: str, integration_id: str, changes: Document
    ) -> Document | None: ...

    async def update_if(
        self, merchant_id: str, integration_id: str, expected: Document, changes: Document
    ) -> Document | None:
        """Compare-and-set: applied only while every ``expected`` field still has its value
        (a token refresh names the token revision it replaces); None when it does not."""
        ...

    async def connected(self, *, after_id: str | None, limit: int) -> list[Document]:
        """Every merchant's connected integrations by id (the periodic sync's walk)."""
        ...

    async def bump(self, merchant_id: str, integration_id: str, field: str, by: int) -> None:
        """Add ``by`` to a counter (atomic: concurrent webhooks each count)."""
        ...


class StoreEventRepository(Protocol):
    """Store webhooks already applied, so a platform's redelivery is a no-op."""

    async def seen(self, merchant_id: str, event_key: str) -> bool: ...

    async def record(self, entry: Document) -> bool:
        """False (nothing written) when the event's ``_id`` is already there."""
        ...

    async def prune(self, before: float, *, limit: int) -> int:
        """Forget up to ``limit`` events recorded before ``before`` (platforms stop
        redelivering after days); how many were forgotten."""


class SettlementRepository(Protocol):
    """Daily settlements (``engine.domain.settlement``), one per (merchant, date), keyed
    ``f"{merchant_id}:{date}"``: the key is what makes a settlement happen once, whatever
    runs it and however often."""

    async def insert(self, settlement: Document) -> bool:
        """Insert-if-absent: False (and nothing written) when that date has one already."""
        ...

    async def get(self, merchant_id: str, date: str) -> Document | None: ...

    async def replace_failed(
        self, merchant_id: str, date: str, changes: Document
    ) -> Document | None:
        """Compare-and-set a ``failed`` settlement to ``changes`` (a retry); None when the
        date has no failed settlement (it completed meanwhile, or never ran)."""
        ...

    async def page(self, merchant_id: str, *, limit: int, after: Keyset | None) -> Page:
        """Newest date first."""
        ...

    async def between(
        self, merchant_id: str, first: str, last: str, *, limit: int
    ) -> list[Document]:
        """Settlements dated ``first <= date <= last`` (ISO dates), newest first, at most
        ``limit``."""


class PaymentRepository(Protocol):
    """A merchant's payments: one per order, named by it, so a replayed request or chat turn
    finds the payment it made instead of asking the provider for a second."""

    async def create(self, payment: Document) -> None:
        """Raises ``DuplicateKey`` when the id exists."""
        ...

    async def get(self, merchant_id: str, payment_id: str) -> Document | None: ...

    async def by_provider_ref(
        self, merchant_id: str, provider: str, provider_ref: str
    ) -> Document | None:
        """The payment a provider's invoice/charge id belongs to (webhooks name that id)."""
        ...

    async def update(
        self, merchant_id: str, payment_id: str, changes: Document, *, expected: str | None
    ) -> Document | None:
        """Set fields; compare-and-set on ``status`` when ``expected`` is given. The record
        after the change, or None (no such payment, or its status moved meanwhile)."""
        ...

    async def claim(
        self, merchant_id: str, payment_id: str, expected: str, claim: str, at: float
    ) -> bool:
        """Compare-and-set on ``claim`` of a payment that has no link yet: True for the one
        caller that may ask the provider for it now (two checkouts of one order must not make
        two invoices)."""
        ...


class PaymentProviderRepository(Protocol):
    """Each merchant's payment provider (kind, api_base, encrypted credentials)."""

    async def put(self, merchant_id: str, config: Document) -> None:
        """Create or replace the merchant's provider."""
        ...

    async def get(self, merchant_id: str) -> Document | None: ...


class PaymentEventRepository(Protocol):
    """Verified provider webhooks, recorded before they are acknowledged and applied after:
    a crash between the two leaves a ``recorded`` event that a sweep applies again."""

    async def record(self, event: Document) -> bool:
        """False (nothing written) when the event's ``_id`` is already there."""
        ...

    async def get(self, merchant_id: str, event_id: str) -> Document | None: ...

    async def mark_applied(self, merchant_id: str, event_id: str, at: float) -> None: ...

    async def unapplied(self, *, limit: int) -> list[Document]:
        """Global, oldest id first: the events whose effects may not all have happened."""
        ...


class RecordStore(Protocol):
    """The database under the repositories: schema and lifecycle only."""

    async def ensure_schema(self) -> None:
        """Create the tables/collections and the declared indexes (idempotent)."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Repositories:
    """Every repository of one process, over one :class:`RecordStore`."""

    store: RecordStore
    merchants: MerchantRepository
    users: UserRepository
    api_keys: ApiKeyRepository
    audit: AuditRepository
    channels: ChannelRepository
    deliveries: DeliveryRepository
    products: ProductRepository
    knowledge: KnowledgeRepository
    tombstones: TombstoneRepository
    jobs: JobRepository
    messages: MessageRepository
    conversations: ConversationRepository
    notes: NoteRepository
    carts: CartRepository
    orders: OrderRepository
    leads: LeadRepository
    gaps: GapRepository
    ledger: LedgerRepository
    integrations: IntegrationRepository
    store_events: StoreEventRepository
    settlements: SettlementRepository
    payments: PaymentRepository
    payment_providers: PaymentProviderRepository
    payment_events: PaymentEventRepository

    def catalog(self, kind: str) -> CatalogRepository:
        """``products`` or ``knowledge`` by name (the import and index paths carry the name)."""
        if kind == "products":
            return self.products
        if kind == "knowledge":
            return self.knowledge
        raise ValueError(f"not a catalogue kind: {kind!r}")

    async def ensure_indexes(self) -> None:
        await self.store.ensure_schema()

    async def close(self) -> None:
        await self.store.close()


class RecordKeeping(Protocol):
    """The record-keeping the turn projector and the indexer need (``Records`` is one)."""

    @property
    def repos(self) -> Repositories: ...

    async def record_message(self, merchant_id: str, doc: Document) -> None: ...

    async def update_job(self, job_id: str, **fields: Any) -> None: ...

    async def upsert_many(
        self, collection: str, merchant_id: str, docs: list[Document]
    ) -> None: ...
