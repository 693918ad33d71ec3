"""Messages as the engine's own code makes them, for tests that start mid-pipeline."""

from __future__ import annotations

import itertools
import time
from typing import Any

from engine.domain.messages import OutboundReply

_outbox_ids = itertools.count(1)


def bot_reply(conversation_key: str, text: str = "hi", **fields: Any) -> OutboundReply:
    """A Telegram reply in the conversation ``merchant:channel:customer``; a fresh outbox id."""
    merchant_id, channel_id, customer_id = conversation_key.split(":", 2)
    values: dict[str, Any] = {
        "outbox_id": f"ob-{next(_outbox_ids)}",
        "merchant_id": merchant_id,
        "channel_id": channel_id,
        "channel_kind": "telegram",
        "customer_id": customer_id,
        "text": text,
        "intent": "product_search",
        "handoff": False,
        "in_reply_to": ("1",),
        "received_at": time.time(),
        "language": "en",
    }
    return OutboundReply(**{**values, **fields})
