"""Backlog and age of the Redis streams, sampled when Prometheus scrapes the gateway.

Consumers delete entries on acknowledgement, so a stream's length is its backlog and its first
entry is the oldest unfinished one; the entry id's millisecond prefix gives its age. Sampling
at scrape time (one pipelined round trip) keeps this off the message path and makes every
gateway replica report the same shared truth; rules take ``max`` across replicas.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from observability import metrics


def _age_s(first: Any, now: float) -> float:
    if not first:
        return 0.0
    entry_id = first[0][0]
    raw = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return max(0.0, now - int(raw.split("-", 1)[0]) / 1000.0)


async def sample(
    redis: Any,
    inbox: Sequence[str],
    outbox: Mapping[str, str],
    dead_letters: Callable[[], Awaitable[int]],
    now: float | None = None,
) -> None:
    """``inbox``: the partition streams; ``outbox``: label (channel kind) -> stream;
    ``dead_letters``: the dead letters kept (they live in one stream per merchant)."""
    now = time.time() if now is None else now
    pipe = redis.pipeline(transaction=False)
    outbox_kinds = list(outbox)
    for stream in [*inbox, *outbox.values()]:
        pipe.xlen(stream)
        pipe.xrange(stream, "-", "+", count=1)
    res = await pipe.execute()
    inbox_total, inbox_age = 0, 0.0
    for i in range(len(inbox)):
        inbox_total += int(res[2 * i])
        inbox_age = max(inbox_age, _age_s(res[2 * i + 1], now))
    metrics.INBOX_BACKLOG.set(inbox_total)
    metrics.INBOX_OLDEST_AGE.set(inbox_age)
    base = 2 * len(inbox)
    for j, kind in enumerate(outbox_kinds):
        metrics.OUTBOX_BACKLOG.labels(kind).set(int(res[base + 2 * j]))
        metrics.OUTBOX_OLDEST_AGE.labels(kind).set(_age_s(res[base + 2 * j + 1], now))
    metrics.DEAD_LETTER_BACKLOG.set(await dead_letters())
