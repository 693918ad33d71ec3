"""The website webchat: the input half of a chat socket's frames; replies go back locally.

The customer's browser holds a WebSocket on one gateway; replies are published to every gateway
and the one holding the socket pushes them (``engine/http/hub.py``), so this kind has no
provider, no webhook and no connect step: every merchant has it, under the channel id
``webchat``. Frames are validated here, purely, so a bad frame is a clear error to the socket.
"""

from __future__ import annotations

import re
import secrets
from typing import Any, ClassVar, Final

from connectors.base import ChannelKind
from engine.domain.messages import InboundMessage

CHANNEL_KIND: Final = "webchat"
CHANNEL_ID: Final = "webchat"
MAX_TEXT: Final = 4096
_MESSAGE_ID: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


PRODUCT_FIELDS: Final = ("sku", "title", "price", "currency", "url")
# The widget also shows each product's picture.
WIDGET_PRODUCT_FIELDS: Final = (*PRODUCT_FIELDS, "image_url")


def public_reply(reply: dict[str, Any], fields: tuple[str, ...] = PRODUCT_FIELDS) -> dict[str, Any]:
    """The customer-visible shape of a reply (the playground contract, also pushed here)."""
    return {
        "text": reply.get("text", ""),
        "products": [{k: p.get(k) for k in fields} for p in reply.get("products") or []],
        "intent": reply.get("intent", ""),
        "handoff": bool(reply.get("handoff")),
    }


def reply_frame(reply: dict[str, Any]) -> dict[str, Any]:
    """A reply as the widget receives it: the public shape plus the id the history uses, so a
    reply seen live and again in the history after a reconnect is shown once."""
    frame = public_reply(reply, WIDGET_PRODUCT_FIELDS)
    return {"type": "reply", "id": f"out:{reply.get('outbox_id', '')}", **frame}


def history_frame(messages: list[dict[str, Any]], paused: bool) -> dict[str, Any]:
    """The conversation so far, oldest first, sent when a socket opens (reload, new tab,
    reconnect): the customer's messages with the id the widget gave them, and the replies."""
    items = []
    for m in messages:
        inbound = m.get("direction") == "in"
        raw_id = str(m.get("_id", ""))
        items.append(
            {
                "id": _client_id(raw_id) if inbound else raw_id,
                "direction": "in" if inbound else "out",
                "text": str(m.get("text") or ""),
                "at": m.get("at"),
                "products": [] if inbound else public_reply(m, WIDGET_PRODUCT_FIELDS)["products"],
                "intent": m.get("intent"),
                "handoff": bool(m.get("handoff")),
            }
        )
    return {"type": "history", "messages": items, "paused": paused}


def _client_id(stored_id: str) -> str:
    """``webchat:wc-<customer>-<client id>`` back to the id the browser chose."""
    tail = stored_id.rsplit(":", 1)[-1]
    return tail.split("-", 2)[2] if tail.count("-") >= 2 else tail


class Webchat(ChannelKind):
    kind: ClassVar[str] = CHANNEL_KIND
    local: ClassVar[bool] = True
    builtin_channel_id: ClassVar[str | None] = CHANNEL_ID

    def message(
        self, merchant_id: str, customer_id: str, frame: Any, received_at: float
    ) -> InboundMessage | str:
        """The frame as a message, or why it is refused (sent back to the socket)."""
        if not isinstance(frame, dict) or frame.get("type") != "message":
            return 'expected {"type": "message", "text": "..."}'
        text = frame.get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            return f"text must be 1-{MAX_TEXT} characters"
        client_id = frame.get("id")
        if not isinstance(client_id, str) or not _MESSAGE_ID.match(client_id):
            client_id = secrets.token_hex(8)
        message_id = f"wc-{customer_id}-{client_id}"
        return self.builtin_message(merchant_id, customer_id, message_id, text.strip(), received_at)


KIND: Final = Webchat()
