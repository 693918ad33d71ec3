"""Durable intake and delivery on Redis streams.

Intake: the gateway dedupes on the provider message id and appends to the conversation's
inbox partition in ONE Lua script, so a redelivery can never slip between the check and the
append, and the webhook is acknowledged only after the append returned.

Turn commit: the conversation checkpoint and the reply's outbox entry are written in one
MULTI/EXEC, so after a crash either both exist (the replayed messages are recognised as handled)
or neither does (the turn simply runs again). Inbox entries are acknowledged after the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from engine import keys
from engine.messages import InboundMessage, OutboundReply
from engine.sharding import partition_of

log = logging.getLogger(__name__)

DEDUPE_TTL_S = 7 * 24 * 3600  # WhatsApp retries for up to 7 days; Telegram for 24 h.
SENT_TTL_S = 7 * 24 * 3600

_APPEND_LUA = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[2], '*', 'm', ARGV[2])
end
return false
"""


@dataclass(frozen=True, slots=True)
class StreamEntry:
    stream: str
    entry_id: str
    payload: dict[str, Any]


class Inbox:
    """Gateway side of intake."""

    def __init__(self, redis: aioredis.Redis, partitions: int) -> None:
        self._redis = redis
        self._partitions = partitions
        self._append = redis.register_script(_APPEND_LUA)

    async def append(self, message: InboundMessage) -> bool:
        """True when the message is new and now durable; False for a duplicate."""
        stream = keys.inbox_stream(partition_of(message.conversation_key, self._partitions))
        dedupe = keys.dedupe_key(message.merchant_id, message.channel_id, message.message_id)
        result = await self._append(
            keys=[dedupe, stream], args=[DEDUPE_TTL_S, orjson.dumps(message.to_dict())]
        )
        return result is not None

    async def mark_seen(self, merchant_id: str, channel_id: str, message_id: str) -> bool:
        """Dedupe an update we will not answer (so its redelivery is recognised too)."""
        ok = await self._redis.set(
            keys.dedupe_key(merchant_id, channel_id, message_id), "1", nx=True, ex=DEDUPE_TTL_S
        )
        return bool(ok)

    async def backlog(self) -> int:
        total = 0
        for p in range(self._partitions):
            total += int(await self._redis.xlen(keys.inbox_stream(p)))
        return total


async def ensure_group(redis: aioredis.Redis, stream: str, group: str) -> None:
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _decode_entries(raw: Any) -> list[StreamEntry]:
    out: list[StreamEntry] = []
    for stream_name, entries in raw or []:
        stream = stream_name.decode() if isinstance(stream_name, bytes) else str(stream_name)
        for entry_id, fields in entries:
            eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            if not fields:  # entry deleted while pending: nothing to process
                out.append(StreamEntry(stream, eid, {}))
                continue
            blob = fields.get(b"m") if b"m" in fields else fields.get("m")
            try:
                payload = orjson.loads(blob) if blob is not None else {}
            except orjson.JSONDecodeError:
                log.error("undecodable stream entry", extra={"stream": stream, "entry": eid})
                payload = {}
            out.append(StreamEntry(stream, eid, payload))
    return out


class StreamConsumer:
    """A consumer-group reader over several streams, starting with its own pending entries.

    A restarted consumer with the same name first re-reads what it had taken but not
    acknowledged: that is how a host actor crash loses nothing.
    """

    def __init__(
        self, redis: aioredis.Redis, streams: Sequence[str], group: str, consumer: str
    ) -> None:
        self._redis = redis
        self._streams = list(streams)
        self._group = group
        self._consumer = consumer
        self._pending_done = False

    async def setup(self) -> None:
        for s in self._streams:
            await ensure_group(self._redis, s, self._group)

    async def read(self, count: int = 64, block_ms: int = 1000) -> list[StreamEntry]:
        if not self._pending_done:
            raw = await self._redis.xreadgroup(
                self._group, self._consumer, dict.fromkeys(self._streams, "0"), count=count
            )
            entries = _decode_entries(raw)
            if entries:
                return entries
            self._pending_done = True
        raw = await self._redis.xreadgroup(
            self._group,
            self._consumer,
            dict.fromkeys(self._streams, ">"),
            count=count,
            block=block_ms,
        )
        return _decode_entries(raw)

    async def ack(self, entries: Sequence[StreamEntry]) -> None:
        """Acknowledge and delete, so streams stay bounded by the backlog, not by history."""
        if not entries:
            return
        pipe = self._redis.pipeline(transaction=False)
        for e in entries:
            pipe.xack(e.stream, self._group, e.entry_id)
            pipe.xdel(e.stream, e.entry_id)
        await pipe.execute()


class TurnCommitter:
    """Writes a turn's checkpoint and its reply atomically."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def load_state(self, merchant_id: str, conversation_key: str) -> dict[str, Any] | None:
        raw = await self._redis.get(keys.conversation_state(merchant_id, conversation_key))
        if raw is None:
            return None
        data: dict[str, Any] = orjson.loads(raw)
        return data

    async def commit(
        self,
        merchant_id: str,
        conversation_key: str,
        state: dict[str, Any],
        reply: OutboundReply | None,
    ) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(keys.conversation_state(merchant_id, conversation_key), orjson.dumps(state))
        if reply is not None:
            pipe.xadd(keys.outbox_stream(reply.channel_kind), {"m": orjson.dumps(reply.to_dict())})
        await pipe.execute()


class Outbox:
    """Delivery-side bookkeeping: a reply is sent at most once per outbox id."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def already_sent(self, reply: OutboundReply) -> bool:
        return bool(await self._redis.exists(keys.sent_marker(reply.merchant_id, reply.outbox_id)))

    async def mark_sent(self, reply: OutboundReply, provider_message_id: str) -> None:
        await self._redis.set(
            keys.sent_marker(reply.merchant_id, reply.outbox_id), provider_message_id, ex=SENT_TTL_S
        )

    async def dead_letter(self, reply: OutboundReply, reason: str, attempts: int) -> None:
        await self._redis.xadd(
            keys.dead_letters(),
            {"m": orjson.dumps({"reply": reply.to_dict(), "reason": reason, "attempts": attempts})},
            maxlen=100_000,
            approximate=True,
        )

    async def backlog(self, channel_kind: str) -> int:
        return int(await self._redis.xlen(keys.outbox_stream(channel_kind)))
