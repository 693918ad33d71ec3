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
import secrets
import threading
import time

import pytest
from argon2 import PasswordHasher, extract_parameters

from engine.http import passwords
from engine.http.problems import ProblemError
from tests.conftest import Engine


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


async def test_a_storm_does_not_keep_an_owner_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """The storm's addresses have all given wrong passwords; the owner's has not, so the
    owner is hashed next (not refused because the storm filled the queue)."""
    hashed_order: list[str] = []

    def slow_verify(hashed: str | None, password: str) -> bool:
        time.sleep(0.01)
        hashed_order.append(password)
        return password == "the owner's password"

    monkeypatch.setattr(passwords, "_verify", slow_verify)
    monkeypatch.setattr(passwords, "MIN_HASH_INTERVAL_S", 0.0)
    storm_ips = [f"198.51.100.{n}" for n in range(1, 21)]
    for ip in storm_ips:  # each has guessed wrong before
        assert not await passwords.verify_password(None, "guess", who=ip)
    hashed_order.clear()
    storm = [
        asyncio.create_task(passwords.verify_password(None, f"guess-{n}", who=storm_ips[n % 20]))
        for n in range(60)
    ]
    await asyncio.sleep(0)  # the storm holds the slot and fills the queue
    owner = await passwords.verify_password(None, "the owner's password", who="203.0.113.7")
    results = await asyncio.gather(*storm, return_exceptions=True)
    assert owner is True
    assert hashed_order.index("the owner's password") == 1  # after the hash already running
    refused = [r for r in results if isinstance(r, ProblemError)]
    assert len(refused) == 60 - passwords.MAX_HASHING - passwords.MAX_WAITING + 1
    assert all(r.status == 503 for r in refused)


async def test_a_cancelled_waiter_gives_its_turn_away(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "_verify", lambda hashed, password: time.sleep(0.01) or False)
    monkeypatch.setattr(passwords, "MIN_HASH_INTERVAL_S", 0.0)
    first = asyncio.create_task(passwords.verify_password(None, "a"))
    gone = asyncio.create_task(passwords.verify_password(None, "b"))
    last = asyncio.create_task(passwords.verify_password(None, "c"))
    await asyncio.sleep(0)
    gone.cancel()
    assert await first is False and await last is False
    assert gone.cancelled()
    # Nothing is held: a full queue's worth is hashed again.
    again = await asyncio.gather(
        *(passwords.verify_password(None, "d") for _ in range(passwords.MAX_WAITING + 1))
    )
    assert again == [False] * (passwords.MAX_WAITING + 1)


async def test_a_real_hash_still_verifies() -> None:
    hashed = await passwords.hash_password("correct horse battery")
    assert await passwords.verify_password(hashed, "correct horse battery")
    assert not await passwords.verify_password(hashed, "wrong")


def test_one_verification_takes_one_lane_and_a_small_memory() -> None:
    """argon2-cffi's default spread each verification over four threads (both cores at once);
    today's parameters are OWASP's single-lane profile."""
    params = extract_parameters(passwords._dummy())
    assert (params.parallelism, params.memory_cost, params.time_cost) == (1, 19456, 2)


@pytest.mark.integration
async def test_an_older_hash_still_signs_in_and_is_remade_with_todays_parameters(
    engine: Engine,
) -> None:
    email = f"old-{secrets.token_hex(4)}@example.com"
    async with engine.session.post(
        f"{engine.base_url}/api/v1/auth/signup",
        json={"merchant_name": "Old", "email": email, "password": "an-old-password"},
    ) as r:
        assert r.status == 201
        merchant_id = (await r.json())["merchant_id"]
    users = engine.runtime.records.repos.users
    user = await users.by_email(email)
    assert user is not None
    legacy = PasswordHasher().hash("an-old-password")  # 64 MiB, 3 passes, 4 lanes
    assert await users.replace_password_hash(
        merchant_id, str(user["_id"]), str(user["password_hash"]), legacy
    )

    async with engine.session.post(
        f"{engine.base_url}/api/v1/auth/login",
        json={"email": email, "password": "an-old-password"},
    ) as r:
        assert r.status == 200 and (await r.json())["access_token"]
    remade = str((await users.by_email(email) or {})["password_hash"])
    assert remade != legacy and extract_parameters(remade).parallelism == 1
    async with engine.session.post(
        f"{engine.base_url}/api/v1/auth/login",
        json={"email": email, "password": "an-old-password"},
    ) as r:
        assert r.status == 200
