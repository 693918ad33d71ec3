"""Process roles: configuration and how a gateway replica finds a workers process."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.runtime import Runtime, _shared_from_data_dir
from engine.config import ConfigError, Settings


def test_role_comes_from_the_environment_and_is_validated() -> None:
    assert Settings.from_env({}).role == "all"
    assert Settings.from_env({"KALEEM_ROLE": "gateway"}).role == "gateway"
    with pytest.raises(ConfigError, match="KALEEM_ROLE"):
        Settings.from_env({"KALEEM_ROLE": "everything"})


def test_gateway_reads_what_the_workers_process_left_in_the_data_dir(tmp_path: Path) -> None:
    (tmp_path / "ray.address").write_text("127.0.0.1:6380\n")
    (tmp_path / "redis.url").write_text("unix:///x/redis.sock?db=0")
    (tmp_path / "secret.key").write_text("k" * 43 + "=")
    s = _shared_from_data_dir(Settings(data_dir=tmp_path, role="gateway"))
    assert (s.ray_address, s.redis_url, s.secret_key) == (
        "127.0.0.1:6380",
        "unix:///x/redis.sock?db=0",
        "k" * 43 + "=",
    )
    explicit = Settings(data_dir=tmp_path, role="gateway", redis_url="redis://r:6379/0")
    assert _shared_from_data_dir(explicit).redis_url == "redis://r:6379/0"


def test_gateway_without_a_cluster_to_join_is_a_clear_error(tmp_path: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path, role="gateway", port=8123))
    with pytest.raises(ConfigError, match="RAY_ADDRESS"):
        runtime.start_backends()
