"""Vector stores: tenant isolation, filters, deletes, counts, persistence."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.adapters.vectors import (
    EdgeVectorStore,
    QdrantServerVectorStore,
    exact_conditions,
    point_uuid,
    server_filter,
)
from engine.services.ports import VectorPoint, VectorStore

DIM = 16


def _vectors(n: int, seed: int = 0) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    return [[float(x) for x in row] for row in rng.standard_normal((n, DIM)).astype(np.float32)]


async def _fill(store: VectorStore) -> list[list[float]]:
    await store.ensure_collection("products", DIM)
    vecs = _vectors(20)
    for merchant in ("mA", "mB"):
        points = [
            VectorPoint(
                id=f"p{i}",  # same ids AND same vectors for both merchants on purpose
                vector=vecs[i],
                payload={"kind": "product" if i % 2 == 0 else "faq", "title": f"{merchant}-{i}"},
            )
            for i in range(20)
        ]
        await store.upsert("products", merchant, points)
    return vecs


async def _check_semantics(store: VectorStore) -> None:
    vecs = await _fill(store)
    hits = await store.search("products", "mA", vecs[4], limit=3)
    assert hits[0].id == "p4" and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[0].payload == {"kind": "product", "title": "mA-4", "merchant_id": "mA"}

    for merchant in ("mA", "mB"):  # identical vectors and ids; each sees only its own
        every = await store.search("products", merchant, vecs[0], limit=100)
        assert len(every) == 20
        assert {h.payload["merchant_id"] for h in every} == {merchant}
        assert all(h.payload["title"].startswith(merchant) for h in every)
    assert await store.search("products", "mC", vecs[0]) == []

    faq = await store.search("products", "mA", vecs[4], limit=20, must={"kind": "faq"})
    assert len(faq) == 10 and all(h.payload["kind"] == "faq" for h in faq)
    some = await store.search("products", "mA", vecs[4], limit=20, must={"title": ["mA-1", "mA-4"]})
    assert {h.id for h in some} == {"p1", "p4"}

    assert await store.count("products", "mA") == 20
    await store.delete("products", "mA", ["p4", "p5", "missing"])
    assert await store.count("products", "mA") == 18
    assert await store.count("products", "mB") == 20  # same ids, other tenant: untouched
    assert "p4" not in {h.id for h in await store.search("products", "mA", vecs[4], limit=20)}
    assert (await store.search("products", "mB", vecs[4], limit=1))[0].id == "p4"

    # Re-upserting an id replaces the point instead of adding one.
    await store.upsert("products", "mB", [VectorPoint("p0", vecs[1], {"kind": "faq"})])
    assert await store.count("products", "mB") == 20
    # A point cannot claim another tenant.
    with pytest.raises(ValueError):
        await store.upsert("products", "mA", [VectorPoint("x", vecs[0], {"merchant_id": "mB"})])
    with pytest.raises(ValueError):
        await store.search("products", "mA", vecs[0], must={"merchant_id": "mB"})


async def test_edge_store_semantics(tmp_path: Path) -> None:
    store = EdgeVectorStore(tmp_path / "vectors")
    try:
        await _check_semantics(store)
        with pytest.raises(ValueError):
            await store.ensure_collection("products", DIM + 1)
        with pytest.raises(ValueError):
            await store.search("products", "mA", [0.0] * (DIM + 1))
        with pytest.raises(LookupError):
            await store.search("unknown", "mA", [0.0] * DIM)
    finally:
        await store.close()


async def test_edge_store_large_upsert_in_chunks(tmp_path: Path) -> None:
    store = EdgeVectorStore(tmp_path, upsert_chunk=64)
    await store.ensure_collection("bulk", DIM)
    vecs = _vectors(300, seed=3)
    await store.upsert("bulk", "m", [VectorPoint(f"i{i}", v) for i, v in enumerate(vecs)])
    assert await store.count("bulk", "m") == 300
    assert (await store.search("bulk", "m", vecs[123], limit=1))[0].id == "i123"
    await store.close()


async def test_edge_store_persists_across_reopen(tmp_path: Path) -> None:
    first = EdgeVectorStore(tmp_path)
    vecs = await _fill(first)
    await first.delete("products", "mA", ["p0"])
    await first.close()
    with pytest.raises(RuntimeError):
        await first.count("products", "mA")

    second = EdgeVectorStore(tmp_path)
    # No ensure_collection needed: an existing shard is opened on first use.
    assert await second.count("products", "mA") == 19
    assert await second.count("products", "mB") == 20
    hit = (await second.search("products", "mB", vecs[7], limit=1))[0]
    assert (hit.id, hit.payload["title"]) == ("p7", "mB-7")
    await second.ensure_collection("products", DIM)  # idempotent on an existing shard
    await second.close()


def test_id_mapping_is_deterministic_and_tenant_scoped() -> None:
    a = point_uuid("mA", "p1")
    assert a == point_uuid("mA", "p1") and isinstance(a, uuid.UUID) and a.version == 5
    assert a != point_uuid("mB", "p1")
    assert point_uuid("a:b", "c") != point_uuid("a", "b:c")  # length prefix: no ambiguity


def test_filter_building() -> None:
    assert exact_conditions({"kind": "faq", "n": 2, "on": True, "tags": ["a", "b"]}) == [
        ("kind", "faq"),
        ("n", 2),
        ("on", True),
        ("tags", ["a", "b"]),
    ]
    bad_musts: list[dict[str, Any]] = [{"x": 1.5}, {"x": []}, {"x": ["a", 1]}, {"x": None}]
    for bad in bad_musts:
        with pytest.raises(TypeError):
            exact_conditions(bad)
    with pytest.raises(ValueError):
        exact_conditions({"merchant_id": "other"})
    flt = server_filter("mA", {"kind": "faq"})
    assert isinstance(flt.must, list) and len(flt.must) == 2
    first = flt.must[0]
    assert getattr(first, "key", None) == "merchant_id"


@pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")
async def test_server_adapter_against_local_mode() -> None:
    """qdrant-client local mode (``:memory:``) stands in for a server: same code path."""
    store = QdrantServerVectorStore("", location=":memory:")
    try:
        await _check_semantics(store)
    finally:
        await store.close()
