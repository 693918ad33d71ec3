"""The playground: staff try the bot over the admin API and get the reply in the response.

Like the webchat it is a local kind every merchant has (channel id ``playground``): the reply
leaves the outbox on a gateway, which hands it to the request waiting for it.
"""

from __future__ import annotations

import re
import secrets
from typing import ClassVar, Final

from connectors.base import ChannelKind
from engine.domain.messages import InboundMessage

CHANNEL_KIND: Final = "playground"
CHANNEL_ID: Final = "playground"
MAX_TEXT: Final = 4096
CUSTOMER_ID: Final = r"^[A-Za-z0-9_.:@+-]{1,128}$"
_CUSTOMER_RE: Final = re.compile(CUSTOMER_ID)


class Playground(ChannelKind):
    kind: ClassVar[str] = CHANNEL_KIND
    local: ClassVar[bool] = True
    builtin_channel_id: ClassVar[str | None] = CHANNEL_ID

    def message(
        self, merchant_id: str, customer_id: str, text: str, received_at: float
    ) -> InboundMessage:
        message_id = f"pg-{secrets.token_hex(10)}"
        return self.builtin_message(merchant_id, customer_id, message_id, text, received_at)


KIND: Final = Playground()
