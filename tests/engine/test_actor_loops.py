"""An actor's consumer loop survives failures it does not handle itself (Redis restarting)."""

from __future__ import annotations

import asyncio

import pytest
import redis

from actors.loops import keep_running


async def test_a_failing_loop_is_started_again_until_it_returns() -> None:
    calls: list[int] = []

    async def run() -> None:
        calls.append(len(calls))
        if len(calls) < 3:
            raise redis.ConnectionError("Error 111 connecting to unix socket")

    await asyncio.wait_for(keep_running(run, "test", pause_s=0.0), timeout=30)
    assert calls == [0, 1, 2]


async def test_cancelling_stops_it() -> None:
    async def run() -> None:
        await asyncio.Event().wait()

    task = asyncio.create_task(keep_running(run, "test", pause_s=0.0))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
