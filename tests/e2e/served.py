"""A real ``kaleem serve`` process on a data dir, as an operator (or an orchestrator) runs it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from tests.conftest import new_secret
from tests.fakes.fake_telegram import DEFAULT_TOKEN

KALEEM = str(Path(sys.executable).with_name("kaleem"))


def alive_of(procs: list[psutil.Process]) -> list[str]:
    """Processes of the list still running (a zombie awaiting its reaper counts as gone)."""
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{p.pid} {' '.join(p.cmdline())[:80]}")
        except psutil.NoSuchProcess:
            continue
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str, token: str | None = None) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def post_json(url: str, token: str, body: dict[str, object]) -> dict[str, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as resp:
        data: dict[str, Any] = json.loads(resp.read())
        return data


@dataclass(frozen=True)
class Shop:
    """A merchant made by the operator, with one Telegram channel on a fake Bot API."""

    api_key: str
    channel_id: str
    secret: str


async def telegram_shop(base_url: str, data_dir: Path, telegram_base: str, name: str) -> Shop:
    token = (data_dir / "admin.token").read_text().strip()
    secret = new_secret()
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base_url}/api/v1/merchants",
            json={"name": name, "default_language": "en"},
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            assert resp.status == 201, await resp.text()
            api_key = (await resp.json())["api_key"]
        channel = {
            "kind": "telegram",
            "bot_token": DEFAULT_TOKEN,
            "secret_token": secret,
            "api_base": telegram_base,
        }
        async with http.post(
            f"{base_url}/api/v1/channels",
            json=channel,
            headers={"Authorization": f"Bearer {api_key}"},
        ) as resp:
            assert resp.status == 201, await resp.text()
            channel_id = (await resp.json())["id"]
    return Shop(api_key, channel_id, secret)


class Served:
    def __init__(
        self,
        data_dir: Path,
        models_dir: Path,
        log_path: Path | None = None,
        role: str = "all",
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")} | {
            "KALEEM_MODELS_DIR": str(models_dir),
            "KALEEM_ALLOW_PRIVATE_API_BASE": "1",
            "KALEEM_RAY_DASHBOARD": "0",
            "KALEEM_LOG_LEVEL": "WARNING",
            "RAY_AUTH_MODE": "disabled",
        }
        self.data_dir = data_dir
        self.log_path = log_path  # the engine's stderr, for a failing test to show
        self.role = role
        # What `kaleem serve` prints (the workers role has no /readyz: it says when it runs).
        self.stdout_path = data_dir.parent / f"serve-{role}-{self.port}.out"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab") if self.log_path else None
        try:
            self.stdout_path.parent.mkdir(parents=True, exist_ok=True)
            with self.stdout_path.open("ab") as out:
                self.proc = subprocess.Popen(
                    [KALEEM, "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]
                    + ([] if self.role == "all" else ["--role", self.role]),
                    env=self.env,
                    stdout=out,
                    stderr=log or subprocess.DEVNULL,
                )
        finally:
            if log is not None:
                log.close()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "kaleem serve exited during start-up"
            if self.role == "workers":
                if "Kaleem workers are running" in self.stdout_path.read_text():
                    return
                time.sleep(0.5)
                continue
            try:
                status, body = get_json(f"{self.url}/readyz")
                if status == 200 and body.get("ready"):
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.5)
        raise AssertionError("engine never became ready")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KALEEM, *args, "--url", self.url, "--data-dir", str(self.data_dir)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def descendants(self) -> list[psutil.Process]:
        """Everything the engine started: Ray's GCS, raylet, workers, Redis."""
        assert self.proc is not None
        return psutil.Process(self.proc.pid).children(recursive=True)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=90)
