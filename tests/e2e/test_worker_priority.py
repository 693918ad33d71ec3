"""The reply path runs at the gateway's priority, and starts with a settled heap.

Ray starts workers at nice 15; the conversation hosts, the embedder and delivery are the reply
path here, and at nice 15 a burst of gateway work took the CPU from every reply in flight
(``bench/abuse.py``). And every process freezes what start-up allocated, so a full collection
does not stop its loop for the whole start-up heap.
"""

from __future__ import annotations

import gc
import os

import psutil
import pytest
import ray

from actors.loops import settle_heap
from tests.conftest import Engine

pytestmark = pytest.mark.integration


def _engine_workers(name: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if name in " ".join(p.info["cmdline"] or []) and p.ppid() != os.getpid():
                found.append(p)
        except psutil.Error:
            continue
    return found


async def test_conversation_hosts_and_the_embedder_run_at_normal_priority(engine: Engine) -> None:
    assert ray.is_initialized()
    hosts = _engine_workers("ray::ConversationHostActor")
    embedders = _engine_workers("ServeReplica:embedder")
    assert hosts and embedders
    assert {p.nice() for p in hosts + embedders} == {os.nice(0)}


def test_settling_moves_the_start_up_heap_out_of_the_collectors_reach() -> None:
    held = [[i] for i in range(10_000)]  # a start-up's long-lived objects
    before = gc.get_freeze_count()
    try:
        settle_heap()
        assert gc.get_freeze_count() >= before + len(held)
    finally:
        gc.unfreeze()
