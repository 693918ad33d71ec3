"""deploy/docker-compose.yml and the files it points at, validated without a Docker engine:
structure, every mounted or built file exists, healthchecks (or a stated reason), start-up order
on healthy stores, no secret written inline, and the service wiring the configs assume."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import nginx_harness as h

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
REQUIRED = {
    "ray-head",
    "ray-worker",
    "gateway-1",
    "gateway-2",
    "nginx",
    "mongodb",
    "qdrant",
    "redis",
    "prometheus",
    "grafana",
    "loki",
    "promtail",
    "tempo",
    "otel-collector",
    "alertmanager",
}
HOST_PATHS = {"/var/run/docker.sock"}  # host resources, not repo files
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|WEBHOOK", re.I)
REF = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _resolve_default(value: str) -> str:
    """``${VAR:-default}`` → default (what a fresh checkout with .env.example gets)."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def _bind_sources(service: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for mount in service.get("volumes", []):
        source, target = _resolve_default(str(mount)).split(":")[:2]
        if source.startswith((".", "/")):
            out.append((source, target))
    return out


def test_every_service_of_the_stack_is_there() -> None:
    services = _services()
    assert set(services) >= REQUIRED, REQUIRED - set(services)
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
        if "image" in svc and ":" in svc["image"] and "${" not in svc["image"]:
            assert not svc["image"].endswith(":latest"), f"{name}: pin the image"


def test_every_service_has_a_healthcheck_or_a_stated_reason() -> None:
    for name, svc in _services().items():
        check = svc.get("healthcheck")
        if check is None:
            reason = svc.get("x-healthcheck-exempt", "")
            assert len(reason) > 40, f"{name}: no healthcheck and no reason"
            continue
        test = check["test"]
        assert isinstance(test, list) and test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1, name
        assert {"interval", "timeout", "retries"} <= set(check), name
    exempt = {n for n, s in _services().items() if "healthcheck" not in s}
    assert exempt <= {"otel-collector"}, exempt


def test_every_mounted_and_built_file_exists_in_the_repo() -> None:
    checked = 0
    for name, svc in _services().items():
        for source, target in _bind_sources(svc):
            if source in HOST_PATHS:
                continue
            path = (DEPLOY / source).resolve()
            assert path.exists(), f"{name}: {source} -> {target} missing"
            assert ROOT in path.parents, f"{name}: {source} escapes the repo"
            checked += 1
        build = svc.get("build")
        if build:
            context = (DEPLOY / build["context"]).resolve()
            assert context == ROOT, name
            assert (context / build["dockerfile"]).is_file(), name
    assert checked >= 14


def test_gateways_start_on_healthy_stores_and_join_the_nginx_pool() -> None:
    services = _services()
    for gw in ("gateway-1", "gateway-2"):
        svc = services[gw]
        deps = svc["depends_on"]
        for store in ("mongodb", "redis", "qdrant", "ray-head"):
            assert deps[store]["condition"] == "service_healthy", (gw, store)
            assert "healthcheck" in services[store], store
        assert "gateway" in svc["networks"]["default"]["aliases"]
        assert "/readyz" in " ".join(svc["healthcheck"]["test"])
        env = svc["environment"]
        assert env["MONGO_URL"].startswith("mongodb://") and "@mongodb:27017" in env["MONGO_URL"]
        assert env["REDIS_URL"].endswith("@redis:6379/0")
        assert env["QDRANT_URL"] == "http://qdrant:6333"
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
        assert env["RAY_AUTH_MODE"] == "token"
    nginx_deps = services["nginx"]["depends_on"]
    assert {d["condition"] for d in nginx_deps.values()} == {"service_healthy"}
    # nginx.conf upstream name == the alias every replica carries
    assert "server gateway:8080 resolve" in (DEPLOY / "nginx" / "nginx.conf").read_text()


def test_no_secret_is_written_inline_and_every_required_one_is_in_env_example() -> None:
    required: set[str] = set()
    for name, svc in _services().items():
        env = svc.get("environment", {})
        assert isinstance(env, dict), f"{name}: use the mapping form"
        for key, value in env.items():
            value = "" if value is None else str(value)
            if SECRET_NAME.search(key) and key not in {"RAY_AUTH_MODE"}:
                assert value == "" or re.fullmatch(r"\$\{[^}]+\}", value), f"{name}.{key}"
            # credentials in URLs: the password part must be a reference too
            for m in re.finditer(r"://[^:/@]*:(\$\{[^}]*\}|[^@]*)@", _resolve_default(value)):
                assert re.fullmatch(r"\$\{[^}]+\}", m.group(1)), f"{name}.{key}"
    text = COMPOSE_FILE.read_text()
    required = {m.group(1) for m in re.finditer(r"\$\{([A-Z0-9_]+):\?", text)}
    example = (DEPLOY / ".env.example").read_text()
    defined = dict(
        line.split("=", 1) for line in example.splitlines() if line and not line.startswith("#")
    )
    assert required <= set(defined), required - set(defined)
    for key, value in defined.items():
        if SECRET_NAME.search(key) and key != "TLS_CERT_DIR":
            assert value in {"", "change-me"}, f".env.example holds a real-looking {key}"
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()


def test_dockerfile_is_multistage_non_root_with_models_and_a_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) == 2
    builder, runtime = stages
    assert "AS builder" in builder and "AS runtime" in runtime
    assert "python -m models build --models-dir /opt/kaleem/models" in builder
    assert "build-essential" in builder
    for tool in ("build-essential", "gcc", "g++", "make ", "-dev"):
        assert tool not in runtime, tool  # no build tools in the final image
    assert "COPY --from=builder /opt/venv /opt/venv" in runtime
    assert "COPY --from=builder --chown=root:root /opt/kaleem/models" in runtime
    user = re.search(r"^USER (\S+)", runtime, re.M)
    assert user and user.group(1).split(":")[0] not in {"root", "0"}
    healthcheck = re.search(r"^HEALTHCHECK .*\n.*", runtime, re.M)
    assert healthcheck and "/healthz" in healthcheck.group(0)
    for copied in re.findall(r"^COPY (?!--from)(.+) \./\S*$", builder, re.M):
        for src in copied.split():
            assert (ROOT / src).exists(), src
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("**")] == "**" and "!engine/" in ignore  # allow-list context


def test_mount_targets_match_what_the_configs_expect() -> None:
    services = _services()

    def targets(name: str) -> dict[str, str]:
        return {t: s for s, t in _bind_sources(services[name])}

    nginx_conf = (DEPLOY / "nginx" / "nginx.conf").read_text()
    for path in re.findall(r"(?:include|ssl_certificate(?:_key)?) (/etc/nginx/\S+);", nginx_conf):
        if path == "/etc/nginx/mime.types":
            continue
        assert any(path == t or path.startswith(t + "/") for t in targets("nginx")), path
    prom = targets("prometheus")
    assert prom["/etc/prometheus/prometheus.yml"].endswith(
        "observability/prometheus/prometheus.yml"
    )
    assert prom["/etc/prometheus/rules"].endswith("observability/prometheus/rules")
    assert "ray-tmp:/tmp/ray:ro" in services["prometheus"]["volumes"]
    assert "ray-tmp:/tmp/ray" in services["ray-head"]["volumes"]
    for svc, flag in (
        ("loki", "-config.file="),
        ("promtail", "-config.file="),
        ("tempo", "-config.file="),
    ):
        cfg = services[svc]["command"][0].removeprefix(flag)
        assert cfg in targets(svc), svc
    otel_cfg = services["otel-collector"]["command"][0].removeprefix("--config=")
    assert otel_cfg in targets("otel-collector")


def test_observability_configs_wire_to_the_compose_services() -> None:
    services = _services()
    loki = yaml.safe_load((DEPLOY / "loki" / "loki.yml").read_text())
    promtail = yaml.safe_load((DEPLOY / "promtail" / "promtail.yml").read_text())
    tempo = yaml.safe_load((DEPLOY / "tempo" / "tempo.yml").read_text())
    otel = yaml.safe_load((DEPLOY / "otel-collector" / "config.yml").read_text())
    datasources = yaml.safe_load(
        (ROOT / "observability/grafana/provisioning/datasources/datasources.yml").read_text()
    )
    loki_port = loki["server"]["http_listen_port"]
    assert promtail["clients"][0]["url"] == f"http://loki:{loki_port}/loki/api/v1/push"
    assert loki["schema_config"]["configs"][0]["schema"] == "v13"
    # OTel: every pipeline component is defined; traces go to Tempo's OTLP gRPC receiver.
    for pipeline in otel["service"]["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            for comp in pipeline[kind]:
                assert comp in otel[kind], (kind, comp)
    tempo_grpc = tempo["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert otel["exporters"]["otlp/tempo"]["endpoint"] == "tempo:" + tempo_grpc.split(":")[1]
    # Grafana datasource URLs name compose services on the ports those services listen on.
    ports = {"prometheus": 9090, "loki": loki_port, "tempo": tempo["server"]["http_listen_port"]}
    for ds in datasources["datasources"]:
        host, port = ds["url"].removeprefix("http://").split(":")
        assert host in services and int(port) == ports[host], ds["url"]
    # Prometheus alerts go to the compose Alertmanager.
    prom = yaml.safe_load((ROOT / "observability/prometheus/prometheus.yml").read_text())
    (am,) = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am.split(":")[0] in services


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool missing: run `make setup`")
def test_alertmanager_entrypoint_renders_secrets_into_a_valid_config(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    env = {
        "PATH": "/usr/bin:/bin",
        "AM_SECRETS_DIR": str(secrets),
        "AM_TEMPLATE": str(ROOT / "observability/alertmanager/alertmanager.yml"),
        "AM_BIN": "/bin/true",
        "ALERT_SLACK_WEBHOOK_URL": "https://hooks.example.invalid/T0/B0/x",
        "ALERT_SMTP_PASSWORD": "smtp-pass",
        "ALERT_TELEGRAM_BOT_TOKEN": "123456:ABC-def_ghi",
    }
    script = DEPLOY / "alertmanager" / "entrypoint.sh"
    r = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    rendered = (secrets / "alertmanager.yml").read_text()
    assert "123456:ABC-def_ghi" in rendered and "${" not in rendered
    assert (secrets / "smtp_password").read_text() == "smtp-pass"
    assert (secrets / "smtp_password").stat().st_mode & 0o077 == 0
    check = subprocess.run(
        ["amtool", "check-config", str(secrets / "alertmanager.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    bad = subprocess.run(
        ["sh", str(script)],
        env={**env, "ALERT_TELEGRAM_BOT_TOKEN": "x|y&z"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode != 0  # a token that would break the sed render is refused


@pytest.mark.skipif(not Path(h.NGINX).exists(), reason="nginx missing: run `make setup`")
def test_compose_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    conf = h.render(
        tmp_path, upstreams=["127.0.0.1:8080"], http_port=h.free_port(), https_port=h.free_port()
    )
    r = subprocess.run(
        h.nginx_cmd(tmp_path, conf, "-t"), capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, r.stderr
    assert "syntax is ok" in r.stderr


def test_ray_workers_scale_out_and_only_they_take_the_spread_actors() -> None:
    """``docker compose up --scale ray-worker=N`` (or ``RAY_WORKERS=N``) adds Ray nodes that
    conversation hosts and delivery actors spread onto; the driver nodes take none of them."""
    from actors.placement import SPREAD_CPU

    services = _services()
    worker, head = services["ray-worker"], services["ray-head"]
    cmd = worker["command"]
    assert worker["entrypoint"] == ["ray"] and cmd[0] == "start"
    assert "--address=ray-head:6379" in cmd and "--block" in cmd
    assert worker["image"] == head["image"]  # the same code on every node
    assert worker["environment"] == head["environment"]  # the cluster's one auth token
    assert worker["depends_on"]["ray-head"]["condition"] == "service_healthy"
    # Scalable: nothing that two replicas of one service could not both have.
    assert not {"container_name", "hostname", "ports"} & set(worker), worker
    assert int(_resolve_default(str(worker["deploy"]["replicas"]))) >= 1
    # Workers offer CPUs (each spread actor reserves SPREAD_CPU of one); the engine's and the
    # gateways' own nodes offer none, so a gateway roll never takes a conversation host along.
    (cpus,) = [a for a in cmd if a.startswith("--num-cpus=")]
    assert float(_resolve_default(cpus.split("=", 1)[1])) >= 1 > SPREAD_CPU > 0
    for driver in ("engine", "gateway-1", "gateway-2"):
        assert "--num-cpus=0 " in " ".join(services[driver]["command"]), driver
