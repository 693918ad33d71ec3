"""``Idempotency-Key`` records: a retried request replays the first one's answer.

The first request with a key claims it (state "pending", the body's fingerprint, the time);
a repeat with the same body replays the stored answer, one with another body is refused, and
one while the first still runs is told so. A claim whose request never finished (the engine
died in between) is taken over after ``LEASE_S``: the request runs again, and because what it
writes is keyed by the request (``request_id``: the same key always names the same order),
running it twice never writes twice. So a replay can never point at a record that does not
exist, nor stay stuck on "in progress". Claims are checked and written in one Lua script.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson
import redis.asyncio as aioredis

from engine.adapters.redis import keys

TTL_S: Final = 24 * 3600
LEASE_S: Final = 30.0

_CLAIM_LUA: Final = """
local raw = redis.call('GET', KEYS[1])
if raw then
  local rec = cjson.decode(raw)
  if rec['hash'] ~= ARGV[1] then return 'mismatch' end
  if rec['state'] == 'done' then return raw end
  if tonumber(ARGV[2]) - tonumber(rec['at']) < tonumber(ARGV[3]) then return 'running' end
end
redis.call('SET', KEYS[1], cjson.encode({state='pending', hash=ARGV[1], at=tonumber(ARGV[2])}),
           'EX', ARGV[4])
return 'fresh'
"""

Outcome = Literal["fresh", "mismatch", "running", "replay"]


@dataclass(frozen=True, slots=True)
class Claim:
    outcome: Outcome
    status: int = 0
    body: Any = None


def request_id(merchant_id: str, scope: str, key: str) -> str:
    """What a request with this key writes is named by this (deterministic, opaque)."""
    return hashlib.blake2b(f"{merchant_id}|{scope}|{key}".encode(), digest_size=6).hexdigest()


class IdempotencyStore:
    def __init__(self, redis: aioredis.Redis, *, ttl_s: int = TTL_S, lease_s: float = LEASE_S):
        self._redis = redis
        self._ttl = ttl_s
        self._lease = lease_s
        self._claim = redis.register_script(_CLAIM_LUA)

    async def claim(self, merchant_id: str, scope: str, key: str, fingerprint: str) -> Claim:
        answer = await self._claim(
            keys=[keys.idempotency(merchant_id, scope, key)],
            args=[fingerprint, time.time(), self._lease, self._ttl],
        )
        text = answer.decode() if isinstance(answer, bytes) else str(answer)
        if text in ("fresh", "mismatch", "running"):
            return Claim(text)  # type: ignore[arg-type]
        record = orjson.loads(text)
        return Claim("replay", int(record["status"]), record["body"])

    async def finish(
        self, merchant_id: str, scope: str, key: str, fingerprint: str, status: int, body: Any
    ) -> None:
        record = {"state": "done", "hash": fingerprint, "status": status, "body": body}
        await self._redis.set(
            keys.idempotency(merchant_id, scope, key), orjson.dumps(record), keepttl=True
        )

    async def release(self, merchant_id: str, scope: str, key: str) -> None:
        """The request failed in a way a retry may fix (a 5xx): forget the claim."""
        await self._redis.delete(keys.idempotency(merchant_id, scope, key))
