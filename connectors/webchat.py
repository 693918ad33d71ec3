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
CUSTOMER_ID: Final = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_MESSAGE_ID: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def public_reply(reply: dict[str, Any]) -> dict[str, Any]:
    """The customer-visible shape of a reply (the playground contract, also pushed here)."""
    return {
        "text": reply.get("text", ""),
        "products": [
            {k: p.get(k) for k in ("sku", "title", "price", "currency", "url")}
            for p in reply.get("products") or []
        ],
        "intent": reply.get("intent", ""),
        "handoff": bool(reply.get("handoff")),
    }


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
        return InboundMessage(
            merchant_id=merchant_id,
            channel_id=CHANNEL_ID,
            channel_kind=CHANNEL_KIND,
            customer_id=customer_id,
            message_id=f"wc-{customer_id}-{client_id}",
            text=text.strip(),
            received_at=received_at,
        )


KIND: Final = Webchat()
