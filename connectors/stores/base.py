"""What every store platform speaks: one :class:`StoreKind` per platform (Salla, Zid, Shopify).

A store kind builds the provider's catalogue-page and token-refresh requests, reads its pages
into our product rows (the shape ``engine.domain.catalog.product_from_mapping`` validates, the
same as an import row), verifies its webhooks on the raw body and turns them into
:class:`StoreEvent`. Pure: no I/O, no engine services; the sync use case
(``engine.services.store_sync``) sends the requests and applies the results.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

# A platform's Retry-After is obeyed up to this many seconds; a longer one ends the run as
# rate-limited (the next periodic sync resumes) instead of holding a worker for minutes.
MAX_RETRY_AFTER_S: Final = 60.0
# No platform answer or event is larger; the transports read tighter bounds before this.
MAX_JSON_BYTES: Final = 16 << 20


class MalformedStorePayload(ValueError):
    """A page or webhook body is not what the platform sends (fixed reason, no remote text)."""


@dataclass(frozen=True, slots=True)
class StoreRequest:
    """One fully built HTTP call to a platform; headers hold tokens, so never printed."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    form: Mapping[str, str] | None = field(default=None, repr=False)
    # A JSON body (a webhook subscription); subscriptions carry secrets, so never printed.
    json: Mapping[str, Any] | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class StoreResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class StorePage:
    """One catalogue page: the product rows (invalid rows already dropped and counted), the
    cursor of the next page (None on the last) and the platform's total when it says one."""

    products: list[dict[str, Any]]
    next_cursor: str | None
    total: int | None = None
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class Subscription:
    """One webhook subscription as the platform lists it: its id (what deletes it), the event
    or topic and the URL it delivers to."""

    id: str
    topic: str
    url: str


class SubscriptionRefused(Exception):
    """A subscription answer that is not a success nor "already there"; ``reason`` is fixed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Event kinds a webhook can turn into.
PRODUCT_UPSERT: Final = "product_upsert"
PRODUCT_DELETE: Final = "product_delete"
ORDER: Final = "order"
UNINSTALLED: Final = "uninstalled"
IGNORED: Final = "ignored"


@dataclass(frozen=True, slots=True)
class StoreEvent:
    """A verified webhook, read: ``event_id`` is what makes a redelivery a no-op."""

    event_id: str
    kind: str
    product: dict[str, Any] | None = None
    sku: str | None = None
    order: dict[str, Any] | None = None


def retry_after(headers: Mapping[str, str], default: float = 1.0) -> float:
    """Seconds to wait from a 429's ``Retry-After`` (delta seconds, possibly fractional)."""
    raw = headers.get("Retry-After") or headers.get("retry-after") or ""
    try:
        value = float(raw)
    except ValueError:
        return default
    if not math.isfinite(value) or value < 0:
        return default
    return value


def json_body(body: bytes) -> Any:
    if len(body) > MAX_JSON_BYTES:
        raise MalformedStorePayload("body too large")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedStorePayload("not JSON") from None


def product_sku(kind: str, platform_id: Any) -> str:
    """Our SKU for a platform product: stable, unique per platform, known from a delete event
    (which carries only the platform id), so the record id follows from the event alone."""
    return f"{kind}-{platform_id}"


def text_of(value: Any, language: str = "ar") -> str:
    """A platform string or a ``{ar, en}`` translation map, as one string."""
    if isinstance(value, Mapping):
        for key in (language, "ar", "en"):
            if isinstance(value.get(key), str) and value[key].strip():
                return str(value[key]).strip()
        for item in value.values():
            if isinstance(item, str) and item.strip():
                return item.strip()
        return ""
    return str(value).strip() if isinstance(value, str | int | float) else ""


def header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), "")
    return value


class StoreKind:
    """A platform's builders and readers. Subclasses set the class attributes and methods."""

    kind: ClassVar[str]
    # Production hosts an ``api_base`` may name (plus the operator's KALEEM_PROVIDER_HOSTS).
    api_hosts: ClassVar[tuple[str, ...]] = ()
    # Credential fields of the connect form, required ones first; all are encrypted at rest.
    required: ClassVar[tuple[str, ...]] = ()
    optional: ClassVar[tuple[str, ...]] = ()
    # Largest page the platform serves.
    page_size: ClassVar[int]
    refreshes_tokens: ClassVar[bool] = False

    def default_api_base(self, credentials: Mapping[str, str]) -> str:
        raise NotImplementedError

    def page_request(
        self, api_base: str, credentials: Mapping[str, str], cursor: str | None
    ) -> StoreRequest:
        raise NotImplementedError

    def parse_page(self, response: StoreResponse) -> StorePage:
        raise NotImplementedError

    def verify(
        self, credentials: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> bool:
        raise NotImplementedError

    def parse_event(
        self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes
    ) -> StoreEvent:
        raise NotImplementedError

    def pause_after(self, headers: Mapping[str, str], now: float) -> float:
        """Seconds to wait before the next page, from the platform's remaining-quota headers
        (0: the bucket has room)."""
        return 0.0

    def refresh_request(
        self, accounts_base: str, credentials: Mapping[str, str], client: Mapping[str, str]
    ) -> StoreRequest | None:
        """The token-refresh call, or None when the platform's tokens do not expire."""
        return None

    def parse_tokens(self, response: StoreResponse, now: float) -> Tokens:
        raise MalformedStorePayload("this platform has no token refresh")

    # -- webhook subscriptions ------------------------------------------------------------------
    # The platform's events we apply (``parse_event`` reads them), in the platform's words.
    webhook_topics: ClassVar[tuple[str, ...]] = ()

    def subscription_target(
        self, webhook_url: str, topic: str, credentials: Mapping[str, str]
    ) -> str:
        """Where the platform is to deliver ``topic``: our webhook URL unless the platform
        needs more in it."""
        return webhook_url

    def subscriptions_request(self, api_base: str, credentials: Mapping[str, str]) -> StoreRequest:
        """The call listing the subscriptions the platform holds for these credentials."""
        raise NotImplementedError

    def parse_subscriptions(self, response: StoreResponse) -> list[Subscription]:
        raise NotImplementedError

    def subscribe_request(
        self, api_base: str, credentials: Mapping[str, str], topic: str, target: str
    ) -> StoreRequest:
        raise NotImplementedError

    def subscribed(self, response: StoreResponse) -> bool:
        """True when the answer means the subscription exists now (made, or already there);
        raises :class:`SubscriptionRefused` otherwise."""
        if response.status in (200, 201):
            return True
        raise SubscriptionRefused(status_reason(response.status))

    def unsubscribe_requests(
        self,
        api_base: str,
        credentials: Mapping[str, str],
        webhook_url: str,
        held: list[Subscription],
    ) -> list[StoreRequest]:
        """The calls removing every subscription of ``held`` that delivers to us."""
        raise NotImplementedError


def subscription_list(body: bytes, key: str, topic: str, url: str) -> list[Subscription]:
    """A platform's list of webhook subscriptions: the list under ``key``, each item's id and
    the names the platform gives its topic and target fields (entries missing one are not
    ours to manage)."""
    doc = json_body(body)
    items = doc.get(key) if isinstance(doc, Mapping) else None
    if not isinstance(items, list):
        raise MalformedStorePayload(f"no {key} list")
    return [
        Subscription(str(item["id"]), str(item[topic]), str(item[url]))
        for item in items
        if isinstance(item, Mapping) and {"id", topic, url} <= item.keys()
    ]


def same_target(a: str, b: str, *, query: bool = True) -> bool:
    """Whether two delivery URLs name the same endpoint: scheme, host, port, path and (unless
    ``query`` is False) query compared, user info left out (a platform may list a URL without
    the credentials it was given) and the host case-folded."""
    x, y = urlsplit(a), urlsplit(b)
    try:
        ports = (x.port, y.port)
    except ValueError:
        return False
    return (
        x.scheme.lower(),
        (x.hostname or "").lower(),
        ports[0],
        x.path.rstrip("/"),
        x.query if query else "",
    ) == (
        y.scheme.lower(),
        (y.hostname or "").lower(),
        ports[1],
        y.path.rstrip("/"),
        y.query if query else "",
    )


def status_reason(status: int) -> str:
    """The fixed reason of a refused platform call."""
    if status in (401, 403):
        return "unauthorized"
    if status == 429:
        return "rate_limited"
    return f"http_{status // 100}xx"


def read_rows(
    items: list[Any], read: Callable[[Mapping[str, Any]], dict[str, Any]]
) -> tuple[list[dict[str, Any]], int]:
    """Each platform item read into a row; an item missing what a row needs is skipped and
    counted, so one odd product does not stop a catalogue."""
    rows: list[dict[str, Any]] = []
    skipped = 0
    for item in items:
        try:
            if not isinstance(item, Mapping):
                raise TypeError("not an object")
            rows.append(read(item))
        except (KeyError, TypeError, AttributeError, ValueError):
            skipped += 1
    return rows, skipped
