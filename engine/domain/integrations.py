"""A merchant's connection to a store platform (Salla, Zid, Shopify), as the use cases see it.

The record holds the credentials encrypted; this value holds them decrypted, so it is never
printed (``repr`` hides them) and never leaves the process.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

CONNECTED: Final = "connected"  # stored, not synced yet
SYNCING: Final = "syncing"
SYNCED: Final = "synced"
FAILED: Final = "failed"  # the last run stopped on an error; the next run tries again
DISCONNECTED: Final = "disconnected"
# What an integration id looks like (``new_id("in")``): anything else is not looked up.
INTEGRATION_ID: Final = re.compile(r"^in_[0-9a-f]{16}$")


@dataclass(frozen=True, slots=True)
class Integration:
    id: str
    merchant_id: str
    kind: str
    api_base: str
    credentials: Mapping[str, str] = field(repr=False)
    status: str
    sync: Mapping[str, Any]
    token_rev: str
    expires_at: float | None
    synced_at: float | None
    # The platform-side webhook subscriptions' state (``webhook_state``).
    webhooks: Mapping[str, Any] = field(default_factory=dict)


def empty_progress() -> dict[str, Any]:
    return {"products": 0, "orders": 0, "last_error": None}


# Webhook subscription states: not tried yet, all our topics held by the platform, or the last
# attempt stopped (retried on the next pass).
WEBHOOKS_PENDING: Final = "pending"
WEBHOOKS_SUBSCRIBED: Final = "subscribed"
WEBHOOKS_FAILED: Final = "failed"


def webhook_url(base_url: str, kind: str, integration_id: str) -> str:
    """Where a platform delivers an integration's webhooks (``/webhooks/{kind}/{id}``): the
    connect answer shows it and the subscriptions name it, so both are this one string."""
    return f"{base_url.rstrip('/')}/webhooks/{kind}/{integration_id}"


def webhook_state(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """The public shape of the subscriptions' state, whatever an older record holds."""
    raw = raw or {}
    status = raw.get("status")
    topics = raw.get("topics")
    return {
        "status": status
        if status in (WEBHOOKS_PENDING, WEBHOOKS_SUBSCRIBED, WEBHOOKS_FAILED)
        else WEBHOOKS_PENDING,
        "topics": topics if isinstance(topics, int) else 0,
        "last_error": raw.get("last_error") if isinstance(raw.get("last_error"), str) else None,
    }


def platform_order_id(integration_id: str, platform_id: str) -> str:
    """Our id of a platform's order: stable across its events and shaped like every order id
    (``ord_`` + 12 hex), so "where is my order" finds it by number like any other."""
    digest = hashlib.sha256(f"{integration_id}:{platform_id}".encode()).hexdigest()
    return f"ord_{digest[:12]}"
