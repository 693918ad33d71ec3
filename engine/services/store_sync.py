"""Keeping a merchant's catalogue and orders in step with their store platform.

* **Catalogue sync** walks the platform's pages (each kind's own pagination) and lands the
  products exactly like an import does: the record and "not indexed yet" in one write
  (record-as-outbox, ``pending_fields``), then a nudge to the indexer. A product that did not
  change is not written, so a periodic run re-embeds nothing; a product the platform no longer
  lists is removed through a tombstone first, like an admin delete.
* **Rate limits**: a 429 is waited out for its ``Retry-After`` (bounded: a longer wait ends the
  run, the next periodic run resumes) and the platform's remaining-quota headers pause between
  pages (``StoreKind.pause_after``), so a sync stays under the bucket instead of bouncing on it.
* **Tokens** are refreshed before they expire, under one lock per integration in this process
  and a compare-and-set on the record's token revision across processes: Salla's refresh
  tokens are single-use, so two refreshes racing would leave one of them holding a dead token.
* **Webhook subscriptions** (``engine.services.store_subscriptions``) are made at the start of
  a pass until the platform holds them all, so a connect needs nothing pasted into the
  platform's dashboard, and removed (best effort) at disconnect.
* **Webhooks** are verified on the raw body first, then applied, then remembered: applying is
  idempotent (an upsert), so a crash between the two makes the redelivery apply again rather
  than be lost, and a redelivery after that is a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from connectors.stores import registry
from connectors.stores.base import (
    MAX_RETRY_AFTER_S,
    ORDER,
    PRODUCT_DELETE,
    PRODUCT_UPSERT,
    UNINSTALLED,
    MalformedStorePayload,
    StoreEvent,
    StoreKind,
    StoreRequest,
    StoreResponse,
    Tokens,
    retry_after,
)
from engine.domain import catalog
from engine.domain.catalog import PRODUCTS, Product
from engine.domain.integrations import (
    DISCONNECTED,
    FAILED,
    SYNCED,
    SYNCING,
    WEBHOOKS_SUBSCRIBED,
    Integration,
    platform_order_id,
)
from engine.services.catalog_admin import IndexNudge
from engine.services.indexing import pending_fields, tombstone
from engine.services.ports import Document, StoreHttp, StoreUnreachable, SyncFailed
from engine.services.repositories import Repositories
from engine.services.store_subscriptions import WebhookSubscriptions
from observability import metrics

log = logging.getLogger(__name__)

# Consecutive 429s one page may get before the run gives up (the next run resumes).
MAX_RATE_LIMITED: Final = 8
# Fields of a product record the platform owns: a change in any of them is a re-index.
_PRODUCT_FIELDS: Final = tuple(Product.__dataclass_fields__)
# How long one process may hold an integration's refresh lease (a refresh is one HTTP call),
# and how often a process waiting for another's refresh looks at the record again.
REFRESH_LEASE_S: Final = 30.0
REFRESH_POLL_S: Final = 0.1
# How long a store event is remembered (platforms stop redelivering within two days).
EVENT_MEMORY_S: Final = 7 * 24 * 3600.0


class IntegrationVault(Protocol):
    """Integrations with their credentials decrypted (the adapter holds the at-rest key)."""

    async def get(self, integration_id: str) -> Integration | None: ...

    async def claim_refresh(self, integration: Integration, now: float, lease_s: float) -> bool:
        """The refresh lease on the record: one process at a time spends a refresh token."""
        ...

    async def set_tokens(self, integration: Integration, tokens: Tokens) -> Integration | None:
        """Store the new pair iff the record still has ``integration.token_rev`` (and drop
        the refresh lease)."""
        ...

    async def disconnect(self, merchant_id: str, integration_id: str, at: float) -> bool: ...


@dataclass(frozen=True, slots=True)
class SyncBounds:
    interval_s: float = 900.0
    refresh_margin_s: float = 600.0
    max_products: int = catalog.MAX_ROWS
    max_retry_after_s: float = MAX_RETRY_AFTER_S


@dataclass(frozen=True, slots=True)
class SyncResult:
    outcome: str  # ok | failed | disconnected | running (another pass is under way)
    products: int
    removed: int
    reason: str | None = None


class StoreSync:
    def __init__(
        self,
        repos: Repositories,
        vault: IntegrationVault,
        http: StoreHttp,
        indexer: IndexNudge,
        *,
        accounts_bases: Mapping[str, str],
        clients: Mapping[str, Mapping[str, str]],
        bounds: SyncBounds = SyncBounds(),
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        webhook_base: str = "",
    ) -> None:
        """``webhook_base`` is our public base URL: with it, each pass first makes sure the
        platform delivers the integration's webhooks there (without it, nothing is
        subscribed)."""
        self._repos = repos
        self._vault = vault
        self._http = http
        self._indexer = indexer
        self._accounts = dict(accounts_bases)
        self._clients = {k: dict(v) for k, v in clients.items()}
        self._bounds = bounds
        self._sleep = sleep
        self._clock = clock
        self._locks: dict[str, asyncio.Lock] = {}
        self._running: set[str] = set()
        self.webhooks = WebhookSubscriptions(
            repos,
            http,
            self.fresh,
            base_url=webhook_base,
            clock=clock,
        )

    # -- catalogue ------------------------------------------------------------------------------
    async def sync(self, integration_id: str) -> SyncResult:
        """One full pass over the platform's catalogue (a second call for the same integration
        while one runs returns at once: the running pass covers it)."""
        if integration_id in self._running:
            return SyncResult("running", 0, 0)
        self._running.add(integration_id)
        try:
            return await self._sync(integration_id)
        finally:
            self._running.discard(integration_id)

    async def _sync(self, integration_id: str) -> SyncResult:
        integration = await self._vault.get(integration_id)
        if integration is None or integration.status == DISCONNECTED:
            return SyncResult("disconnected", 0, 0)
        spec = _spec(integration)
        started = self._clock()
        await self._progress(integration, {"status": SYNCING, "attempted_at": started})
        if self.webhooks.enabled and integration.webhooks.get("status") != WEBHOOKS_SUBSCRIBED:
            # Before the walk: an edit made while the pages are read arrives as a webhook
            # (a page older than it does not undo it, see ``_land``).
            await self.webhooks.ensure(integration)
            integration = await self._vault.get(integration_id) or integration
        seen: set[str] = set()
        try:
            await self._walk(integration, spec, seen)
            removed = await self._remove_unlisted(integration, seen)
        except SyncFailed as failed:
            await self._progress(integration, {"status": FAILED, "sync.last_error": failed.reason})
            metrics.STORE_SYNC.labels(spec.kind, "failed").inc()
            log.warning(
                "store sync failed",
                extra={
                    "integration_id": integration.id,
                    "kind": spec.kind,
                    "reason": failed.reason,
                },
            )
            return SyncResult("failed", len(seen), 0, failed.reason)
        now = self._clock()
        await self._progress(
            integration,
            {
                "status": SYNCED,
                "synced_at": now,
                "sync.products": len(seen),
                "sync.last_error": None,
                "sync.removed": removed,
            },
        )
        metrics.STORE_SYNC.labels(spec.kind, "ok").inc()
        metrics.STORE_PRODUCTS_SYNCED.labels(spec.kind).inc(len(seen))
        return SyncResult("ok", len(seen), removed)

    async def _walk(self, integration: Integration, spec: StoreKind, seen: set[str]) -> None:
        cursor: str | None = None
        while True:
            integration = await self.fresh(integration)
            request = spec.page_request(integration.api_base, integration.credentials, cursor)
            asked_at = self._clock()
            response = await self._paged_call(integration, spec, request, cursor)
            try:
                page = spec.parse_page(response)
            except MalformedStorePayload:
                raise SyncFailed("malformed_page") from None
            await self._land(integration, page.products, seen, older_than=asked_at)
            if len(seen) > self._bounds.max_products:
                raise SyncFailed("too_many_products")
            await self._progress(integration, {"sync.products": len(seen)})
            if page.next_cursor is None:
                return
            if page.next_cursor == cursor:
                raise SyncFailed("malformed_page")
            cursor = page.next_cursor
            pause = spec.pause_after(response.headers, self._clock())
            if pause > 0:
                await self._sleep(min(pause, self._bounds.max_retry_after_s))

    async def unsubscribe(self, integration: Integration) -> bool:
        """Best effort, before the credentials are erased: whether the platform stopped
        delivering to us."""
        if not self.webhooks.enabled:
            return False
        return await self.webhooks.remove(integration)

    async def _paged_call(
        self, integration: Integration, spec: StoreKind, request: StoreRequest, cursor: str | None
    ) -> StoreResponse:
        refreshed = False
        limited = 0
        while True:
            try:
                response = await self._http.send(request)
            except StoreUnreachable:
                raise SyncFailed("unreachable") from None
            if response.status == 200:
                return response
            if response.status == 429:
                limited += 1
                wait = retry_after(response.headers)
                if limited > MAX_RATE_LIMITED or wait > self._bounds.max_retry_after_s:
                    raise SyncFailed("rate_limited")
                await self._sleep(wait)
                continue
            if response.status == 401 and spec.refreshes_tokens and not refreshed:
                refreshed = True
                integration = await self.fresh(integration, force=True)
                request = spec.page_request(integration.api_base, integration.credentials, cursor)
                continue
            if response.status in (401, 403):
                raise SyncFailed("unauthorized")
            raise SyncFailed(f"http_{response.status // 100}xx")

    async def _land(
        self,
        integration: Integration,
        rows: list[dict[str, Any]],
        seen: set[str],
        *,
        older_than: float | None = None,
    ) -> None:
        """Write the products that changed (or are new), each with its pending mark.

        ``older_than`` is when a page was asked for: a record written after that (a webhook
        that arrived while the page was in flight) is newer than the page, so it stays.
        """
        merchant_id = integration.merchant_id
        now = self._clock()
        changed: list[Document] = []
        for row in rows:
            try:
                product = catalog.product_from_mapping(row)
            except ValueError:
                continue
            seen.add(product.sku)
            doc = product.to_doc(merchant_id)
            before = await self._repos.products.get(merchant_id, str(doc["_id"]))
            if before is not None and all(before.get(f) == doc[f] for f in _PRODUCT_FIELDS):
                continue
            written = before.get("updated_at") if before is not None else None
            if older_than is not None and isinstance(written, int | float) and written > older_than:
                continue
            doc.update(pending_fields())
            doc["source"] = integration.kind
            doc["integration_id"] = integration.id
            if before is None:
                doc["created_at"] = now
            changed.append(doc)
        if changed:
            await self._repos.products.upsert_many(merchant_id, changed, now)
            self._indexer.reconcile(merchant_id)

    async def _remove_unlisted(self, integration: Integration, seen: set[str]) -> int:
        merchant_id = integration.merchant_id
        gone: list[Document] = []
        async for batch in self._repos.products.scan(merchant_id):
            gone += [
                d
                for d in batch
                if d.get("integration_id") == integration.id and str(d["sku"]) not in seen
            ]
        for doc in gone:
            await self._remove(merchant_id, doc)
        return len(gone)

    async def _remove(self, merchant_id: str, doc: Document) -> bool:
        vector_ids = catalog.product_vector_ids(str(doc["sku"]))
        await self._repos.tombstones.add(tombstone(PRODUCTS, doc, vector_ids))
        deleted = await self._repos.products.delete(merchant_id, str(doc["_id"]))
        self._indexer.reconcile(merchant_id)
        return deleted

    async def _progress(self, integration: Integration, changes: Document) -> None:
        await self._repos.integrations.update(
            integration.merchant_id, integration.id, {**changes, "updated_at": self._clock()}
        )

    # -- tokens ---------------------------------------------------------------------------------
    def _due(self, integration: Integration) -> bool:
        expires = integration.expires_at
        return expires is not None and expires - self._clock() < self._bounds.refresh_margin_s

    async def fresh(self, integration: Integration, *, force: bool = False) -> Integration:
        """The integration with a token that is not about to expire.

        One refresh per integration at a time in this process (the lock), and the record's
        token revision decides between processes: a refresh that finds the revision changed
        uses the pair the other one stored instead of spending the single-use token again.
        """
        spec = _spec(integration)
        if not spec.refreshes_tokens or not (force or self._due(integration)):
            return integration
        lock = self._locks.setdefault(integration.id, asyncio.Lock())
        async with lock:
            return await self._refresh(spec, integration, force)

    async def _refresh(self, spec: StoreKind, seen: Integration, force: bool) -> Integration:
        deadline = self._clock() + REFRESH_LEASE_S * 2
        while True:
            current = await self._vault.get(seen.id)
            if current is None or current.status == DISCONNECTED:
                raise SyncFailed("disconnected")
            if current.token_rev != seen.token_rev or not (force or self._due(current)):
                return current  # refreshed meanwhile, here or by another process
            if await self._vault.claim_refresh(current, self._clock(), REFRESH_LEASE_S):
                return await self._spend(spec, current)
            if self._clock() > deadline:
                raise SyncFailed("token_refresh_stuck")
            await self._sleep(REFRESH_POLL_S)  # another process is refreshing: use its pair

    async def _spend(self, spec: StoreKind, current: Integration) -> Integration:
        request = spec.refresh_request(
            self._accounts.get(spec.kind, ""),
            current.credentials,
            self._clients.get(spec.kind, {}),
        )
        if request is None:
            return current
        try:
            response = await self._http.send(request)
        except StoreUnreachable:
            raise SyncFailed("token_refresh_unreachable") from None
        if response.status != 200:
            raise SyncFailed("token_refresh_refused")
        try:
            tokens = spec.parse_tokens(response, self._clock())
        except MalformedStorePayload:
            raise SyncFailed("token_refresh_refused") from None
        stored = await self._vault.set_tokens(current, tokens)
        if stored is None:
            raise SyncFailed("disconnected")
        return stored

    # -- webhooks -------------------------------------------------------------------------------
    async def apply_event(self, integration: Integration, event: StoreEvent) -> str:
        """Apply a verified event; the outcome (accepted, duplicate, ignored) for metrics."""
        key = f"{integration.id}:{event.event_id}"
        merchant_id = integration.merchant_id
        if await self._repos.store_events.seen(merchant_id, key):
            return "duplicate"
        outcome = "accepted"
        if event.kind == PRODUCT_UPSERT and event.product is not None:
            if not await self._apply_product(integration, event.product):
                outcome = "ignored"
        elif event.kind == PRODUCT_DELETE and event.sku is not None:
            doc = await self._repos.products.get(
                merchant_id, catalog.product_doc_id(merchant_id, event.sku)
            )
            if doc is not None and doc.get("integration_id") == integration.id:
                await self._remove(merchant_id, doc)
        elif event.kind == ORDER and event.order is not None:
            await self._apply_order(integration, event.order)
        elif event.kind == UNINSTALLED:
            await self._vault.disconnect(merchant_id, integration.id, self._clock())
        else:
            outcome = "ignored"
        await self._repos.store_events.record(
            {"_id": key, "merchant_id": merchant_id, "at": self._clock()}
        )
        return outcome

    async def _apply_product(self, integration: Integration, row: dict[str, Any]) -> bool:
        try:
            catalog.product_from_mapping(row)
        except ValueError:
            return False
        await self._land(integration, [row], set())
        return True

    async def _apply_order(self, integration: Integration, row: dict[str, Any]) -> None:
        now = self._clock()
        order_id = platform_order_id(integration.id, str(row["platform_id"]))
        fields: Document = {
            "status": row["status"],
            "platform_status": row.get("platform_status") or "",
            "platform_order_number": row.get("number") or "",
            "source": integration.kind,
            "integration_id": integration.id,
            "updated_at": now,
        }
        if row.get("phone"):
            fields["phone"] = str(row["phone"])
        total = _number(row.get("total"))
        if total is not None:
            fields["total"] = total
        if row.get("currency"):
            fields["currency"] = str(row["currency"])
        new = await self._repos.orders.get(integration.merchant_id, order_id) is None
        await self._repos.orders.upsert_platform(
            integration.merchant_id,
            order_id,
            fields,
            on_insert={"items": [], "customer": {}, "conversation_key": None, "created_at": now},
        )
        if new:
            await self._repos.integrations.bump(
                integration.merchant_id, integration.id, "sync.orders", 1
            )

    # -- the periodic run -------------------------------------------------------------------------
    async def sweep(self, *, batch: int = 100) -> int:
        """Sync every connected integration whose last pass is older than the interval; how
        many ran. The lag gauge is the stalest integration of each kind, read before the runs
        (what an operator would have seen had nothing caught up); old store events are
        forgotten on the way."""
        now = self._clock()
        await self._repos.store_events.prune(now - EVENT_MEMORY_S, limit=1000)
        due: list[str] = []
        lag = dict.fromkeys(registry.KINDS, 0.0)
        after: str | None = None
        while True:
            docs = await self._repos.integrations.connected(after_id=after, limit=batch)
            for doc in docs:
                since = doc.get("synced_at") or doc.get("created_at")
                age = now - float(since) if isinstance(since, int | float) else 0.0
                kind = str(doc.get("kind"))
                if kind in lag:
                    lag[kind] = max(lag[kind], age)
                # A failing integration waits the interval too (no retry storm on a revoked
                # token); a connected one that never ran is due at once.
                last = doc.get("attempted_at") or doc.get("synced_at")
                if not isinstance(last, int | float) or now - last >= self._bounds.interval_s:
                    due.append(str(doc["_id"]))
            if len(docs) < batch:
                break
            after = str(docs[-1]["_id"])
        for kind, seconds in lag.items():
            metrics.STORE_SYNC_LAG.labels(kind).set(seconds)
        for integration_id in due:
            await self.sync(integration_id)
        return len(due)


def _spec(integration: Integration) -> StoreKind:
    spec = registry.get(integration.kind)
    if spec is None:
        raise SyncFailed("unknown_kind")
    return spec


def _number(value: Any) -> float | None:
    try:
        return None if value is None else round(float(value), 2)
    except (TypeError, ValueError):
        return None
