"""The customer-visible shape of a reply (the playground contract, also pushed to webchat)."""

from __future__ import annotations

from typing import Any


def public_reply(reply: dict[str, Any]) -> dict[str, Any]:
    return {
        "text": reply.get("text", ""),
        "products": [
            {k: p.get(k) for k in ("sku", "title", "price", "currency", "url")}
            for p in reply.get("products") or []
        ],
        "intent": reply.get("intent", ""),
        "handoff": bool(reply.get("handoff")),
    }
