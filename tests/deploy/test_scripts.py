"""deploy.sh, backup.sh and restore.sh driven against a stand-in ``docker`` on PATH that
records every call: the call sequences for a good deploy, a deploy whose new image never gets
ready (automatic rollback, non-zero exit), backups and restores. Plus shellcheck."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
FAKE = Path(__file__).with_name("fake_docker.py")
SCRIPTS = ["deploy.sh", "backup.sh", "restore.sh", "lib.sh"]

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


class Harness:
    def __init__(self, tmp: Path) -> None:
        self.state = tmp / "docker-state"
        self.state.mkdir()
        self.bin = tmp / "bin"
        self.bin.mkdir()
        (self.bin / "docker").symlink_to(FAKE)
        self.backups = tmp / "backups"
        self.deploy_state = tmp / "deploy-state"
        self.env = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "FAKE_DOCKER_DIR": str(self.state),
            "BACKUP_DIR": str(self.backups),
            "KALEEM_STATE_DIR": str(self.deploy_state),
            "HEALTH_RETRIES": "3",
            "HEALTH_INTERVAL_S": "0",
            "REDIS_SAVE_WAIT_S": "10",
            "REDIS_POLL_S": "0",
            # Present in the operator's environment; must never appear on a command line.
            "MONGO_ROOT_PASSWORD": "s3cret-mongo",
            "REDIS_PASSWORD": "s3cret-redis",
        }

    def run(self, script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(DEPLOY / script), *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    def calls(self) -> list[str]:
        path = self.state / "calls.log"
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def _steps(calls: list[str]) -> list[str]:
    """Readable summary of a deploy: which tag went where, probes and reloads."""
    out = []
    for c in calls:
        tag, _, rest = c.partition(" ")
        if " pull " in f" {rest} ":
            out.append(f"pull {tag} {rest.split('pull ')[1]}")
        elif "mongodump" in rest:
            out.append("mongodump")
        elif "up -d --no-deps --force-recreate" in rest:
            out.append(f"up {rest.split()[-1]} {tag}")
        elif "/readyz" in rest:
            out.append(f"ready? {rest.split()[3]}")
        elif "nginx -s reload" in rest:
            out.append("reload nginx")
        else:
            out.append(rest)
    return out


def test_a_good_deploy_rolls_one_replica_at_a_time_after_a_backup(h: Harness) -> None:
    r = h.run("deploy.sh", "v2")
    assert r.returncode == 0, r.stderr
    assert _steps(h.calls()) == [
        "pull TAG=v2 gateway-1 gateway-2",
        "mongodump",
        "up gateway-1 TAG=v2",
        "ready? gateway-1",
        "reload nginx",
        "up gateway-2 TAG=v2",
        "ready? gateway-2",
        "reload nginx",
    ]
    assert (h.deploy_state / "current-tag").read_text().strip() == "v2"
    (backup,) = h.backups.iterdir()
    assert (backup / "mongo.archive.gz").read_text() == "FAKE-MONGO-ARCHIVE"


def test_a_new_image_that_never_gets_ready_is_rolled_back(h: Harness) -> None:
    h.deploy_state.mkdir()
    (h.deploy_state / "current-tag").write_text("v1\n")
    r = h.run("deploy.sh", "v2", FAKE_DOCKER_BAD_TAG="v2")
    assert r.returncode == 1, r.stderr
    assert "ROLLBACK to v1" in r.stderr
    assert _steps(h.calls()) == [
        "pull TAG=v2 gateway-1 gateway-2",
        "mongodump",
        "up gateway-1 TAG=v2",
        "ready? gateway-1",
        "ready? gateway-1",
        "ready? gateway-1",  # HEALTH_RETRIES=3, then give up
        "up gateway-1 TAG=v1",
        "ready? gateway-1",
        "reload nginx",
    ]  # gateway-2 was never touched: it kept serving v1 throughout
    assert (h.state / "running" / "gateway-1").read_text() == "v1"
    assert not (h.state / "running" / "gateway-2").exists()
    assert (h.deploy_state / "current-tag").read_text().strip() == "v1"


def test_a_failure_on_the_second_replica_rolls_back_both(h: Harness) -> None:
    h.deploy_state.mkdir()
    (h.deploy_state / "current-tag").write_text("v1\n")
    # gateway-1 comes up on v2; gateway-2's probe fails (only it runs a "bad" image).
    h.env["GATEWAYS"] = "gateway-1 gateway-2"
    r = h.run("deploy.sh", "v2", FAKE_DOCKER_FAIL_ON="exec -T gateway-2 python")
    assert r.returncode == 2, r.stderr  # rollback of gateway-2 is unhealthy as well
    steps = _steps(h.calls())
    assert steps[:5] == [
        "pull TAG=v2 gateway-1 gateway-2",
        "mongodump",
        "up gateway-1 TAG=v2",
        "ready? gateway-1",
        "reload nginx",
    ]
    rollback = steps[steps.index("up gateway-1 TAG=v1") :]
    assert rollback[0] == "up gateway-1 TAG=v1" and "up gateway-2 TAG=v1" in rollback
    assert rollback[-1] == "reload nginx"
    assert (h.state / "running" / "gateway-1").read_text() == "v1"
    assert (h.state / "running" / "gateway-2").read_text() == "v1"


def test_deploy_stops_before_touching_replicas_when_the_backup_fails(h: Harness) -> None:
    r = h.run("deploy.sh", "v2", FAKE_DOCKER_FAIL_ON="mongodump")
    assert r.returncode != 0
    assert not any("force-recreate" in c for c in h.calls())
    assert h.run("deploy.sh").returncode != 0  # usage error, no tag


def test_backup_writes_all_three_stores_with_checksums(h: Harness) -> None:
    r = h.run("backup.sh")
    assert r.returncode == 0, r.stderr
    dest = Path(r.stdout.strip())
    assert dest.parent == h.backups
    assert (dest / "mongo.archive.gz").read_text() == "FAKE-MONGO-ARCHIVE"
    assert (dest / "redis.rdb").read_text() == "FAKE redis:/data/dump.rdb"
    assert (
        (dest / "qdrant" / "products.snapshot")
        .read_text()
        .startswith("FAKE qdrant:/qdrant/snapshots/products/products-2026.snapshot")
    )
    sums = (dest / "SHA256SUMS").read_text()
    for f in ("mongo.archive.gz", "redis.rdb", "qdrant/products.snapshot"):
        assert f"./{f}" in sums
    calls = [c.partition(" ")[2] for c in h.calls()]
    lastsaves = [c for c in calls if c.endswith("LASTSAVE")]
    assert len(lastsaves) >= 2  # polled until the BGSAVE finished
    bgsave = next(i for i, c in enumerate(calls) if c.endswith("BGSAVE"))
    copy = calls.index("compose cp redis:/data/dump.rdb " + str(dest / "redis.rdb"))
    assert bgsave < copy
    assert "compose run --rm --no-deps -T --entrypoint python gateway-1 - snapshot" in calls
    assert (
        "compose run --rm --no-deps -T --entrypoint python gateway-1 - delete products "
        "products-2026.snapshot"
    ) in calls
    assert not any("s3cret" in c for c in calls)  # containers read their own credentials


def test_restore_checks_sums_stops_writers_restores_and_restarts(h: Harness) -> None:
    dest = Path(h.run("backup.sh").stdout.strip())
    (h.state / "calls.log").unlink()
    assert h.run("restore.sh", str(dest)).returncode != 0  # no --yes, nothing happens
    assert h.calls() == []
    r = h.run("restore.sh", str(dest), "--yes")
    assert r.returncode == 0, r.stderr
    calls = [c.partition(" ")[2] for c in h.calls()]
    assert calls[0] == "compose stop gateway-1 gateway-2 ray-worker ray-head"
    assert "mongorestore" in calls[1] and "--drop" in calls[1]
    assert (h.state / "mongorestore.stdin").read_text() == "FAKE-MONGO-ARCHIVE"
    assert calls[2:6] == [
        "compose stop redis",
        "compose run --rm --no-deps -T --entrypoint sh redis -c rm -rf /data/appendonlydir",
        f"compose cp {dest}/redis.rdb redis:/data/dump.rdb",
        "compose start redis",
    ]
    recover = [c for c in calls if " - recover " in c]
    assert sorted(c.split(" - recover ")[1] for c in recover) == [
        "knowledge /qdrant/snapshots/knowledge/restore-knowledge.snapshot",
        "products /qdrant/snapshots/products/restore-products.snapshot",
    ]
    assert calls[-1] == "compose up -d gateway-1 gateway-2 ray-worker ray-head"


def test_restore_refuses_a_damaged_backup_without_touching_anything(h: Harness) -> None:
    dest = Path(h.run("backup.sh", "--only", "mongo").stdout.strip())
    (dest / "mongo.archive.gz").write_text("truncated")
    (h.state / "calls.log").unlink()
    r = h.run("restore.sh", str(dest), "--yes", "--only", "mongo")
    assert r.returncode != 0 and "checksum mismatch" in r.stderr
    assert h.calls() == []


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck missing: make setup")
def test_scripts_are_shellcheck_clean() -> None:
    r = subprocess.run(
        ["shellcheck", "-x", *SCRIPTS], cwd=DEPLOY, capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, r.stdout
    r = subprocess.run(
        ["shellcheck", "-s", "sh", "alertmanager/entrypoint.sh"],
        cwd=DEPLOY,
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stdout


def test_scripts_are_executable_and_strict() -> None:
    for name in ("deploy.sh", "backup.sh", "restore.sh"):
        path = DEPLOY / name
        assert os.access(path, os.X_OK), name
        assert "set -euo pipefail" in path.read_text(), name
