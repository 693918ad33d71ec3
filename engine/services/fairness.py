"""Fair shares of one shared resource between tenants: round-robin admission per merchant.

The indexer's embedder and a conversation host's turns are shared by every merchant; handed
out first come, first served, one tenant's 10,000-product import or message flood makes every
other tenant wait for all of it. ``FairGate`` admits at most ``slots`` holders at a time and,
when a slot frees, gives it to the next merchant in rotation that is waiting (each merchant's
own waiters stay in their order), so a merchant that asks once waits for at most one turn of
each other merchant, however much they queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Iterator

from engine.services.ports import Embedder, FloatMatrix

# The tenant the current task works for (set by whoever starts the work: an indexer call).
TENANT: contextvars.ContextVar[str] = contextvars.ContextVar("kaleem_tenant", default="")


@contextlib.contextmanager
def tenant(key: str) -> Iterator[None]:
    """Run the enclosed work (and the tasks it starts) on ``key``'s share."""
    token = TENANT.set(key)
    try:
        yield
    finally:
        TENANT.reset(token)


class FairGate:
    """At most ``slots`` concurrent holders, and at most ``per_key`` of one key; freed slots go
    round-robin over the waiting keys that are under their own cap."""

    def __init__(self, slots: int = 1, per_key: int | None = None) -> None:
        self._slots = max(1, slots)
        self._per_key = max(1, per_key) if per_key is not None else self._slots
        self._active = 0
        self._held: dict[str, int] = {}
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self.granted: list[str] = []  # the last grants' keys, newest last (bounded; for tests)

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    @contextlib.asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[None]:
        await self._acquire(key)
        try:
            yield
        finally:
            self._release(key)

    def _eligible(self, key: str) -> bool:
        return self._held.get(key, 0) < self._per_key

    async def _acquire(self, key: str) -> None:
        # Free slots are always handed to eligible waiters at once (``_release``), so with one
        # free, whoever still waits is at its own cap: a key not waiting itself may go ahead.
        if self._active < self._slots and self._eligible(key) and key not in self._waiting:
            self._grant(key)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, deque()).append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release(key)  # granted just as we were cancelled: pass the slot on
            else:
                queue = self._waiting.get(key)
                if queue is not None:
                    with contextlib.suppress(ValueError):
                        queue.remove(future)
                    if not queue:
                        del self._waiting[key]
            raise

    def _grant(self, key: str) -> None:
        self._active += 1
        self._held[key] = self._held.get(key, 0) + 1
        self.granted.append(key)
        if len(self.granted) > 1024:
            del self.granted[:512]

    def _release(self, key: str) -> None:
        self._active -= 1
        left = self._held.get(key, 0) - 1
        if left > 0:
            self._held[key] = left
        else:
            self._held.pop(key, None)
        if key in self._waiting:
            self._waiting.move_to_end(key)  # the key that just had a turn goes after the others
        while self._active < self._slots:
            nxt = next((k for k in self._waiting if self._eligible(k)), None)
            if nxt is None:
                return
            queue = self._waiting[nxt]
            future = queue.popleft()
            if queue:
                self._waiting.move_to_end(nxt)  # its next waiter goes after everyone else
            else:
                del self._waiting[nxt]
            if future.cancelled():
                continue
            self._grant(nxt)
            future.set_result(None)


class KeyedLocks:
    """One lock per key, dropped when nobody holds or waits for it (bounded by the callers)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class FairEmbedder:
    """An ``Embedder`` whose passage batches take turns per tenant (``TENANT``) at a gate:
    the indexer embeds one batch at a time, and between batches the next tenant in rotation
    goes first. Queries (live questions) are not gated."""

    def __init__(self, inner: Embedder, gate: FairGate) -> None:
        self._inner = inner
        self._gate = gate

    async def embed_queries(self, texts: list[str]) -> FloatMatrix:
        return await self._inner.embed_queries(texts)

    async def embed_passages(self, texts: list[str]) -> FloatMatrix:
        async with self._gate.turn(TENANT.get()):
            return await self._inner.embed_passages(texts)
