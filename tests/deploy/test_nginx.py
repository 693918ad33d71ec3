"""deploy/nginx/nginx.conf, run for real on this machine's nginx in front of two gateway
processes on loopback: requests spread over both, a WebSocket round trip passes through with
the proxy headers, oversized bodies stop at the edge, and when one replica dies every request
still succeeds on the other."""

from __future__ import annotations

import collections
import signal
import ssl
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from tests.deploy import nginx_harness as h

pytestmark = pytest.mark.skipif(
    not Path(h.NGINX).exists(), reason="nginx missing: run `make setup`"
)
FAKE = Path(__file__).with_name("fake_gateway.py")
REQUESTS = 40


@dataclass
class Stack:
    http: int
    https: int
    workdir: Path
    gateways: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    nginx: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.https}"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    # Workers drop to `nobody` when the master runs as root: give them a traversable dir.
    workdir = Path(tempfile.mkdtemp(prefix="kaleem-nginx-"))
    workdir.chmod(0o755)
    s = Stack(http=h.free_port(), https=h.free_port(), workdir=workdir)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ports = {}
        for name in ("a", "b"):
            port = h.free_port()
            proc = subprocess.Popen(
                [sys.executable, str(FAKE), str(port), name],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            procs.append(proc)
            s.gateways[name] = proc
            ports[name] = port
        for name, port in ports.items():
            h.wait_listening(port, s.gateways[name])
        conf = h.render(
            workdir,
            upstreams=[f"127.0.0.1:{p}" for p in ports.values()],
            http_port=s.http,
            https_port=s.https,
        )
        check = subprocess.run(
            h.nginx_cmd(workdir, conf, "-t"), capture_output=True, text=True, check=False
        )
        assert check.returncode == 0, check.stderr
        log = (workdir / "nginx.out").open("wb")
        s.nginx = subprocess.Popen(
            h.nginx_cmd(workdir, conf, "-g", "daemon off;"), stdout=log, stderr=log
        )
        procs.append(s.nginx)
        h.wait_listening(s.https, s.nginx)
        h.wait_listening(s.http, s.nginx)
        yield s
    finally:
        for proc in procs:
            h.stop(proc)
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE  # the test's own self-signed certificate
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=insecure)) as session:
        yield session


async def _who(client: aiohttp.ClientSession, stack: Stack) -> dict[str, object]:
    async with client.get(f"{stack.base}/healthz") as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, object] = await resp.json()
        return body


async def test_lb_health_answers_on_both_listeners_and_http_redirects_to_tls(
    stack: Stack, client: aiohttp.ClientSession
) -> None:
    async with client.get(f"http://127.0.0.1:{stack.http}/lb-health") as resp:
        assert resp.status == 200 and await resp.text() == "ok\n"
    async with client.get(f"{stack.base}/lb-health") as resp:
        assert resp.status == 200 and await resp.text() == "ok\n"
        assert "max-age=" in resp.headers["Strict-Transport-Security"]
    async with client.get(
        f"http://127.0.0.1:{stack.http}/api/v1/channels?x=1", allow_redirects=False
    ) as resp:
        assert resp.status == 308
        assert resp.headers["Location"].startswith("https://127.0.0.1")
        assert resp.headers["Location"].endswith("/api/v1/channels?x=1")
    async with client.get(f"{stack.base}/metrics") as resp:
        assert resp.status == 404  # per-replica metrics are not exposed at the edge


async def test_requests_spread_over_both_gateways_with_proxy_headers(
    stack: Stack, client: aiohttp.ClientSession
) -> None:
    seen = collections.Counter()
    for _ in range(REQUESTS):
        body = await _who(client, stack)
        seen[str(body["instance"])] += 1
        headers = body["headers"]
        assert isinstance(headers, dict)
        assert headers["X-Forwarded-For"] == "127.0.0.1"
        assert headers["X-Forwarded-Proto"] == "https"
        assert len(str(headers["X-Request-ID"])) == 32
    assert set(seen) == {"a", "b"}, seen
    # least_conn with one request at a time degrades to round robin: an even split.
    assert min(seen.values()) >= REQUESTS // 4, seen


async def test_websocket_round_trip_passes_through_the_upgrade(
    stack: Stack, client: aiohttp.ClientSession
) -> None:
    url = f"wss://127.0.0.1:{stack.https}/ws/webchat/m_1?customer=c_1"
    instances = set()
    for i in range(4):  # several sockets: each upgrade is proxied, to either replica
        async with client.ws_connect(url) as ws:
            for j in range(3):
                await ws.send_str(f"hello {i}.{j}")
                reply = await ws.receive_json(timeout=10)
                assert reply["echo"] == f"hello {i}.{j}"
                assert reply["headers"]["X-Forwarded-Proto"] == "https"
            instances.add(reply["instance"])
    assert instances <= {"a", "b"} and instances


async def test_least_conn_sends_new_requests_away_from_a_busy_replica(
    stack: Stack, client: aiohttp.ClientSession
) -> None:
    """Round robin would keep alternating; least_conn (counted in the shared zone, across
    workers) sends every request to the replica that is not holding an open WebSocket."""
    async with client.ws_connect(f"wss://127.0.0.1:{stack.https}/ws/webchat/m_2") as ws:
        await ws.send_str("hold")
        busy = (await ws.receive_json(timeout=10))["instance"]
        seen = collections.Counter()
        for _ in range(10):
            seen[str((await _who(client, stack))["instance"])] += 1
    assert seen == {({"a", "b"} - {busy}).pop(): 10}, (busy, seen)


async def test_body_limit_is_enforced_at_the_edge(
    stack: Stack, client: aiohttp.ClientSession
) -> None:
    url = f"{stack.base}/api/v1/playground/messages"
    async with client.post(url, data=b"x" * 1024) as resp:
        assert resp.status == 200
        assert (await resp.json())["received"] == 1024
    too_big = 51 * 1024 * 1024
    headers = {"Content-Length": str(too_big), "Content-Type": "application/json"}

    async def body() -> AsyncIterator[bytes]:
        yield b"{}"  # nginx answers from Content-Length alone, before reading any more

    async with client.post(url, data=body(), headers=headers) as resp:
        assert resp.status == 413


async def test_failover_when_one_gateway_dies(stack: Stack, client: aiohttp.ClientSession) -> None:
    """Runs last in this module: it kills replica "a" for good."""
    victim = stack.gateways["a"]
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=5)
    seen = collections.Counter()
    for _ in range(REQUESTS):
        body = await _who(client, stack)  # asserts 200 on every single request
        seen[str(body["instance"])] += 1
    assert seen == {"b": REQUESTS}
    # A new WebSocket also lands on the survivor.
    async with client.ws_connect(f"wss://127.0.0.1:{stack.https}/ws/webchat/m_1") as ws:
        await ws.send_str("still there?")
        reply = await ws.receive_json(timeout=10)
        assert reply == {**reply, "echo": "still there?", "instance": "b"}
    assert stack.nginx is not None and stack.nginx.poll() is None  # nginx itself stayed up
