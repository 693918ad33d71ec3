"""deploy/kuberay/: the RayService's Serve config is validated by Serve's own schema and its
import paths build real applications; the gateway Deployment, Service and HPA fit together,
every container has requests and limits, and the probes hit /healthz and /readyz."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import ray
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERAY = ROOT / "deploy" / "kuberay"


def _docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for f in sorted(KUBERAY.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(f.read_text()) if d]
    return docs


def _one(kind: str) -> dict[str, Any]:
    (doc,) = [d for d in _docs() if d["kind"] == kind]
    return doc


def _pod_specs() -> list[tuple[str, dict[str, Any]]]:
    rs = _one("RayService")["spec"]["rayClusterConfig"]
    specs = [("ray-head", rs["headGroupSpec"]["template"]["spec"])]
    specs += [(g["groupName"], g["template"]["spec"]) for g in rs["workerGroupSpecs"]]
    specs.append(("gateway", _one("Deployment")["spec"]["template"]["spec"]))
    return specs


def test_every_manifest_has_api_version_kind_name_and_namespace() -> None:
    kinds = set()
    expected = {
        "RayService": "ray.io/v1",
        "Deployment": "apps/v1",
        "Service": "v1",
        "HorizontalPodAutoscaler": "autoscaling/v2",
        "PodDisruptionBudget": "policy/v1",
    }
    for doc in _docs():
        assert doc["apiVersion"] == expected[doc["kind"]], doc["kind"]
        assert doc["metadata"]["name"] and doc["metadata"]["namespace"] == "kaleem"
        kinds.add(doc["kind"])
    assert kinds == set(expected)


def test_every_container_requests_and_limits_cpu_and_memory_and_runs_non_root() -> None:
    for name, spec in _pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        for c in spec["containers"]:
            res = c["resources"]
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(res[part]), (name, part)
            assert not any("value" in e and "TOKEN" in e["name"] for e in c.get("env", []))


def test_serve_config_passes_serves_schema_and_builds_the_embedder_app() -> None:
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
    from ray.serve.schema import ServeDeploySchema

    rs = _one("RayService")
    assert rs["spec"]["rayClusterConfig"]["rayVersion"] == ray.__version__
    config = ServeDeploySchema.model_validate(yaml.safe_load(rs["spec"]["serveConfigV2"]))
    apps = {a.name: a for a in config.applications}
    assert set(apps) == {"embedder"}  # the name actors.runtime looks up
    for app in apps.values():
        module, attr = app.import_path.split(":")
        builder = getattr(importlib.import_module(module), attr)
        built = call_user_app_builder_with_args_if_necessary(builder, app.args or {})
        ingress = built._bound_deployment.name
        assert [d.name for d in app.deployments] == [ingress], app.name
        assert app.route_prefix is None  # called by handle only
    assert apps["embedder"].args == {
        "models_dir": "/opt/kaleem/models",
        "model": "e5",
        "threads": 1,
    }


def test_gateway_probes_service_and_hpa_fit_together() -> None:
    dep = _one("Deployment")
    pod = dep["spec"]["template"]
    (c,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert ports["http"] == 8080
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["KALEEM_PORT"] == "8080"
    # The head service KubeRay creates for this RayService.
    assert env["RAY_ADDRESS"] == f"ray://{_one('RayService')['metadata']['name']}-head-svc:10001"
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    svc = _one("Service")
    labels = pod["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = _one("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": dep["metadata"]["name"],
    }
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]
    pdb = _one("PodDisruptionBudget")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()


def test_worker_groups_add_nodes_with_cpus_beside_a_zero_cpu_head() -> None:
    """KubeRay scales ``workerGroupSpecs`` replicas (by hand or the autoscaler); the engine's
    hosts and delivery actors reserve a sliver of CPU, so they spread over these workers only."""
    from actors.placement import SPREAD_CPU

    rc = _one("RayService")["spec"]["rayClusterConfig"]
    head = rc["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert rc["enableInTreeAutoscaling"] is True
    (head_container,) = head["template"]["spec"]["containers"]
    groups = rc["workerGroupSpecs"]
    assert groups
    for g in groups:
        assert 1 <= g["minReplicas"] <= g["replicas"] <= g["maxReplicas"], g["groupName"]
        assert g["rayStartParams"].get("num-cpus", "1") != "0", g["groupName"]
        (c,) = g["template"]["spec"]["containers"]
        assert c["image"] == head_container["image"], g["groupName"]
        assert {"secretRef": {"name": "kaleem-ray"}} in c["envFrom"], g["groupName"]
        assert float(c["resources"]["requests"]["cpu"]) >= 1 > SPREAD_CPU, g["groupName"]
