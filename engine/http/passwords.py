"""Password hashing with argon2id (memory-hard), always off the event loop.

A hash costs tens of milliseconds of CPU and 64 MiB; run inline it would stall every request
on the gateway, so both hashing and verifying go to a worker thread.
"""

from __future__ import annotations

import asyncio
import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()


@functools.cache
def _dummy() -> str:
    """Verifying against this when the account does not exist keeps login timing uniform."""
    return _HASHER.hash("kaleem-dummy-password")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_HASHER.hash, password)


def _verify(hashed: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(hashed or _dummy(), password) and hashed is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(hashed: str | None, password: str) -> bool:
    return await asyncio.to_thread(_verify, hashed, password)
