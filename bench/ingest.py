"""Webhook intake benchmark: signed WhatsApp webhooks at increasing rates against the gateway.

The gateway (the real ``create_app`` with real embedded Redis; no Ray: intake never touches it)
runs in a child process; this process is the load generator (open loop: a request is started
every 1/rate s whether or not earlier ones finished, so a slow gateway shows as latency, not
as a politely lower rate). Each step reports accepted webhooks/s and ack latency percentiles;
at the end every accepted message id must be in the inbox streams exactly once (zero lost).

    .venv/bin/python bench/ingest.py --rates 500,1000,2000,3000 --seconds 5

Prints one JSON object per step and a final summary. Bounded: steps x seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connectors.meta import sign

SECRET = "bench-app-secret"
NUMBER = "1234567"


async def serve(data_dir: Path, port: int, use_uvloop: bool, appendfsync: str = "always") -> None:
    from aiohttp import web
    from cryptography.fernet import Fernet

    from engine.adapters.records import Records
    from engine.adapters.redis.server import EmbeddedRedis, redis_client
    from engine.adapters.repositories import sqlite_repositories
    from engine.adapters.secrets import SecretBox
    from engine.bootstrap import Container, Remotes
    from engine.config import Settings
    from engine.http.app import create_app

    embedded = EmbeddedRedis(data_dir / "redis", appendfsync=appendfsync)
    url = embedded.start()
    settings = Settings(
        data_dir=data_dir,
        port=port,
        admin_token="bench-operator-token-0123456789",
        redis_url=url,
        secret_key=Fernet.generate_key().decode(),
        inbox_partitions=8,
        allow_private_api_base=True,  # the fake Telegram listens on loopback
    )
    redis = redis_client(url, max_connections=256)
    records = Records(
        sqlite_repositories(data_dir / "records.sqlite3"), SecretBox(settings.secret_key)
    )
    merchant_id, _ = await records.create_merchant("Bench", "en")
    channel_id = await records.create_channel(
        merchant_id,
        "whatsapp",
        "http://127.0.0.1:9",
        secrets_={"access_token": "t", "app_secret": SECRET, "verify_token": "v"},
        config={"account_id": NUMBER, "phone_number_id": NUMBER},
    )

    async def ready() -> dict[str, bool]:
        return {"redis": True}

    class NoIndexer:
        def submit(self, *a: Any, **k: Any) -> None:
            return None

    remotes = Remotes(vectors=None, indexer=NoIndexer())  # type: ignore[arg-type]
    c = Container(settings, remotes, redis=redis, records=records)
    deps = c.gateway(ready)
    runner = web.AppRunner(create_app(deps), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    print(json.dumps({"channel_id": channel_id, "redis_url": url}), flush=True)
    stop = asyncio.Event()
    # SIGTERM from the driver must run the finally below: a server left running (or one that
    # cannot save because its directory was removed) would outlive the benchmark.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        embedded.stop()


def _body(n: int) -> bytes:
    customer = f"9665{n % 5000:08d}"
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "WABA",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"phone_number_id": NUMBER},
                            "contacts": [{"profile": {"name": "Sara"}, "wa_id": customer}],
                            "messages": [
                                {
                                    "from": customer,
                                    "id": f"wamid.BENCH{n:012d}",
                                    "timestamp": str(int(time.time())),
                                    "type": "text",
                                    "text": {"body": "do you have running shoes in size 42?"},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    return orjson.dumps(payload)


async def step(url: str, rate: int, seconds: float, start_n: int) -> dict[str, Any]:
    total = int(rate * seconds)
    bodies = [(b, sign(SECRET, b)) for b in (_body(start_n + i) for i in range(total))]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(body: bytes, signature: str) -> None:
            t0 = time.perf_counter()
            try:
                async with session.post(
                    url,
                    data=body,
                    headers={"X-Hub-Signature-256": signature, "Content-Type": "application/json"},
                ) as r:
                    await r.read()
                    status = r.status
            except aiohttp.ClientError:
                status = 0
            latencies.append(time.perf_counter() - t0)
            statuses[status] = statuses.get(status, 0) + 1

        tasks = []
        began = time.perf_counter()
        for i, (body, signature) in enumerate(bodies):
            due = began + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(body, signature)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - began
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2)

    ok = statuses.get(200, 0)
    return {
        "offered_per_s": rate,
        "sent": total,
        "accepted": ok,
        "accepted_per_s": round(ok / elapsed, 1),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": pct(1.0),
        "statuses": statuses,
    }


async def count_inbox(redis_url: str) -> tuple[int, int]:
    import redis.asyncio as aioredis

    r = aioredis.from_url(redis_url)
    try:
        entries = sum([int(await r.xlen(f"kaleem:inbox:{p}")) for p in range(8)])
        dedupe = 0
        async for _ in r.scan_iter(match="kaleem:*:dedupe:*", count=5000):
            dedupe += 1
        return entries, dedupe
    finally:
        await r.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="500,1000,2000,3000")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data-dir")
    parser.add_argument("--uvloop", action="store_true", help="run the gateway on uvloop")
    parser.add_argument(
        "--appendfsync",
        default="always",
        choices=["always", "everysec", "no"],
        help="the embedded Redis' AOF fsync policy (the engine uses always)",
    )
    args = parser.parse_args()
    if args.serve:
        await serve(Path(args.data_dir), args.port, args.uvloop, args.appendfsync)
        return
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data_dir = tempfile.mkdtemp(prefix="kaleem-bench-")
    cmd = [sys.executable, __file__, "--serve", "--port", str(port), "--data-dir", data_dir]
    cmd += ["--appendfsync", args.appendfsync]
    if args.uvloop:
        cmd.append("--uvloop")
    env = {**os.environ, "KALEEM_LOG_LEVEL": "WARNING"}
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        info = json.loads(await proc.stdout.readline())
        url = f"http://127.0.0.1:{port}/webhooks/whatsapp/{info['channel_id']}"
        results = []
        n = 0
        for rate in [int(r) for r in args.rates.split(",")]:
            result = await step(url, rate, args.seconds, n)
            n += result["sent"]
            results.append(result)
            print(json.dumps(result), flush=True)
        accepted = sum(r["accepted"] for r in results)
        entries, dedupe = await count_inbox(info["redis_url"])
        good = [r for r in results if r["p99_ms"] <= 50 and r["accepted"] == r["sent"]]
        print(
            json.dumps(
                {
                    "summary": True,
                    "uvloop": args.uvloop,
                    "appendfsync": args.appendfsync,
                    "accepted_total": accepted,
                    "inbox_entries": entries,
                    "dedupe_keys": dedupe,
                    "lost": accepted - entries,
                    "best_rate_with_p99_le_50ms": max(
                        (r["accepted_per_s"] for r in good), default=0
                    ),
                }
            ),
            flush=True,
        )
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=15)


if __name__ == "__main__":
    if "--uvloop" in sys.argv and "--serve" in sys.argv:
        import uvloop

        uvloop.install()
    asyncio.run(main())
