"""Registering an integration's webhooks at its platform, and removing them at disconnect.

A merchant who connects a store expects product and order changes to arrive by themselves, so
the platform is asked to deliver every event we apply (``StoreKind.webhook_topics``) to the
integration's webhook URL. This runs beside the catalogue pass (the indexer actor), never in
the admin request.

* **Idempotent.** The platform's list is read first and only the topics it does not hold for
  our URL are asked for; an "already exists" answer counts as done. A retry after a lost
  answer, or a second pass, makes no duplicate.
* **A failure does not fail the connect.** It is recorded on the integration (``webhooks``:
  status, topics held, a fixed reason, never the platform's words) and the next pass tries
  again until the platform holds every topic.
* **Unsubscribing is best effort**: it runs before the credentials are erased, and whatever
  it meets (a revoked token, an outage) the disconnect goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from connectors.stores import registry
from connectors.stores.base import (
    MalformedStorePayload,
    StoreKind,
    StoreRequest,
    StoreResponse,
    Subscription,
    SubscriptionRefused,
    same_target,
    status_reason,
)
from engine.domain.integrations import (
    WEBHOOKS_FAILED,
    WEBHOOKS_SUBSCRIBED,
    Integration,
    webhook_url,
)
from engine.services.ports import StoreHttp, StoreUnreachable, SyncFailed
from engine.services.repositories import Repositories
from observability import metrics

log = logging.getLogger(__name__)

# One attempt sends at most this many calls (a list, then one per topic); a platform with
# more topics than this is a programming error, not a reason to loop.
MAX_CALLS: Final = 16


class Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ``StoreSync.fresh``: the integration with a usable token (refreshed on ``force``).
Fresh = Callable[..., Awaitable[Integration]]


class WebhookSubscriptions:
    def __init__(
        self,
        repos: Repositories,
        http: StoreHttp,
        fresh: Fresh,
        *,
        base_url: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repos = repos
        self._http = http
        self._fresh = fresh
        self._base_url = base_url
        self._clock = clock

    @property
    def enabled(self) -> bool:
        """Without a base URL of ours there is nothing to point the platform at."""
        return bool(self._base_url)

    def target(self, integration: Integration) -> str:
        return webhook_url(self._base_url, integration.kind, integration.id)

    async def ensure(self, integration: Integration) -> str:
        """Make the platform hold every topic for this integration; the outcome
        (``subscribed`` or ``failed``), recorded on the integration either way."""
        spec = registry.get(integration.kind)
        if spec is None or not spec.webhook_topics:
            return WEBHOOKS_SUBSCRIBED
        try:
            held = await self._subscribe(spec, integration)
        except Refused as refused:
            await self._record(integration, WEBHOOKS_FAILED, 0, refused.reason)
            metrics.STORE_WEBHOOK_SUBSCRIPTIONS.labels(spec.kind, "failed").inc()
            log.warning(
                "store webhook subscription failed",
                extra={
                    "integration_id": integration.id,
                    "kind": spec.kind,
                    "reason": refused.reason,
                },
            )
            return WEBHOOKS_FAILED
        await self._record(integration, WEBHOOKS_SUBSCRIBED, held, None)
        metrics.STORE_WEBHOOK_SUBSCRIPTIONS.labels(spec.kind, "subscribed").inc()
        return WEBHOOKS_SUBSCRIBED

    async def remove(self, integration: Integration) -> bool:
        """Ask the platform to stop delivering to this integration; False when it could not
        be done (logged, never raised: the disconnect goes on)."""
        spec = registry.get(integration.kind)
        if spec is None or not spec.webhook_topics or not integration.credentials:
            return False
        url = self.target(integration)
        try:
            integration, held = await self._held(spec, integration)
            for request in spec.unsubscribe_requests(
                integration.api_base, integration.credentials, url, held
            )[:MAX_CALLS]:
                response = await self._send(request)
                if response.status not in (200, 202, 204, 404):
                    raise Refused(status_reason(response.status))
        except Refused as refused:
            metrics.STORE_WEBHOOK_SUBSCRIPTIONS.labels(spec.kind, "unsubscribe_failed").inc()
            log.warning(
                "store webhook unsubscribe failed",
                extra={
                    "integration_id": integration.id,
                    "kind": spec.kind,
                    "reason": refused.reason,
                },
            )
            return False
        metrics.STORE_WEBHOOK_SUBSCRIPTIONS.labels(spec.kind, "unsubscribed").inc()
        return True

    async def _subscribe(self, spec: StoreKind, integration: Integration) -> int:
        url = self.target(integration)
        integration, held = await self._held(spec, integration)
        topics = spec.webhook_topics[: MAX_CALLS - 1]
        done = 0
        for topic in topics:
            target = spec.subscription_target(url, topic, integration.credentials)
            if any(s.topic == topic and same_target(s.url, target) for s in held):
                done += 1
                continue
            request = spec.subscribe_request(
                integration.api_base, integration.credentials, topic, target
            )
            response = await self._send(request)
            try:
                spec.subscribed(response)
            except SubscriptionRefused as refused:
                raise Refused(refused.reason) from None
            done += 1
        return done

    async def _held(
        self, spec: StoreKind, integration: Integration
    ) -> tuple[Integration, list[Subscription]]:
        """The platform's subscriptions, with one token refresh on a 401 where the platform's
        tokens expire; the integration as it was used (possibly with a new token)."""
        integration = await self._token(integration, force=False)
        response = await self._send(
            spec.subscriptions_request(integration.api_base, integration.credentials)
        )
        if response.status == 401 and spec.refreshes_tokens:
            integration = await self._token(integration, force=True)
            response = await self._send(
                spec.subscriptions_request(integration.api_base, integration.credentials)
            )
        if response.status != 200:
            raise Refused(status_reason(response.status))
        try:
            return integration, spec.parse_subscriptions(response)
        except MalformedStorePayload:
            raise Refused("malformed_answer") from None

    async def _token(self, integration: Integration, *, force: bool) -> Integration:
        try:
            return await self._fresh(integration, force=force)
        except SyncFailed as failed:  # the refresh's own fixed reason
            raise Refused(failed.reason) from None

    async def _send(self, request: StoreRequest) -> StoreResponse:
        try:
            return await self._http.send(request)
        except StoreUnreachable:
            raise Refused("unreachable") from None

    async def _record(
        self, integration: Integration, status: str, topics: int, reason: str | None
    ) -> None:
        now = self._clock()
        await self._repos.integrations.update(
            integration.merchant_id,
            integration.id,
            {
                "webhooks": {
                    "status": status,
                    "topics": topics,
                    "last_error": reason,
                    "attempted_at": now,
                },
                "updated_at": now,
            },
        )
