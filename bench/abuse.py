"""Abuse benchmark: a normal customer's TTFR, idle and while the public surfaces are attacked.

Starts the real engine (embedded Redis, Ray, Serve, models, gateway) behind this machine's
nginx running the production config (``deploy/nginx``, rendered by the deploy tests' harness),
with nginx as the one trusted proxy. One merchant gets the demo catalog and a Telegram channel
on a fake Bot API; a normal customer writes to it at ``--rate`` (a new chat per message) and
the time from the signed webhook to the fake's ``sendMessage`` is the TTFR. The customer and
the fake Bot API run in a process of their own, as the attacker does: the gateway's event loop
runs in the benchmark's process, and an instrument on the loop under test would charge the
gateway's attack work to its own clock (sending late, stamping the reply late). It is
measured once idle (after a warm-up at the same rate), then again while, all at once:

- ``--webchat-sockets`` hostile webchat sockets on the same merchant, from ``--webchat-ips``
  loopback source addresses, each sending hostile frames as fast as ``--frame-rate``;
- ``--live-sockets`` agent live sockets (``/api/v1/live``) on the merchant's root key;
- a login storm through nginx: ``--login-ips`` source addresses x ``--login-attempts`` wrong
  passwords against the merchant owner's account and random ones;
- a 4,096-digit message from another customer on the same channel.

Prints one JSON document (idle and under-attack p95, their ratio, webhook status counts,
refused sockets and frames, login statuses). Bounded: counts and deadlines everywhere; every
address is on 127.0.0.0/8. It asserts nothing: a benchmark reports.

    .venv/bin/python bench/abuse.py --out abuse.json
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import functools
import itertools
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.runtime import Runtime
from bench.harness import engine_runtime
from bench.ttfr import QUESTIONS, cpu_by_role, engine_cpu, pct
from engine.adapters.redis.server import redis_client
from engine.demo import demo_catalog_bytes, demo_knowledge_bytes
from tests.fakes.fake_telegram import DEFAULT_TOKEN, FakeCall, FakeTelegram, make_update

SELF = str(Path(__file__).resolve())
WARM_UP_S = 5.0
HOSTILE_TEXTS = [  # each within the widget's 4,096 characters and the 16 KiB frame
    "9" * 4096,
    "(" * 2000 + "a" * 2000,
    "ا" * 3000 + " 🛒" * 300,
    "a" * 50 + "!" * 3000,
    " ".join(["sku"] * 800),
    "x" * 5000,  # over 4,096: refused with an error frame
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rate", type=float, default=5.0, help="normal customer messages per second")
    p.add_argument("--seconds", type=float, default=15.0, help="per phase")
    p.add_argument("--webchat-sockets", type=int, default=200)
    p.add_argument("--webchat-ips", type=int, default=8)
    p.add_argument("--frame-rate", type=float, default=2.0, help="frames/s per hostile socket")
    p.add_argument("--live-sockets", type=int, default=100)
    p.add_argument("--live-ips", type=int, default=5)
    p.add_argument("--login-ips", type=int, default=50)
    p.add_argument("--login-attempts", type=int, default=20, help="per source address")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="idle + attack phases, back to back, this many times; the medians are reported\n"
        "(a shared box's noise moves single phases by several times)",
    )
    p.add_argument("--drain-timeout", type=float, default=60.0)
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--attacker", help=argparse.SUPPRESS)  # internal: the attack process
    p.add_argument("--customer", action="store_true", help=argparse.SUPPRESS)  # internal
    args = p.parse_args(argv)
    for name in ("webchat_ips", "live_ips", "login_ips"):
        if not 1 <= getattr(args, name) <= 200:
            p.error(f"--{name.replace('_', '-')} must be 1..200 (loopback sources)")
    if not 1 <= args.rounds <= 10:
        p.error("--rounds must be 1..10")
    if args.seconds <= 0 or args.rate <= 0 or args.seconds * args.rate > 5000:
        p.error("--rate x --seconds must be positive and at most 5000 messages")
    return args


def _source(block: int, i: int) -> str:
    """A loopback source address: 127.<block>.0.<i+1> (all of 127/8 is on lo)."""
    return f"127.{block}.0.{i + 1}"


def _client(source: str | None = None, limit: int = 100) -> aiohttp.ClientSession:
    kwargs: dict[str, Any] = {"limit": limit}
    if source:
        kwargs["local_addr"] = (source, 0)
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(**kwargs), timeout=aiohttp.ClientTimeout(total=30)
    )


class Nginx:
    """The production nginx config on this machine (``tests/deploy/nginx_harness.py``)."""

    def __init__(self, upstream: str) -> None:
        from tests.deploy import nginx_harness as h

        self._h = h
        self.workdir = Path(tempfile.mkdtemp(prefix="kaleem-abuse-nginx-"))
        self.https = h.free_port()
        conf = h.render(
            self.workdir, upstreams=[upstream], http_port=h.free_port(), https_port=self.https
        )
        self._log = (self.workdir / "nginx.log").open("wb")
        self.proc = subprocess.Popen(
            h.nginx_cmd(self.workdir, conf, "-g", "daemon off;"),
            stdout=self._log,
            stderr=self._log,
        )
        h.wait_listening(self.https, self.proc)
        self.base_url = f"https://127.0.0.1:{self.https}"

    def stop(self) -> None:
        self._h.stop(self.proc)
        self._log.close()


async def _json(s: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> tuple[int, Any]:
    async with s.request(method, url, **kw) as r:
        body = await r.read()
        try:
            return r.status, orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            return r.status, None


async def _wait_job(s: aiohttp.ClientSession, base: str, auth: dict[str, str], job: str) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        _, out = await _json(s, "GET", f"{base}/api/v1/jobs/{job}", headers=auth)
        if out and out.get("status") != "running":
            return
        await asyncio.sleep(0.2)


class Customer:
    """The normal customer: signed Telegram webhooks at a steady rate, TTFR per message."""

    def __init__(self, base: str, channel: tuple[str, str]) -> None:
        self.base = base
        self.channel = channel
        self.sent_at: dict[str, float] = {}
        self.latency: dict[str, float] = {}
        self.statuses: collections.Counter[int] = collections.Counter()
        self.waiting: dict[str, asyncio.Event] = {}
        self._updates = itertools.count(1)
        self._chats = itertools.count(20_000_000)

    def on_message(self, call: FakeCall) -> None:
        chat = str(call.json.get("chat_id"))
        if chat in self.sent_at and chat not in self.latency:
            self.latency[chat] = call.received_at - self.sent_at[chat]
            event = self.waiting.get(chat)
            if event is not None:
                event.set()

    async def send(self, s: aiohttp.ClientSession, text: str) -> str:
        chat = next(self._chats)
        self.waiting[str(chat)] = asyncio.Event()
        body = orjson.dumps(make_update(next(self._updates), chat, text))
        self.sent_at[str(chat)] = time.monotonic()
        try:
            async with s.post(
                f"{self.base}/webhooks/telegram/{self.channel[0]}",
                data=body,
                headers={
                    "X-Telegram-Bot-Api-Secret-Token": self.channel[1],
                    "Content-Type": "application/json",
                },
            ) as r:
                await r.read()
                self.statuses[r.status] += 1
        except aiohttp.ClientError:
            self.statuses[0] += 1
        return str(chat)

    async def phase(self, rate: float, seconds: float, drain_s: float) -> dict[str, Any]:
        self.statuses.clear()
        chats: list[str] = []
        n = max(1, int(rate * seconds))
        async with _client(limit=64) as s:
            t0 = time.monotonic()
            tasks = []
            for i in range(n):
                delay = t0 + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(self.send(s, QUESTIONS[i % len(QUESTIONS)])))
            chats = list(await asyncio.gather(*tasks))
        waits = [self.waiting[c].wait() for c in chats]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*waits), drain_s)
        values = [self.latency[c] * 1000 for c in chats if c in self.latency]
        return {
            "messages": n,
            "answered": len(values),
            "ttfr_p50_ms": round(pct(values, 50), 1),
            "ttfr_p95_ms": round(pct(values, 95), 1),
            "webhook_status": {str(k): v for k, v in sorted(self.statuses.items())},
            # [ms, seconds into the phase] of the five slowest: a stall shows as neighbours.
            "slowest": sorted(
                (
                    (round(self.latency[c] * 1000), round(i / rate, 1))
                    for i, c in enumerate(chats)
                    if c in self.latency
                ),
                reverse=True,
            )[:5],
        }


class Attack:
    """Every hostile client at once, until ``stop``; counts what the engine answered."""

    def __init__(self, args: argparse.Namespace, gw: str, edge: str, merchant: dict[str, Any]):
        self.args = args
        self.gw = gw
        self.edge = edge
        self.merchant = merchant
        self.stop = asyncio.Event()
        self.counts: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )
        self._sessions: list[aiohttp.ClientSession] = []

    def _count(self, area: str, what: str | int) -> None:
        self.counts[area][str(what)] += 1

    def session(self, source: str, limit: int = 100) -> aiohttp.ClientSession:
        s = _client(source, limit)
        self._sessions.append(s)
        return s

    async def close(self) -> None:
        for s in self._sessions:
            await s.close()

    async def _guard(self, area: str, work: Callable[[], Awaitable[None]]) -> None:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._count(area, f"error:{type(exc).__name__}")

    async def webchat_socket(self, i: int) -> None:
        """One hostile client: a session, a socket, frames as fast as ``--frame-rate``; when
        the engine closes the socket it comes back with a new session (a second later when
        it is refused), until the attack ends."""
        s = self.session(_source(20, i % self.args.webchat_ips))
        while not self.stop.is_set():
            if not await self._one_webchat_socket(i, s):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), 1.0)

    async def _one_webchat_socket(self, i: int, s: aiohttp.ClientSession) -> bool:
        mid = self.merchant["id"]
        status, body = await _json(s, "POST", f"{self.gw}/webchat/{mid}/session", json={})
        self._count("webchat_session", status)
        if status not in (200, 201) or not body:
            return False
        url = f"{self.gw.replace('http', 'ws')}/ws/webchat/{mid}?token={body['token']}"
        try:
            ws = await s.ws_connect(url, heartbeat=None)
        except aiohttp.WSServerHandshakeError as exc:
            self._count("webchat_socket", exc.status)
            return False
        self._count("webchat_socket", 101)
        reader = asyncio.create_task(self._read_webchat(ws))
        try:
            gap = 1.0 / self.args.frame_rate
            for n in itertools.count():
                if self.stop.is_set() or ws.closed:
                    break
                text = HOSTILE_TEXTS[(i + n) % len(HOSTILE_TEXTS)]
                frame = {"type": "message", "id": secrets.token_hex(6), "text": text}
                try:
                    await ws.send_str(orjson.dumps(frame).decode())  # UTF-8, as a browser sends
                except ConnectionResetError:
                    break
                self._count("webchat_frames", "sent")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), gap)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            await ws.close()
        return True

    async def _read_webchat(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            frame = orjson.loads(msg.data)
            kind = frame.get("type")
            if kind == "error":
                self._count("webchat_frames", f"error:{frame.get('code') or 'other'}")
            elif kind in ("ack", "reply"):
                self._count("webchat_frames", kind)
        if ws.close_code is not None:
            self._count("webchat_socket_closed", ws.close_code)

    async def live_socket(self, i: int) -> None:
        s = self.session(_source(40, i % self.args.live_ips))
        ws = await s.ws_connect(f"{self.gw.replace('http', 'ws')}/api/v1/live", heartbeat=None)
        await ws.send_json({"type": "auth", "token": self.merchant["api_key"]})
        msg = await ws.receive(timeout=30)
        if msg.type == aiohttp.WSMsgType.TEXT and orjson.loads(msg.data).get("type") == "ready":
            self._count("live_socket", "ready")
            await self.stop.wait()
        else:
            code = ws.close_code if msg.type != aiohttp.WSMsgType.CLOSE else msg.data
            self._count("live_socket", f"refused:{code}")
        await ws.close()

    async def login_storm(self, i: int) -> None:
        s = self.session(_source(60, i), limit=4)
        for n in range(self.args.login_attempts):
            if self.stop.is_set():
                break
            email = self.merchant["email"] if n % 2 == 0 else f"x{secrets.token_hex(4)}@x.test"
            status, _ = await _json(
                s,
                "POST",
                f"{self.edge}/api/v1/auth/login",
                json={"email": email, "password": "wrong-" + secrets.token_hex(4)},
                ssl=False,
            )
            self._count("login", status)

    async def run(self, seconds: float) -> dict[str, dict[str, int]]:
        """Everything at once for ``seconds``; the counts."""
        a = self.args
        jobs: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        for area, client, count in (
            ("webchat", self.webchat_socket, a.webchat_sockets),
            ("live", self.live_socket, a.live_sockets),
            ("login", self.login_storm, a.login_ips),
        ):
            jobs += [(area, functools.partial(client, i)) for i in range(count)]
        tasks = [asyncio.create_task(self._guard(area, job)) for area, job in jobs]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)
        self.stop.set()
        _, pending = await asyncio.wait(tasks, timeout=30)
        for t in pending:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.close()
        return {k: dict(sorted(v.items())) for k, v in sorted(self.counts.items())}


def _emit(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


async def _attacker(config: dict[str, Any]) -> None:
    """The attack process: its own interpreter and event loop, so the clients' CPU is not
    charged to the gateway's loop (which runs in the benchmark's process)."""
    args = argparse.Namespace(**config["args"])
    attack = Attack(args, config["gw"], config["edge"], config["merchant"])
    _emit(await attack.run(config["seconds"]))


async def _customer() -> None:
    """The customer process: the fake Bot API and the normal customer, driven by one JSON
    command per stdin line, answering each with one JSON line on stdout."""
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    customer: Customer | None = None
    fake = FakeTelegram(on_message=lambda call: customer.on_message(call) if customer else None)
    _emit({"base_url": await fake.start()})
    try:
        while line := await commands.readline():
            cmd = json.loads(line)
            if cmd["op"] == "channel":
                customer = Customer(cmd["gw"], (cmd["id"], cmd["secret"]))
                _emit({})
            elif customer is None:
                _emit({"error": "no channel yet"})
            elif cmd["op"] == "phase":
                _emit(await customer.phase(cmd["rate"], cmd["seconds"], cmd["drain_s"]))
            elif cmd["op"] == "send":
                async with _client() as s:
                    _emit({"chat": await customer.send(s, cmd["text"])})
            elif cmd["op"] == "latency":
                _emit({"latency": customer.latency.get(cmd["chat"])})
    finally:
        await fake.stop()


class CustomerProcess:
    """The benchmark's side of ``_customer``: one command at a time, bounded by a deadline."""

    def __init__(self, proc: asyncio.subprocess.Process, base_url: str) -> None:
        self.proc = proc
        self.base_url = base_url

    @classmethod
    async def start(cls) -> CustomerProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            SELF,
            "--customer",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), 60)
        if not first:
            raise RuntimeError("the customer process exited before it listened")
        return cls(proc, json.loads(first)["base_url"])

    async def call(self, deadline_s: float, op: str, **kw: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **kw}).encode() + b"\n")
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), deadline_s)
        if not line:
            raise RuntimeError(f"the customer process exited during {op!r}")
        out: dict[str, Any] = json.loads(line)
        return out

    async def phase(self, rate: float, seconds: float, drain_s: float) -> dict[str, Any]:
        return await self.call(
            seconds + drain_s + 30, "phase", rate=rate, seconds=seconds, drain_s=drain_s
        )

    async def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def _attack_process(config: dict[str, Any]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        SELF,
        "--attacker",
        json.dumps(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def _signup(s: aiohttp.ClientSession, gw: str, name: str) -> dict[str, Any]:
    email, password = f"owner-{secrets.token_hex(4)}@shop.test", secrets.token_urlsafe(12)
    status, signup = await _json(
        s,
        "POST",
        f"{gw}/api/v1/auth/signup",
        json={"merchant_name": name, "email": email, "password": password},
    )
    assert status == 201, signup
    status, rotated = await _json(
        s,
        "POST",
        f"{gw}/api/v1/api-keys/root/rotate",
        headers={"Authorization": f"Bearer {signup['access_token']}"},
    )
    assert status == 200, rotated
    return {
        "id": signup["merchant_id"],
        "api_key": rotated["api_key"],
        "email": email,
        "password": password,
    }


async def _catalog(s: aiohttp.ClientSession, gw: str, merchant: dict[str, Any]) -> None:
    auth = {"Authorization": f"Bearer {merchant['api_key']}"}
    for route, data in (
        ("/api/v1/catalog/import", demo_catalog_bytes()),
        ("/api/v1/knowledge/import", demo_knowledge_bytes()),
    ):
        _, job = await _json(
            s,
            "POST",
            f"{gw}{route}",
            data=data,
            headers={**auth, "Content-Type": "application/x-ndjson"},
        )
        await _wait_job(s, gw, auth, job["job_id"])


async def _login(s: aiohttp.ClientSession, edge: str, merchant: dict[str, Any]) -> int:
    status, _ = await _json(
        s,
        "POST",
        f"{edge}/api/v1/auth/login",
        json={"email": merchant["email"], "password": merchant["password"]},
        ssl=False,
    )
    return status


async def _fsync_stalls(redis: Any, since: float, until: float) -> list[int]:
    """Redis's own record of AOF fsyncs that blocked it for 100 ms or more (``LATENCY
    HISTORY``: the worst per second) between two wall-clock times: the disk, not the engine."""
    history = await redis.execute_command("LATENCY", "HISTORY", "aof-fsync-always")
    return [int(ms) for ts, ms in history or [] if int(since) <= int(ts) <= int(until) + 1]


ROLES = {"--attacker": "attacker (hostile clients)", "--customer": "customer + fake Bot API"}


def _cpu() -> dict[str, Any]:
    return engine_cpu("gateway + benchmark", ROLES)


async def _phase(args: argparse.Namespace, customer: CustomerProcess, redis: Any) -> dict[str, Any]:
    """The customer's phase, with the fsync stalls Redis logged while it ran and the CPU each
    process spent in it (ms per second of the phase: where an attack's cost lands)."""
    since, cpu_before = time.time(), _cpu()
    phase = await customer.phase(args.rate, args.seconds, args.drain_timeout)
    until = time.time()
    phase["redis_fsync_stalls_ms"] = await _fsync_stalls(redis, since, until)
    per_s = cpu_by_role(cpu_before, _cpu(), until - since)  # ms per second of the phase
    phase["cpu_ms_per_s"] = {k: round(v) for k, v in per_s.items() if v >= 5}
    return phase


async def _round(
    args: argparse.Namespace,
    customer: CustomerProcess,
    redis: Any,
    nginx: Nginx,
    gw: str,
    shop: dict[str, Any],
    target: dict[str, Any],
) -> dict[str, Any]:
    """One idle phase, then the same traffic under every attack at once."""
    idle = await _phase(args, customer, redis)
    ramp_s = 3.0
    public = {k: v for k, v in target.items() if k != "password"}
    attacker = await _attack_process(
        {
            "args": {k: v for k, v in vars(args).items() if k not in ("out", "attacker")},
            "gw": gw,
            "edge": nginx.base_url,
            "merchant": public,
            "seconds": ramp_s + args.seconds + 2,  # past the phase: its CPU is in the sample
        }
    )
    await asyncio.sleep(ramp_s)  # sockets open, frames flowing, the storm on
    digits_chat = (await customer.call(60, "send", text="7" * 4096))["chat"]
    under = await _phase(args, customer, redis)
    digits_ms = (await customer.call(10, "latency", chat=digits_chat))["latency"]
    async with _client() as s:  # both owners log in, from their own address, in the storm
        target_login, shop_login = (
            await _login(s, nginx.base_url, target),
            await _login(s, nginx.base_url, shop),
        )
    out, _ = await asyncio.wait_for(attacker.communicate(), ramp_s + args.seconds + 120)
    counts = json.loads(out.decode().strip().splitlines()[-1]) if out.strip() else {}
    ratio = under["ttfr_p95_ms"] / idle["ttfr_p95_ms"] if idle["ttfr_p95_ms"] else None
    return {
        "idle": idle,
        "under_attack": under,
        "ratio": round(ratio, 2) if ratio is not None else None,
        "long_digits_message": {
            "digits": 4096,
            "answered": digits_ms is not None,
            "ttfr_ms": round(digits_ms * 1000, 1) if digits_ms is not None else None,
        },
        "owner_login_during_storm": {"attacked_store": target_login, "other_store": shop_login},
        "counts": counts,
    }


async def run(args: argparse.Namespace, runtime: Runtime) -> dict[str, Any]:
    await runtime.start_gateway()
    gw = f"http://127.0.0.1:{runtime.port}"
    nginx = Nginx(f"127.0.0.1:{runtime.port}")
    customer = await CustomerProcess.start()
    redis = redis_client(runtime.settings.redis_url, max_connections=2)
    try:
        async with _client() as s:
            shop = await _signup(s, gw, "Shop")  # the normal customer's store
            target = await _signup(s, gw, "Target")  # the store under attack
            await _catalog(s, gw, shop)
            await _catalog(s, gw, target)
            secret = secrets.token_urlsafe(16)
            _, channel = await _json(
                s,
                "POST",
                f"{gw}/api/v1/channels",
                json={
                    "kind": "telegram",
                    "bot_token": DEFAULT_TOKEN,
                    "secret_token": secret,
                    "api_base": customer.base_url,
                },
                headers={"Authorization": f"Bearer {shop['api_key']}"},
            )
        await customer.call(10, "channel", gw=gw, id=channel["id"], secret=secret)
        # Warm-up, not reported: the first turns of a fresh engine load caches and code paths.
        await customer.phase(args.rate, WARM_UP_S, args.drain_timeout)
        rounds = [
            await _round(args, customer, redis, nginx, gw, shop, target) for _ in range(args.rounds)
        ]
        last = rounds[-1]
        ratios = [r["ratio"] for r in rounds if r["ratio"] is not None]
        ratio = statistics.median(ratios) if ratios else None
        return {
            "benchmark": "abuse",
            "machine": {"cpus": os.cpu_count()},
            "rate_per_s": args.rate,
            "seconds_per_phase": args.seconds,
            "rounds": len(rounds),
            "idle": last["idle"],
            "under_attack": last["under_attack"],
            "idle_p95_ms": statistics.median(r["idle"]["ttfr_p95_ms"] for r in rounds),
            "under_attack_p95_ms": statistics.median(
                r["under_attack"]["ttfr_p95_ms"] for r in rounds
            ),
            "ratio": round(ratio, 2) if ratio is not None else None,
            "within_2x": ratio is not None and ratio <= 2.0,
            "ratio_per_round": [r["ratio"] for r in rounds],
            "long_digits_message": last["long_digits_message"],
            "owner_login_during_storm": last["owner_login_during_storm"],
            "per_round": [
                {k: r[k] for k in ("ratio", "long_digits_message", "owner_login_during_storm")}
                | {"idle_p95_ms": r["idle"]["ttfr_p95_ms"]}
                | {"under_attack_p95_ms": r["under_attack"]["ttfr_p95_ms"]}
                | {
                    key: {"idle": r["idle"][key], "under_attack": r["under_attack"][key]}
                    for key in ("slowest", "redis_fsync_stalls_ms", "cpu_ms_per_s")
                }
                for r in rounds
            ],
            "attack": {
                "target": "another merchant than the normal customer's",
                "webchat_sockets": args.webchat_sockets,
                "webchat_source_ips": args.webchat_ips,
                "live_sockets": args.live_sockets,
                "live_source_ips": args.live_ips,
                "login_source_ips": args.login_ips,
                "login_attempts_per_ip": args.login_attempts,
                "counts": last["counts"],
            },
        }
    finally:
        nginx.stop()
        await customer.stop()
        await redis.aclose()
        await runtime.stop()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.attacker:
        asyncio.run(_attacker(json.loads(args.attacker)))
        return
    if args.customer:
        asyncio.run(_customer())
        return
    with engine_runtime("kaleem-abuse-", trusted_proxies=("127.0.0.1/32",)) as runtime:
        out = asyncio.run(run(args, runtime))
    text = json.dumps(out, indent=2)
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
