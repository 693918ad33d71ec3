"""What the engine writes to its data dir is readable by its own user only.

``redis.url`` and ``ray.address`` (anyone who reads them reaches every tenant's queues and the
cluster), the Redis AOF and RDB snapshots, and the SQLite record file with its WAL held every
merchant's data with the umask's bits (0644 with the usual 022): any local user could read
them. Each is created here through the code that creates it in the engine, under a loose
umask, and must come out with no bit for group or others.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from engine.adapters.datadir import make_private_dir, write_private
from engine.adapters.records import Records
from engine.adapters.redis.server import EmbeddedRedis, redis_client
from engine.adapters.repositories import sqlite_repositories
from engine.adapters.secrets import SecretBox


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def _loose(root: Path) -> list[str]:
    """Everything under ``root`` (itself included) that group or others may access."""
    paths = [root, *root.rglob("*")]
    return [
        f"{p} {stat.filemode(p.lstat().st_mode)}"
        for p in paths
        if not p.is_socket() and p.lstat().st_mode & 0o077
    ]


async def test_embedded_redis_files_are_private(tmp_path: Path, loose_umask: None) -> None:
    data = tmp_path / "redis"
    data.mkdir(mode=0o755)
    (data / "dump.rdb").write_bytes(b"")  # left by an older run with the umask's bits
    redis = EmbeddedRedis(data)
    client = redis_client(redis.start())
    try:
        await client.xadd("kaleem:inbox:0", {"m": b"a customer's message"})
        await client.save()  # an RDB snapshot, as the save rules and SHUTDOWN SAVE make them
        await client.bgrewriteaof()
        assert any(data.rglob("*.aof")) and (data / "dump.rdb").stat().st_size > 0
        assert _loose(data) == []
    finally:
        await client.aclose()
        redis.stop()
    assert _loose(data) == []


async def test_sqlite_record_files_are_private(tmp_path: Path, loose_umask: None) -> None:
    repos = sqlite_repositories(tmp_path / "records.sqlite3")
    records = Records(repos, SecretBox(Fernet.generate_key().decode()))
    try:
        await records.ensure_indexes()
        await records.create_merchant("Shop", "en")
        names = {"records.sqlite3", "records.sqlite3-wal", "records.sqlite3-shm"}
        assert all((tmp_path / n).exists() for n in names)
        assert _loose(tmp_path / "records.sqlite3") == []
        assert _loose(tmp_path / "records.sqlite3-wal") == []
        assert _loose(tmp_path / "records.sqlite3-shm") == []
    finally:
        await repos.close()


async def test_an_older_record_file_is_tightened(tmp_path: Path, loose_umask: None) -> None:
    path = tmp_path / "records.sqlite3"
    path.touch(mode=0o644)
    repos = sqlite_repositories(path)
    try:
        await Records(repos, SecretBox(Fernet.generate_key().decode())).ensure_indexes()
        assert _loose(path) == []
    finally:
        await repos.close()


def test_the_data_dir_and_its_address_files_are_private(tmp_path: Path, loose_umask: None) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    make_private_dir(data_dir)
    (data_dir / "redis.url").write_text("old")  # an older run's, 0644
    write_private(data_dir / "redis.url", "unix:///x/redis.sock?db=0")
    write_private(data_dir / "ray.address", "127.0.0.1:6379")
    assert (data_dir / "redis.url").read_text() == "unix:///x/redis.sock?db=0"
    assert _loose(data_dir) == []


def test_a_served_engine_leaves_its_data_dir_private(runtime: Any, demo_store: Any) -> None:
    """The session's engine (``kaleem serve``'s Runtime), after a catalog import: what it and
    its Ray workers wrote (records, AOF, vector shards, address files)."""
    data_dir = Path(runtime.settings.data_dir)
    assert (data_dir / "redis.url").exists() and (data_dir / "ray.address").exists()
    assert _loose(data_dir) == []
