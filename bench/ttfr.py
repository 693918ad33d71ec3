"""TTFR benchmark: webhook received → sendMessage received by a fake Telegram on loopback.

Starts the real engine (embedded Redis, Ray, Serve, models, gateway), creates M merchants
with the demo catalog and a Telegram channel each, then drives signed webhooks at several
rates from N distinct customers and prints one JSON document. Bounded: every step has a
message count and a deadline; traffic goes to 127.0.0.1 only.

    make bench-ttfr            # or: .venv/bin/python bench/ttfr.py --rates 5,10,20,40
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from actors.runtime import Runtime
from bench.harness import engine_runtime
from engine.demo.seed import demo_merchant
from tests.fakes.fake_telegram import DEFAULT_TOKEN, FakeCall, FakeTelegram, make_update

QUESTIONS = [
    "أبغى جزمة رياضية",
    "do you have white sneakers?",
    "كم رسوم الشحن؟",
    "what is your return policy?",
    "عندكم عطر عود؟",
    "I need a leather bag",
    "ساعة رجالية",
    "phone charger",
]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[idx]


async def run(args: argparse.Namespace, runtime: Runtime) -> dict[str, Any]:
    await runtime.start_gateway()
    base = f"http://127.0.0.1:{runtime.port}"
    sent_at: dict[str, float] = {}
    latencies: dict[str, float] = {}
    done = asyncio.Event()
    expected = 0

    def on_message(call: FakeCall) -> None:
        chat = str(call.json.get("chat_id"))
        if chat in sent_at and chat not in latencies:
            latencies[chat] = call.received_at - sent_at[chat]
            if len(latencies) >= expected:
                done.set()

    fake = FakeTelegram(on_message=on_message)
    await fake.start()
    channels: list[tuple[str, str]] = []
    async with aiohttp.ClientSession() as session:
        for m in range(args.merchants):
            merchant = await demo_merchant(
                session, base, runtime.settings.admin_token, f"Bench {m}"
            )
            auth = {"Authorization": f"Bearer {merchant['api_key']}"}
            secret = secrets.token_urlsafe(16)
            async with session.post(
                f"{base}/api/v1/channels",
                json={
                    "kind": "telegram",
                    "bot_token": DEFAULT_TOKEN,
                    "secret_token": secret,
                    "api_base": fake.base_url,
                },
                headers=auth,
            ) as r:
                channels.append(((await r.json())["id"], secret))

        update_ids = itertools.count(1)
        chats = itertools.count(10_000_000)
        conn = aiohttp.TCPConnector(limit=256)
        results = []
        async with aiohttp.ClientSession(connector=conn) as hooks:

            async def fire(channel: tuple[str, str], chat: int, text: str) -> None:
                body = orjson.dumps(make_update(next(update_ids), chat, text))
                sent_at[str(chat)] = time.monotonic()
                async with hooks.post(
                    f"{base}/webhooks/telegram/{channel[0]}",
                    data=body,
                    headers={
                        "X-Telegram-Bot-Api-Secret-Token": channel[1],
                        "Content-Type": "application/json",
                    },
                ) as r:
                    await r.read()

            # warm-up (not measured): first calls pay for lazy initialisation
            warm = [
                fire(channels[i % len(channels)], next(chats), QUESTIONS[i % 8]) for i in range(8)
            ]
            expected = len(sent_at) + 8
            await asyncio.gather(*warm)
            await asyncio.wait_for(done.wait(), timeout=120)

            for rate in args.rates:
                sent_at.clear()
                latencies.clear()
                done.clear()
                stats_before = await runtime_stats(runtime)
                n = max(1, int(rate * args.seconds))
                expected = n
                t0 = time.monotonic()
                tasks = []
                for i in range(n):
                    target = t0 + i / rate
                    delay = target - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    tasks.append(
                        asyncio.create_task(
                            fire(
                                channels[i % len(channels)],
                                next(chats),
                                QUESTIONS[i % len(QUESTIONS)],
                            )
                        )
                    )
                await asyncio.gather(*tasks)
                send_s = time.monotonic() - t0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), timeout=args.drain_timeout)
                stats_after = await runtime_stats(runtime)
                vals = [v * 1000 for v in latencies.values()]
                turns = stats_after["observed_turns"] - stats_before["observed_turns"]
                infer = stats_after["inference_s_total"] - stats_before["inference_s_total"]
                turn_s = stats_after["turn_s_total"] - stats_before["turn_s_total"]
                results.append(
                    {
                        "target_rate_per_s": rate,
                        "achieved_rate_per_s": round(n / send_s, 2),
                        "messages": n,
                        "answered": len(vals),
                        "ttfr_ms": {
                            "p50": round(pct(vals, 50), 1),
                            "p95": round(pct(vals, 95), 1),
                            "p99": round(pct(vals, 99), 1),
                            "mean": round(statistics.fmean(vals), 1) if vals else None,
                        },
                        "model_inference_ms_per_message": round(1000 * infer / turns, 2)
                        if turns
                        else None,
                        "turn_ms_per_message": round(1000 * turn_s / turns, 2) if turns else None,
                    }
                )
    await fake.stop()
    await runtime.stop()
    ok = [r for r in results if r["answered"] == r["messages"] and r["ttfr_ms"]["p95"] < 2000]
    return {
        "benchmark": "ttfr",
        "merchants": args.merchants,
        "seconds_per_rate": args.seconds,
        "machine": {"cpus": os.cpu_count()},
        "results": results,
        "highest_rate_with_p95_under_2s": max((r["target_rate_per_s"] for r in ok), default=None),
    }


async def runtime_stats(runtime: Runtime) -> dict[str, float]:
    stats = await asyncio.gather(*(h.stats.remote() for h in runtime.hosts))
    return {
        k: sum(float(s[k]) for s in stats)
        for k in ("observed_turns", "inference_s_total", "turn_s_total")
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--merchants", type=int, default=3)
    p.add_argument(
        "--rates", type=lambda s: [float(x) for x in s.split(",")], default=[5.0, 10.0, 20.0, 40.0]
    )
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--drain-timeout", type=float, default=60.0)
    p.add_argument("--out", help="also write the JSON here (Ray may print to stdout)")
    args = p.parse_args()
    with engine_runtime("kaleem-bench-") as runtime:
        out = asyncio.run(run(args, runtime))
    text = json.dumps(out, indent=2)
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
