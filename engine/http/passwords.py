"""Password hashing with argon2id (memory-hard), always off the event loop.

A hash costs tens of milliseconds of CPU and 64 MiB; run inline it would stall every request
on the gateway, so both hashing and verifying go to a worker thread. And a few at a time: a
login storm from many addresses (each within nginx's per-address burst and the per-IP limit)
ran one hash per attempt in every worker thread at once, and those hashes took the machine's
cores from every customer's replies (``bench/abuse.py``). ``MAX_HASHING`` run at once per
process, each holding its slot for at least ``MIN_HASH_INTERVAL_S``; ``MAX_WAITING`` more wait,
fewest recent wrong passwords from their address first; past that the request is answered 503 +
``Retry-After`` at once, without hashing (see ``_Gate``: a storm does not keep owners out).

The parameters are OWASP's single-lane argon2id profile (19 MiB, 2 passes, 1 lane): argon2-cffi's
default (64 MiB, 3 passes, 4 lanes) cost 200 ms of CPU per verification here, spread over four
threads, so even one hash at a time took both cores at once from the conversation hosts; this
one is 27 ms on one core (measured on this box), so a storm gets under 10 % of one core. Hashes
made with other parameters still verify (argon2 records them in the hash) and are re-made with
these at the owner's next successful login.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from engine.http.problems import ProblemError

_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
MAX_HASHING = 1
MAX_WAITING = 16
MIN_HASH_INTERVAL_S = 0.3
T = TypeVar("T")


FAILURE_MEMORY = 4096  # addresses remembered, least recently failed forgotten first
FAILURE_FORGET_S = 900.0


class _Gate:
    """``MAX_HASHING`` slots and a queue of ``MAX_WAITING`` ordered by standing: an address
    with fewer recent wrong passwords goes first, and a newcomer with a better standing than
    the worst waiter takes that waiter's place (which is answered 503). A storm's addresses
    all fail, so an owner signing in from their own address waits for one hash, not behind
    the storm, and is not refused because the storm filled the queue."""

    def __init__(self) -> None:
        self.busy = 0
        self.queue: list[tuple[int, int, asyncio.Future[None]]] = []
        self.order = itertools.count()
        self.failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def standing(self, who: str | None, now: float) -> int:
        if who is None:
            return 0
        count, at = self.failures.get(who, (0, now))
        return count if now - at < FAILURE_FORGET_S else 0

    def judged(self, who: str | None, ok: bool, now: float) -> None:
        if who is None:
            return
        if ok:
            self.failures.pop(who, None)
            return
        self.failures[who] = (self.standing(who, now) + 1, now)
        self.failures.move_to_end(who)
        while len(self.failures) > FAILURE_MEMORY:
            self.failures.popitem(last=False)

    async def acquire(self, who: str | None, now: float) -> None:
        if self.busy < MAX_HASHING and not self.queue:
            self.busy += 1
            return
        entry = (
            self.standing(who, now),
            next(self.order),
            asyncio.get_running_loop().create_future(),
        )
        if len(self.queue) >= MAX_WAITING:
            worst = max(self.queue)
            if entry[:2] > worst[:2]:
                raise _busy()
            self.queue.remove(worst)
            heapq.heapify(self.queue)
            worst[2].set_exception(_busy())
        heapq.heappush(self.queue, entry)
        try:
            await entry[2]
        except BaseException:
            if entry in self.queue:
                self.queue.remove(entry)
                heapq.heapify(self.queue)
            elif entry[2].done() and not entry[2].cancelled() and entry[2].exception() is None:
                self.release()  # granted just as this request went away: pass the slot on
            raise

    def release(self) -> None:
        while self.queue:
            _, _, waiter = heapq.heappop(self.queue)
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the best waiter
                return
        self.busy -= 1


def _busy() -> ProblemError:
    return ProblemError(
        503, "Busy", "too many sign-ins at once; try again in a second", retry_after=1
    )


_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Gate] = weakref.WeakKeyDictionary()


async def _bounded(fn: Callable[..., T], *args: object, who: str | None = None) -> T:
    loop = asyncio.get_running_loop()
    gate = _GATES.get(loop)
    if gate is None:
        gate = _GATES[loop] = _Gate()
    await gate.acquire(who, loop.time())
    started = loop.time()
    try:
        return await asyncio.to_thread(fn, *args)
    finally:
        # The caller has its answer now; the slot comes back once the interval is over.
        rest = MIN_HASH_INTERVAL_S - (loop.time() - started)
        if rest > 0:
            loop.call_later(rest, gate.release)
        else:
            gate.release()


@functools.cache
def _dummy() -> str:
    """Verifying against this when the account does not exist keeps login timing uniform."""
    return _HASHER.hash("kaleem-dummy-password")


async def hash_password(password: str, *, who: str | None = None) -> str:
    """``who``: the requester's address, whose recent wrong passwords decide its place in
    the hashing queue."""
    return await _bounded(_HASHER.hash, password, who=who)


def _verify(hashed: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(hashed or _dummy(), password) and hashed is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(hashed: str | None, password: str, *, who: str | None = None) -> bool:
    ok = await _bounded(_verify, hashed, password, who=who)
    gate = _GATES.get(asyncio.get_running_loop())
    if gate is not None:
        gate.judged(who, ok, asyncio.get_running_loop().time())
    return ok


def needs_rehash(hashed: str) -> bool:
    """True for a hash made with other parameters than today's: worth re-making after a
    successful login, while the password is at hand."""
    try:
        return _HASHER.check_needs_rehash(hashed)
    except InvalidHashError:
        return False
