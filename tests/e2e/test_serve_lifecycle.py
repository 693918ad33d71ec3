"""``kaleem serve`` as an operator runs it: a real process, SIGTERM, restart on the same data.

Proves the public contract: readiness, a clean stop that leaves no Ray or Redis process behind,
records that survive a clean restart, and the CLI wrappers against a running engine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.served import Served, alive_of, get_json, post_json

pytestmark = pytest.mark.integration


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
    assert alive_of(started) == [], "orphaned Ray or Redis processes"

    served.start()
    started = served.descendants()
    status, _ = get_json(f"{served.url}/api/v1/jobs/nope", merchant["api_key"])
    assert status == 404  # the API key (and so the merchant) survived the restart
    status, _ = get_json(f"{served.url}/api/v1/jobs/nope", "kal_wrong")
    assert status == 401
    status, body = get_json(f"{served.url}/readyz")
    assert status == 200 and body["ready"] is True
    reply = post_json(
        f"{served.url}/api/v1/playground/messages",
        merchant["api_key"],
        {"customer_id": "after-restart", "text": "linen shirt"},
    )
    assert [p["sku"] for p in reply["products"]] == ["L-1"]  # vectors survived too
    assert token == (served.data_dir / "admin.token").read_text().strip()
    assert served.stop() == 0
    assert alive_of(started) == []
