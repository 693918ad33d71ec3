"""``kaleem serve`` as an operator runs it: a real process, SIGTERM, restart on the same data.

Proves the public contract: readiness, a clean stop that leaves no Ray or Redis process behind,
records that survive a clean restart, and the CLI wrappers against a running engine.
"""

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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

pytestmark = pytest.mark.integration

KALEEM = str(Path(sys.executable).with_name("kaleem"))


def _alive(procs: list[psutil.Process]) -> list[str]:
    """Processes of the list still running (a zombie awaiting its reaper counts as gone)."""
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{p.pid} {' '.join(p.cmdline())[:80]}")
        except psutil.NoSuchProcess:
            continue
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, token: str | None = None) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _post(url: str, token: str, body: dict[str, object]) -> dict[str, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as resp:
        data: dict[str, Any] = json.loads(resp.read())
        return data


class Served:
    def __init__(self, data_dir: Path, models_dir: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")} | {
            "KALEEM_MODELS_DIR": str(models_dir),
            "KALEEM_ALLOW_PRIVATE_API_BASE": "1",
            "KALEEM_RAY_DASHBOARD": "0",
            "KALEEM_LOG_LEVEL": "WARNING",
            "RAY_AUTH_MODE": "disabled",
        }
        self.data_dir = data_dir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [KALEEM, "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "kaleem serve exited during start-up"
            try:
                status, body = _get(f"{self.url}/readyz")
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


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    models = Path(os.environ.get("KALEEM_TEST_MODELS_DIR") or tmp_path / "models")
    s = Served(tmp_path / "data", models)
    yield s
    if s.proc is not None and s.proc.poll() is None:
        s.proc.kill()


def test_serve_stops_cleanly_and_keeps_records_across_restart(served: Served) -> None:
    served.start()
    started = served.descendants()
    names = " ".join(p.name() for p in started)
    assert "redis-server" in names and "raylet" in names and "gcs_server" in names
    token = (served.data_dir / "admin.token").read_text().strip()

    created = served.cli("merchant", "create", "--name", "Lifecycle Shop", "--language", "en")
    assert created.returncode == 0, created.stderr
    merchant = json.loads(created.stdout)
    catalog = served.data_dir / "catalog.csv"
    catalog.write_text("sku,title,price,currency\nL-1,Linen shirt,120,SAR\n,missing sku,1,SAR\n")
    imported = served.cli("catalog", "import", str(catalog), "--merchant", merchant["id"])
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["status"] == "done"
    assert "line 3" in imported.stderr
    missing = served.cli("catalog", "import", "/nonexistent.csv", "--merchant", merchant["id"])
    assert missing.returncode == 2 and "no such file" in missing.stderr

    assert served.stop() == 0
    assert _alive(started) == [], "orphaned Ray or Redis processes"

    served.start()
    started = served.descendants()
    status, _ = _get(f"{served.url}/api/v1/jobs/nope", merchant["api_key"])
    assert status == 404  # the API key (and so the merchant) survived the restart
    status, _ = _get(f"{served.url}/api/v1/jobs/nope", "kal_wrong")
    assert status == 401
    status, body = _get(f"{served.url}/readyz")
    assert status == 200 and body["ready"] is True
    reply = _post(
        f"{served.url}/api/v1/playground/messages",
        merchant["api_key"],
        {"customer_id": "after-restart", "text": "linen shirt"},
    )
    assert [p["sku"] for p in reply["products"]] == ["L-1"]  # vectors survived too
    assert token == (served.data_dir / "admin.token").read_text().strip()
    assert served.stop() == 0
    assert _alive(started) == []
