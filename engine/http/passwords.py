"""Password hashing with argon2id (memory-hard), always off the event loop.

A hash costs tens of milliseconds of CPU and 64 MiB; run inline it would stall every request
on the gateway, so both hashing and verifying go to a worker thread. And a few at a time: a
login storm from many addresses (each within nginx's per-address burst and the per-IP limit)
ran one hash per attempt in every worker thread at once, and those hashes took the machine's
cores from every customer's replies (``bench/abuse.py``). ``MAX_HASHING`` run at once per
process, each holding its slot for at least ``MIN_HASH_INTERVAL_S``; ``MAX_WAITING`` more wait;
past that the request is answered 503 + ``Retry-After`` at once, without hashing.

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
import weakref
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


class _Gate:
    def __init__(self) -> None:
        self.slots = asyncio.Semaphore(MAX_HASHING)
        self.waiting = 0


_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Gate] = weakref.WeakKeyDictionary()


async def _bounded(fn: Callable[..., T], *args: object) -> T:
    loop = asyncio.get_running_loop()
    gate = _GATES.get(loop)
    if gate is None:
        gate = _GATES[loop] = _Gate()
    if gate.waiting >= MAX_HASHING + MAX_WAITING:
        raise ProblemError(
            503, "Busy", "too many sign-ins at once; try again in a second", retry_after=1
        )
    gate.waiting += 1
    try:
        await gate.slots.acquire()
    except BaseException:
        gate.waiting -= 1
        raise
    started = loop.time()
    try:
        return await asyncio.to_thread(fn, *args)
    finally:
        gate.waiting -= 1
        # The caller has its answer now; the slot comes back once the interval is over.
        rest = MIN_HASH_INTERVAL_S - (loop.time() - started)
        if rest > 0:
            loop.call_later(rest, gate.slots.release)
        else:
            gate.slots.release()


@functools.cache
def _dummy() -> str:
    """Verifying against this when the account does not exist keeps login timing uniform."""
    return _HASHER.hash("kaleem-dummy-password")


async def hash_password(password: str) -> str:
    return await _bounded(_HASHER.hash, password)


def _verify(hashed: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(hashed or _dummy(), password) and hashed is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(hashed: str | None, password: str) -> bool:
    return await _bounded(_verify, hashed, password)


def needs_rehash(hashed: str) -> bool:
    """True for a hash made with other parameters than today's: worth re-making after a
    successful login, while the password is at hand."""
    try:
        return _HASHER.check_needs_rehash(hashed)
    except InvalidHashError:
        return False
