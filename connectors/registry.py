"""The channel kinds the engine speaks: the ONE list of them.

Everything that depends on the kind asks here: the webhook route (input half), the channel
admin routes (connect forms, ``draft``), the delivery actors (one per provider kind, output
half, send rules), the local delivery of the gateways, the outbox stream names and the metrics
probe. A new channel is a module with a :class:`~connectors.base.ChannelKind` and one line
below.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from connectors import instagram, messenger, playground, telegram, webchat, whatsapp
from connectors.base import ChannelKind, ConnectIn

KINDS: Final[Mapping[str, ChannelKind]] = MappingProxyType(
    {
        k.kind: k
        for k in (
            telegram.KIND,
            whatsapp.KIND,
            messenger.KIND,
            instagram.KIND,
            webchat.KIND,
            playground.KIND,
        )
    }
)
# The outbox stream every local kind shares (the gateways consume it).
LOCAL_OUTBOX: Final = "local"


def get(kind: str) -> ChannelKind | None:
    return KINDS.get(kind)


def provider_kinds() -> tuple[str, ...]:
    """Kinds whose replies go to a provider: one delivery actor each."""
    return tuple(k for k, spec in KINDS.items() if not spec.local)


def connectable() -> tuple[type[ConnectIn], ...]:
    """The connect forms of ``POST /api/v1/channels``, one per connectable kind."""
    return tuple(spec.connect for spec in KINDS.values() if spec.connect is not None)


def builtin(channel_id: str) -> ChannelKind | None:
    """The kind of a channel every merchant has without connecting it (webchat, playground)."""
    for spec in KINDS.values():
        if spec.builtin_channel_id == channel_id:
            return spec
    return None


def outbox_of(kind: str) -> str:
    """The outbox stream a kind's replies go to: its own, or the local one."""
    spec = KINDS.get(kind)
    return LOCAL_OUTBOX if spec is not None and spec.local else kind


def outbox_streams() -> tuple[str, ...]:
    return (*provider_kinds(), LOCAL_OUTBOX)
