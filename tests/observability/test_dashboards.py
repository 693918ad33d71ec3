"""The provisioned Grafana dashboards load and query what exists: valid JSON with unique uids,
every panel has a query, every datasource uid is provisioned, and every PromQL query parses
(promtool checks them as recording rules after Grafana's variables are substituted)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "observability" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
PROVISIONING = GRAFANA / "provisioning"


def _load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def _query_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p.get("type") != "row"]


def _datasources() -> dict[str, str]:
    cfg = yaml.safe_load((PROVISIONING / "datasources" / "datasources.yml").read_text())
    return {d["uid"]: d["type"] for d in cfg["datasources"]}


def test_the_four_dashboards_exist_with_unique_uids_and_titles() -> None:
    boards = {p.name: _load(p) for p in DASHBOARDS}
    assert set(boards) >= {
        "api-health.json",
        "bot-pipeline.json",
        "business-kpis.json",
        "slo.json",
    }
    uids = [b["uid"] for b in boards.values()]
    titles = [b["title"] for b in boards.values()]
    assert len(set(uids)) == len(uids) and len(set(titles)) == len(titles)
    for b in boards.values():
        assert re.fullmatch(r"[a-z0-9-]{1,40}", b["uid"]), b["uid"]  # Grafana's uid limit
        assert "kaleem" in b["tags"]


def test_every_panel_has_a_query_and_a_unique_id_and_fits_the_grid() -> None:
    for path in DASHBOARDS:
        board = _load(path)
        ids = [p["id"] for p in board["panels"]]
        assert len(set(ids)) == len(ids), path.name
        panels = _query_panels(board)
        assert len(panels) >= 6, path.name
        for panel in panels:
            where = f"{path.name}: {panel['title']}"
            targets = panel.get("targets") or []
            assert targets, where
            for t in targets:
                assert (t.get("expr") or t.get("query") or "").strip(), where
            refs = [t["refId"] for t in targets]
            assert len(set(refs)) == len(refs), where
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24 and pos["h"] > 0, where
        # Nested (collapsed) rows would hide panels from the metric-name check.
        assert not any(p.get("panels") for p in board["panels"]), path.name


def test_every_datasource_uid_resolves_to_a_provisioned_datasource() -> None:
    provisioned = _datasources()
    assert provisioned == {"prometheus": "prometheus", "loki": "loki", "tempo": "tempo"}
    used: set[str] = set()
    for path in DASHBOARDS:
        board = _load(path)
        refs = [p["datasource"] for p in _query_panels(board)]
        refs += [t["datasource"] for p in _query_panels(board) for t in p["targets"]]
        refs += [v["datasource"] for v in board["templating"]["list"] if "datasource" in v]
        for ref in refs:
            assert provisioned.get(ref["uid"]) == ref["type"], (path.name, ref)
            used.add(ref["uid"])
    assert used == set(provisioned)  # each provisioned datasource is used somewhere
    # Cross-links between datasources point at provisioned uids too.
    text = (PROVISIONING / "datasources" / "datasources.yml").read_text()
    for uid in re.findall(r"datasourceUid:\s*(\S+)", text):
        assert uid in provisioned, uid


def test_dashboard_provider_points_where_compose_mounts_the_json() -> None:
    cfg = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yml").read_text())
    (provider,) = cfg["providers"]
    assert provider["type"] == "file"
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    target = provider["options"]["path"]
    assert any(
        str(m).split(":")[0].endswith("observability/grafana/dashboards")
        and str(m).split(":")[1] == target
        for m in mounts
    ), mounts


def _as_promql(expr: str) -> str:
    """Substitute Grafana's variables with what Grafana would send, for a syntax check."""
    expr = expr.replace("$__rate_interval", "5m").replace("$__range", "1h")
    return re.sub(r"\$\{?[a-zA-Z_]+\}?", ".*", expr)


def _promql_targets() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for path in DASHBOARDS:
        for panel in _query_panels(_load(path)):
            for t in panel["targets"]:
                if t["datasource"]["type"] == "prometheus":
                    out.append((f"{path.name}: {panel['title']}", _as_promql(t["expr"])))
    return out


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing: run `make setup`")
def test_every_promql_query_parses(tmp_path: Path) -> None:
    targets = _promql_targets()
    assert len(targets) >= 40
    rules = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": expr}
                    for i, (_where, expr) in enumerate(targets)
                ],
            }
        ]
    }
    f = tmp_path / "dashboards.rules.yml"
    f.write_text(yaml.safe_dump(rules))
    r = subprocess.run(
        ["promtool", "check", "rules", str(f)], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_slo_dashboard_reads_the_recording_rules_the_alerts_use() -> None:
    board = _load(GRAFANA / "dashboards" / "slo.json")
    exprs = " ".join(t["expr"] for p in _query_panels(board) for t in p["targets"])
    for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d"):
        assert f"kaleem:availability_errors:ratio_rate{window}" in exprs
        assert f"kaleem:ttfr_slow:ratio_rate{window}" in exprs
    assert "/ 0.001" in exprs and "/ 0.01" in exprs  # burn rate against the alert budgets
