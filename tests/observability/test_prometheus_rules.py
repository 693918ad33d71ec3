"""The alerting assets are checked by the tools that will load them (promtool, amtool), every
alert is unit-tested firing and quiet, has a runbook, and names only metrics the code exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from observability import metrics

ROOT = Path(__file__).resolve().parents[2]
OBS = ROOT / "observability"
PROM = OBS / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
TEST_FILES = sorted((PROM / "tests").glob("*.test.yml"))
DASHBOARDS = sorted((OBS / "grafana" / "dashboards").glob("*.json"))

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool missing: run `make setup`"
)
needs_amtool = pytest.mark.skipif(
    shutil.which("amtool") is None, reason="amtool missing: run `make setup`"
)


def _run(*cmd: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False)


def _alerts() -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for f in RULE_FILES:
        for group in yaml.safe_load(f.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    out[rule["alert"]] = rule
    return out


def _recorded() -> set[str]:
    return {
        rule["record"]
        for f in RULE_FILES
        for group in yaml.safe_load(f.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that look like our series names
    (label values and label matchers are removed first so route strings don't count)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    return {
        t
        for t in _IDENT.findall(expr)
        if t.startswith(("kaleem_", "kaleem:", "process_", "ray_")) or t == "up"
    }


def test_every_alert_has_severity_runbook_and_the_runbook_has_the_sections() -> None:
    alerts = _alerts()
    assert len(alerts) >= 15
    for name, rule in alerts.items():
        labels = rule["labels"]
        annotations = rule["annotations"]
        assert isinstance(labels, dict) and labels["severity"] in {"critical", "warning", "info"}
        assert isinstance(annotations, dict)
        url = annotations["runbook_url"]
        assert url.endswith(f"observability/runbooks/{name}.md"), url
        text = (OBS / "runbooks" / f"{name}.md").read_text()
        for section in ("## Symptoms", "## Diagnose", "```promql", "```logql", "```traceql"):
            assert section in text, (name, section)
        assert "## Steps" in text and "\n1. " in text, name


def test_the_burn_rate_pairs_are_the_sre_workbook_ones() -> None:
    alerts = _alerts()
    for slo in ("Availability", "Latency"):
        fast = str(alerts[f"Kaleem{slo}BudgetBurnFast"]["expr"])
        slow = str(alerts[f"Kaleem{slo}BudgetBurnSlow"]["expr"])
        assert re.search(r"rate1h > \(14\.4 \*", fast) and re.search(r"rate5m > \(14\.4 \*", fast)
        assert re.search(r"rate6h > \(6 \*", fast) and re.search(r"rate30m > \(6 \*", fast)
        assert re.search(r"rate1d > \(3 \*", slow) and re.search(r"rate2h > \(3 \*", slow)
        assert re.search(r"rate3d > \(1 \*", slow) and re.search(r"rate6h > \(1 \*", slow)


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for f in TEST_FILES:
        for case in yaml.safe_load(f.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = set(_alerts())
    assert alerts <= fires, alerts - fires
    assert alerts <= quiet, alerts - quiet


@needs_promtool
def test_promtool_checks_config_and_rules_and_runs_the_unit_tests() -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        jobs = [
            pool.submit(_run, "promtool", "check", "config", PROM / "prometheus.yml"),
            *(pool.submit(_run, "promtool", "test", "rules", t) for t in TEST_FILES),
        ]
        results = [j.result() for j in jobs]
    for r in results:
        assert r.returncode == 0, r.stdout + r.stderr
        assert "FAILED" not in r.stdout


@needs_promtool
def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    """Guards the guard: a syntax error must fail the check this suite relies on."""
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: rate(x[5m]\n")
    assert _run("promtool", "check", "rules", bad).returncode != 0


def test_every_metric_in_rules_and_dashboards_is_exported_by_the_code() -> None:
    exported = metrics.exported_names() | {"up"}
    recorded = _recorded()
    used: dict[str, set[str]] = {}
    for f in RULE_FILES:
        for group in yaml.safe_load(f.read_text())["groups"]:
            for rule in group["rules"]:
                for name in metric_names(str(rule["expr"])):
                    used.setdefault(name, set()).add(f.name)
    for d in DASHBOARDS:
        for panel in json.loads(d.read_text())["panels"]:
            for target in panel.get("targets", []):
                for name in metric_names(str(target.get("expr", ""))):
                    used.setdefault(name, set()).add(d.name)
    assert used, "no metric names parsed"
    unknown = {n: sorted(w) for n, w in used.items() if n not in exported | recorded}
    assert not unknown, f"named in rules/dashboards but never exported: {unknown}"
    # Names must be the stripped ones: Prometheus relabels ray_kaleem_* to kaleem_*.
    assert not [n for n in used if n.startswith("ray_")]


def test_metric_name_parser_ignores_label_values_and_grouping() -> None:
    expr = 'sum by (le, channel) (rate(kaleem_ttfr_seconds_bucket{route="/kaleem_x"}[5m]))'
    assert metric_names(expr) == {"kaleem_ttfr_seconds_bucket"}


def test_label_sets_are_bounded_no_ids() -> None:
    for family in metrics.families():
        for label in family.labelnames:
            assert not label.endswith("_id") and label not in {"customer", "message", "merchant"}


@needs_amtool
def test_amtool_accepts_the_alertmanager_config_and_routes_by_severity() -> None:
    cfg = OBS / "alertmanager" / "alertmanager.yml"
    r = _run("amtool", "check-config", cfg)
    assert r.returncode == 0, r.stdout + r.stderr
    expected = {"critical": "pager", "warning": "team", "info": "email"}
    for severity, receiver in expected.items():
        r = _run(
            "amtool", "config", "routes", "test", f"--config.file={cfg}", f"severity={severity}"
        )
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == receiver, (severity, r.stdout)
    pager = next(x for x in yaml.safe_load(cfg.read_text())["receivers"] if x["name"] == "pager")
    assert {"slack_configs", "telegram_configs", "email_configs"} <= set(pager)
    assert "hooks.slack.com" not in cfg.read_text()  # secrets come from files / env
