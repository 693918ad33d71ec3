"""Every Redis key the engine uses, in one place, each scoped by merchant where it holds data."""

from __future__ import annotations

from connectors import registry

PREFIX = "kaleem"
INBOX_GROUP = "hosts"
OUTBOX_GROUP = "delivery"


def inbox_stream(partition: int) -> str:
    return f"{PREFIX}:inbox:{partition}"


def outbox_stream(channel_kind: str) -> str:
    """Local kinds (webchat, playground) share one stream consumed by the gateways."""
    return f"{PREFIX}:outbox:{registry.outbox_of(channel_kind)}"


def dedupe_key(merchant_id: str, channel_id: str, message_id: str) -> str:
    return f"{PREFIX}:{merchant_id}:dedupe:{channel_id}:{message_id}"


def conversation_state(merchant_id: str, conversation_key: str) -> str:
    return f"{PREFIX}:{merchant_id}:conv:{conversation_key}"


def sent_marker(merchant_id: str, outbox_id: str) -> str:
    return f"{PREFIX}:{merchant_id}:sent:{outbox_id}"


def dead_letters(merchant_id: str) -> str:
    """A merchant's own capped dead-letter stream: one tenant's failures cannot trim away
    another's."""
    return f"{PREFIX}:{merchant_id}:deadletters"


def dead_letter_merchants() -> str:
    """Sorted set: merchants with dead letters, scored by their latest (operators' views)."""
    return f"{PREFIX}:deadletters:merchants"


def replies_channel() -> str:
    return f"{PREFIX}:replies"


def rate_bucket(kind: str, scope: str, subject: str) -> str:
    return f"{PREFIX}:rate:{kind}:{scope}:{subject}"


def unreachable(merchant_id: str, channel_id: str, customer_id: str) -> str:
    """Set when the platform said the customer can never be reached (blocked the bot)."""
    return f"{PREFIX}:{merchant_id}:unreachable:{channel_id}:{customer_id}"


def agent_events(merchant_id: str) -> str:
    """Pub/sub channel of a merchant's live events for agents (``/api/v1/live``); ``"*"``
    gives the pattern of every merchant's channel."""
    return f"{PREFIX}:{merchant_id}:agent-events"


def merchant_of_agent_events(channel: str) -> str | None:
    """The merchant an ``agent_events`` channel belongs to (None for another channel)."""
    head, _, tail = channel.partition(":")
    merchant_id, _, rest = tail.rpartition(":")
    return merchant_id if head == PREFIX and rest == "agent-events" and merchant_id else None


def idempotency(merchant_id: str, scope: str, key: str) -> str:
    """The stored answer of a request sent with ``Idempotency-Key`` (24 h)."""
    return f"{PREFIX}:{merchant_id}:idem:{scope}:{key}"


def rate_window(name: str, window: int) -> str:
    """A fixed-window counter of the admin API's rate limits (``name`` is a digest)."""
    return f"{PREFIX}:rl:{name}:{window}"


def login_failures(scope: str, subject_digest: str) -> str:
    """Login attempts per account, per (account, address) or per address (``scope``)."""
    return f"{PREFIX}:rl:login:{scope}:{subject_digest}"


def login_known(account_digest: str) -> str:
    """The addresses an account logged in from (digests): a flood cannot lock them out."""
    return f"{PREFIX}:rl:login:known:{account_digest}"


def token_family(family: str) -> str:
    """A refresh-token family (rotation reuse detection); ``""`` gives the prefix."""
    return f"{PREFIX}:auth:fam:{family}"


def token_blacklist(jti: str) -> str:
    return f"{PREFIX}:auth:bl:{jti}"


def token_epoch(user_id: str) -> str:
    """Tokens issued before this time are void (role change, removal)."""
    return f"{PREFIX}:auth:epoch:{user_id}"


def refresh_token(token_digest: str) -> str:
    return f"{PREFIX}:auth:rt:{token_digest}"


def settlement_lease(merchant_id: str, date: str) -> str:
    """Held while one replica settles a merchant's date (``SET NX PX``)."""
    return f"{PREFIX}:{merchant_id}:lease:settlement:{date}"


def query_embedding(cache_key: str) -> str:
    """A cached query vector: the key names the model and hashes the text, so it holds no
    merchant data and is shared by every merchant asking the same words."""
    return f"{PREFIX}:qemb:{cache_key}"


def merchant_changes() -> str:
    """Pub/sub channel: a merchant id whose profile changed, so every host drops its copy."""
    return f"{PREFIX}:merchant-changes"
