"""A login storm cannot take the machine's cores through password hashing.

Every login attempt (for a known account or, for uniform timing, an unknown one) runs an
argon2id verification; a storm from many addresses, each within nginx's burst and the per-IP
limit, ran one in every worker thread at once, and those hashes starved the conversation hosts
and the embedder: in ``bench/abuse.py`` another store's customers waited ~30 s for replies.
Hashing now runs one at a time per process with a minimum spacing, and a request that would
wait behind too many gets 503 + Retry-After at once.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from engine.http import passwords
from engine.http.problems import ProblemError


async def test_hashing_runs_one_at_a_time_and_the_excess_is_refused_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    running, peak, done = 0, 0, 0
    lock = threading.Lock()

    def slow_verify(hashed: str | None, password: str) -> bool:
        nonlocal running, peak, done
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)  # an argon2id verification's worth of a core
        with lock:
            running -= 1
            done += 1
        return False

    monkeypatch.setattr(passwords, "_verify", slow_verify)
    monkeypatch.setattr(passwords, "MIN_HASH_INTERVAL_S", 0.0)
    storm = 60
    results = await asyncio.gather(
        *(passwords.verify_password(None, f"guess-{n}") for n in range(storm)),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, ProblemError)]
    assert peak == passwords.MAX_HASHING
    assert done == passwords.MAX_HASHING + passwords.MAX_WAITING
    assert len(refused) == storm - done
    assert all(r.status == 503 and r.extra["retry_after"] == 1 for r in refused)
    # Once the storm has passed, a login is hashed (and answered) as usual.
    assert await passwords.verify_password(None, "the real password") is False


async def test_a_real_hash_still_verifies() -> None:
    hashed = await passwords.hash_password("correct horse battery")
    assert await passwords.verify_password(hashed, "correct horse battery")
    assert not await passwords.verify_password(hashed, "wrong")
