"""Every Redis key the engine uses, in one place, each scoped by merchant where it holds data."""

from __future__ import annotations

PREFIX = "kaleem"
INBOX_GROUP = "hosts"
OUTBOX_GROUP = "delivery"
LOCAL_KINDS = frozenset({"webchat", "playground"})


def inbox_stream(partition: int) -> str:
    return f"{PREFIX}:inbox:{partition}"


def outbox_stream(channel_kind: str) -> str:
    """Local kinds (webchat, playground) share one stream consumed by the gateways."""
    kind = "local" if channel_kind in LOCAL_KINDS else channel_kind
    return f"{PREFIX}:outbox:{kind}"


def dedupe_key(merchant_id: str, channel_id: str, message_id: str) -> str:
    return f"{PREFIX}:{merchant_id}:dedupe:{channel_id}:{message_id}"


def conversation_state(merchant_id: str, conversation_key: str) -> str:
    return f"{PREFIX}:{merchant_id}:conv:{conversation_key}"


def sent_marker(merchant_id: str, outbox_id: str) -> str:
    return f"{PREFIX}:{merchant_id}:sent:{outbox_id}"


def dead_letters() -> str:
    return f"{PREFIX}:deadletters"


def replies_channel() -> str:
    return f"{PREFIX}:replies"


def rate_bucket(kind: str, scope: str, subject: str) -> str:
    return f"{PREFIX}:rate:{kind}:{scope}:{subject}"


def unreachable(merchant_id: str, channel_id: str, customer_id: str) -> str:
    """Set when the platform said the customer can never be reached (blocked the bot)."""
    return f"{PREFIX}:{merchant_id}:unreachable:{channel_id}:{customer_id}"
