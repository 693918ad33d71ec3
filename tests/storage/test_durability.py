"""Acknowledged means durable: SIGKILL a writer mid-stream and every acknowledged record is there.

A child process creates orders through the SQLite repositories, 16 in flight at a time (so the
kill lands while groups are being committed), and reports each order id on its stdout pipe only
after ``create`` returned. The parent kills it with SIGKILL after a few hundred
acknowledgements, then a fresh process opens the file and looks every acknowledged id up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACKED_BEFORE_KILL = 300

_WRITER = """
import asyncio, sys
from pathlib import Path
from engine.adapters.repositories import sqlite_repositories

async def main(path):
    repos = sqlite_repositories(Path(path))
    async def one(n):
        order_id = f"ord_{n:07d}"
        await repos.orders.create(
            {"_id": order_id, "merchant_id": "m1", "status": "new", "total": float(n),
             "created_at": float(n + 1)}
        )
        sys.stdout.write(order_id + "\\n")
        sys.stdout.flush()
    n, running = 0, set()
    while True:
        while len(running) < 16:
            running.add(asyncio.ensure_future(one(n)))
            n += 1
        _, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)

asyncio.run(main(sys.argv[1]))
"""

_CHECKER = """
import asyncio, json, sys
from pathlib import Path
from engine.adapters.repositories import sqlite_repositories

async def main(path):
    repos = sqlite_repositories(Path(path))
    wanted = json.loads(sys.stdin.read())
    missing = [i for i in wanted if await repos.orders.get("m1", i) is None]
    page = await repos.orders.page("m1", status=None, phone=None, limit=4000, after=None)
    total = len(page.items)
    print(json.dumps({"missing": missing, "total": total}))
    await repos.close()

asyncio.run(main(sys.argv[1]))
"""


def test_sigkill_loses_no_acknowledged_write(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite3"
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    acked: list[str] = []
    try:
        while len(acked) < ACKED_BEFORE_KILL:
            line = writer.stdout.readline()
            assert line, (
                f"the writer stopped early: {writer.stderr.read() if writer.stderr else ''}"
            )
            acked.append(line.strip())
        os.kill(writer.pid, signal.SIGKILL)  # mid-stream: writes are in flight right now
        acked += [line.strip() for line in writer.stdout if line.strip()]  # acked before death
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL

    checker = subprocess.run(
        [sys.executable, "-c", _CHECKER, str(path)],
        cwd=ROOT,
        input=json.dumps(acked),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checker.returncode == 0, checker.stderr
    found = json.loads(checker.stdout)
    assert found["missing"] == []
    assert found["total"] >= len(acked)  # unacknowledged writes may or may not have landed
