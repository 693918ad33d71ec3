"""Vector stores implementing ``engine.services.ports.VectorStore``.

* :class:`EdgeVectorStore` - the no-servers default: Qdrant's own in-process engine
  (``qdrant-edge-py``, ``EdgeShard``), one shard directory per collection. qdrant-client's
  local mode was measured far too slow for the reply path (p50 459 ms filtered top-10 over
  20k x 384); the edge shard answers the same query in well under a millisecond.
* :class:`QdrantServerVectorStore` - production, a Qdrant server via ``AsyncQdrantClient``.

Same semantics in both:

* Tenancy is structural: every search/count/delete is filtered by ``merchant_id`` (a required
  argument), and upserts stamp ``merchant_id`` into the payload (a point claiming another
  merchant is rejected).
* Our string ids become UUIDs with uuid5 over ``(merchant_id, id)``. Including the merchant
  means two merchants using the same id (``"sku-1"``) get distinct points, so one tenant's
  upsert can never overwrite another's. The original id travels in payload ``_id`` and is
  returned as ``VectorHit.id`` (``_id`` is stripped from the returned payload).
* ``must`` is exact match only: ``{field: str|int|bool}`` or ``{field: [values]}`` (any of).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

import orjson
import qdrant_edge as qe
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import UnexpectedResponse

from engine.services.ports import SearchOptions, VectorHit, VectorPoint, VectorStore

log = logging.getLogger(__name__)

__all__ = [
    "EdgeVectorStore",
    "QdrantServerVectorStore",
    "exact_conditions",
    "point_uuid",
]

#: Fixed namespace so the id mapping is stable across processes, versions and both adapters.
KALEEM_VECTOR_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:kaleem:vector-point")
#: Payload fields with a keyword index: the tenant key and the document kind.
INDEXED_KEYWORDS = ("merchant_id", "kind")
_ID_KEY = "_id"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

MatchScalar = str | int | bool


def point_uuid(merchant_id: str, point_id: str) -> uuid.UUID:
    """Deterministic store id for our (merchant, id) pair; length-prefixed so no pair collides."""
    return uuid.uuid5(KALEEM_VECTOR_NAMESPACE, f"{len(merchant_id)}:{merchant_id}:{point_id}")


def exact_conditions(
    must: Mapping[str, Any] | None,
) -> list[tuple[str, MatchScalar | list[str] | list[int]]]:
    """Validate ``must`` into (field, value-or-values) pairs shared by both adapters.

    ``merchant_id`` is refused here: the tenant comes only from the required argument, so a
    caller cannot widen or contradict it through ``must``.
    """
    out: list[tuple[str, MatchScalar | list[str] | list[int]]] = []
    for key, value in (must or {}).items():
        if key == "merchant_id":
            raise ValueError("merchant_id is given as an argument, not in `must`")
        if isinstance(value, str | bool | int):
            out.append((key, value))
        elif isinstance(value, list | tuple) and value:
            if all(isinstance(v, str) for v in value):
                out.append((key, [str(v) for v in value]))
            elif all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                out.append((key, [int(v) for v in value]))
            else:
                raise TypeError(f"must[{key!r}]: a list must hold only str or only int")
        else:
            raise TypeError(f"must[{key!r}]: exact match needs str/int/bool or a non-empty list")
    return out


def _stamped_payload(merchant_id: str, point: VectorPoint) -> dict[str, Any]:
    payload = dict(point.payload)
    claimed = payload.get("merchant_id", merchant_id)
    if claimed != merchant_id:
        raise ValueError(f"point {point.id!r} claims merchant {claimed!r}, not {merchant_id!r}")
    payload["merchant_id"] = merchant_id
    payload[_ID_KEY] = point.id
    return payload


def _hit(score: float, payload: Mapping[str, Any] | None) -> VectorHit:
    body = dict(payload or {})
    our_id = body.pop(_ID_KEY, "")
    return VectorHit(id=str(our_id), score=float(score), payload=body)


def _check_name(name: str) -> None:
    # The name becomes a directory (edge) or a URL path segment (server): keep it boring.
    if not _NAME_RE.match(name) or name in {".", ".."}:
        raise ValueError(f"invalid collection name {name!r}")


# --------------------------------------------------------------------------------------------
# Edge (embedded)
# --------------------------------------------------------------------------------------------


@dataclass
class _Shard:
    shard: qe.EdgeShard
    dim: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _edge_filter(merchant_id: str, must: Mapping[str, Any] | None) -> qe.Filter:
    conditions: list[Any] = [qe.FieldCondition(key="merchant_id", match=qe.MatchValue(merchant_id))]
    for key, value in exact_conditions(must):
        match: Any = qe.MatchAny(value) if isinstance(value, list) else qe.MatchValue(value)
        conditions.append(qe.FieldCondition(key=key, match=match))
    return qe.Filter(must=conditions)


class EdgeVectorStore:
    """``VectorStore`` over in-process Qdrant edge shards under ``path/<collection>``.

    Measured facts that shape this class (qdrant-edge-py 0.9.0):

    * The binding holds the GIL for the whole call (upsert, flush, optimize): a worker thread
      does NOT keep the event loop responsive. So upserts are cut into chunks of
      ``upsert_chunk`` points, each run via ``asyncio.to_thread`` under a per-shard lock, and
      the loop gets control back between chunks (a 256-point chunk is a few ms).
    * Filtered searches take well under a millisecond, so they run inline (a thread hop
      would cost more than the search).
    * Updates go through the shard's write-ahead log, so they survive a crash; :meth:`flush`
      (called by :meth:`close`) persists segments and keeps reload fast.
    * HNSW is only built by :meth:`optimize`, which blocks the process (about 20 s for
      20k x 384). The merchant filter usually narrows to a small set that is scored exactly,
      which is already fast; call it offline (after a bulk import), never on the reply path.
    """

    def __init__(
        self,
        path: Path,
        *,
        upsert_chunk: int = 256,
        hnsw_m: int = 16,
        hnsw_ef_construct: int = 100,
        full_scan_threshold: int = 10_000,
    ) -> None:
        self._path = path
        self._chunk = max(1, upsert_chunk)
        self._hnsw = qe.HnswIndexConfig(
            m=hnsw_m, ef_construct=hnsw_ef_construct, full_scan_threshold=full_scan_threshold
        )
        self._shards: dict[str, _Shard] = {}
        self._closed = False

    # -- shard lifecycle -------------------------------------------------------------------
    def _config(self, dim: int) -> qe.EdgeConfig:
        return qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine),
            hnsw_config=self._hnsw,
        )

    def _stored_dim(self, name: str) -> int | None:
        config = self._path / name / "edge_config.json"
        if not config.exists():
            return None
        body = orjson.loads(config.read_bytes())
        return int(body["vectors"][""]["size"])

    def _open(self, name: str, dim: int | None = None) -> _Shard:
        """Open (or with ``dim``, create) the shard; sync, done once per collection."""
        if self._closed:
            raise RuntimeError("EdgeVectorStore is closed")
        _check_name(name)
        existing = self._shards.get(name)
        if existing is not None:
            if dim is not None and dim != existing.dim:
                raise ValueError(f"collection {name!r} has dim {existing.dim}, not {dim}")
            return existing
        stored = self._stored_dim(name)
        started = time.perf_counter()
        if stored is not None:
            if dim is not None and dim != stored:
                raise ValueError(f"collection {name!r} has dim {stored}, not {dim}")
            shard = qe.EdgeShard.load(str(self._path / name))
            entry = _Shard(shard, stored)
            log.info("edge shard %s loaded in %.3fs", name, time.perf_counter() - started)
        elif dim is None:
            raise LookupError(f"vector collection {name!r} does not exist; ensure_collection it")
        else:
            self._path.mkdir(parents=True, exist_ok=True)
            shard = qe.EdgeShard.create(str(self._path / name), self._config(dim))
            entry = _Shard(shard, dim)
            log.info("edge shard %s created (dim %d)", name, dim)
        # Declare missing keyword indexes (also repairs a shard made by an older build).
        present = set(shard.info().payload_schema)
        for key in INDEXED_KEYWORDS:
            if key in present:
                continue
            schema: Any = (
                qe.KeywordIndexParams(is_tenant=True)
                if key == "merchant_id"
                else qe.PayloadSchemaType.Keyword
            )
            shard.update(qe.UpdateOperation.create_field_index(key, schema))
        self._shards[name] = entry
        return entry

    async def ensure_collection(self, name: str, dim: int) -> None:
        if dim <= 0:
            raise ValueError("dim must be positive")
        self._open(name, dim)

    # -- writes ------------------------------------------------------------------------------
    async def upsert(self, collection: str, merchant_id: str, points: list[VectorPoint]) -> None:
        entry = self._open(collection)
        # Validate everything first so a bad point cannot leave a half-applied batch.
        for point in points:
            if len(point.vector) != entry.dim:
                raise ValueError(
                    f"point {point.id!r}: vector dim {len(point.vector)} != {entry.dim}"
                )
            _stamped_payload(merchant_id, point)
        small = len(points) <= self._chunk
        async with entry.lock:
            for start in range(0, len(points), self._chunk):
                # Points are built per chunk too (~20 us each), so no step holds the loop long.
                chunk = [
                    qe.Point(
                        point_uuid(merchant_id, p.id),
                        list(p.vector),
                        _stamped_payload(merchant_id, p),
                    )
                    for p in points[start : start + self._chunk]
                ]
                op = qe.UpdateOperation.upsert_points(chunk)
                if small:
                    entry.shard.update(op)  # a thread hop would cost more than the write
                else:
                    await asyncio.to_thread(entry.shard.update, op)

    async def delete(self, collection: str, merchant_id: str, ids: list[str]) -> None:
        if not ids:
            return
        entry = self._open(collection)
        # The uuids already embed the merchant; the filter makes the isolation explicit.
        by_id = qe.HasIdCondition({point_uuid(merchant_id, i) for i in ids})
        flt = qe.Filter(must=[_edge_filter(merchant_id, None), by_id])
        async with entry.lock:
            entry.shard.update(qe.UpdateOperation.delete_points_by_filter(flt))

    # -- reads -------------------------------------------------------------------------------
    async def search(
        self, collection: str, merchant_id: str, vector: list[float], **kw: Unpack[SearchOptions]
    ) -> list[VectorHit]:
        limit, must = kw.get("limit", 10), kw.get("must")
        entry = self._open(collection)
        if len(vector) != entry.dim:
            raise ValueError(f"query dim {len(vector)} != {entry.dim}")
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(list(vector)),
            filter=_edge_filter(merchant_id, must),
            with_payload=True,
        )
        return [_hit(p.score, p.payload) for p in entry.shard.query(request)]

    async def count(self, collection: str, merchant_id: str) -> int:
        entry = self._open(collection)
        # exact=True: ShardInfo.points_count is approximate (counts stale copies across segments).
        return entry.shard.count(
            qe.CountRequest(exact=True, filter=_edge_filter(merchant_id, None))
        )

    # -- maintenance -------------------------------------------------------------------------
    async def optimize(self, collection: str) -> bool:
        """Build HNSW / merge segments. Blocks the whole process (GIL): offline use only."""
        entry = self._open(collection)
        async with entry.lock:
            started = time.perf_counter()
            changed = await asyncio.to_thread(entry.shard.optimize)
            log.info("edge shard %s optimized in %.2fs", collection, time.perf_counter() - started)
            return changed

    async def flush(self) -> None:
        """Persist all open shards' segments to disk."""
        for entry in list(self._shards.values()):
            async with entry.lock:
                await asyncio.to_thread(entry.shard.flush)

    async def close(self) -> None:
        """Flush and close every shard; further calls raise."""
        if self._closed:
            return
        self._closed = True
        shards, self._shards = self._shards, {}
        for name, entry in shards.items():
            async with entry.lock:
                try:
                    await asyncio.to_thread(entry.shard.flush)
                finally:
                    entry.shard.close()
            log.debug("edge shard %s closed", name)


# --------------------------------------------------------------------------------------------
# Qdrant server (production)
# --------------------------------------------------------------------------------------------


def server_filter(merchant_id: str, must: Mapping[str, Any] | None = None) -> qm.Filter:
    """The qdrant-client filter every server call uses: merchant first, then exact matches."""
    conditions: list[qm.Condition] = [
        qm.FieldCondition(key="merchant_id", match=qm.MatchValue(value=merchant_id))
    ]
    for key, value in exact_conditions(must):
        match: qm.Match = (
            qm.MatchAny(any=value) if isinstance(value, list) else qm.MatchValue(value=value)
        )
        conditions.append(qm.FieldCondition(key=key, match=match))
    return qm.Filter(must=conditions)


class QdrantServerVectorStore:
    """``VectorStore`` against a Qdrant server (production), same semantics as the edge store.

    ``merchant_id`` gets a tenant keyword index (``is_tenant``) so Qdrant co-locates each
    merchant's points; HNSW uses ``payload_m`` so per-tenant graphs keep filtered search exact.
    Construction does no I/O. Pass ``location=":memory:"`` only in tests (qdrant-client local
    mode; too slow for serving).
    """

    def __init__(
        self, url: str, api_key: str | None = None, *, location: str | None = None
    ) -> None:
        if location is not None:
            self._client = AsyncQdrantClient(location=location)
        else:
            self._client = AsyncQdrantClient(url=url, api_key=api_key)
        self._dims: dict[str, int] = {}

    async def ensure_collection(self, name: str, dim: int) -> None:
        _check_name(name)
        if name in self._dims:
            if self._dims[name] != dim:
                raise ValueError(f"collection {name!r} has dim {self._dims[name]}, not {dim}")
            return
        if await self._client.collection_exists(name):
            info = await self._client.get_collection(name)
            vectors = info.config.params.vectors
            size = vectors.size if isinstance(vectors, qm.VectorParams) else None
            if size is not None and size != dim:
                raise ValueError(f"collection {name!r} has dim {size}, not {dim}")
        else:
            with contextlib.suppress(UnexpectedResponse):  # lost a creation race: fine
                await self._client.create_collection(
                    name,
                    vectors_config=qm.VectorParams(size=dim, distance=qm.Distance.COSINE),
                    hnsw_config=qm.HnswConfigDiff(m=16, payload_m=16),
                )
        await self._client.create_payload_index(
            name,
            "merchant_id",
            field_schema=qm.KeywordIndexParams(type=qm.KeywordIndexType.KEYWORD, is_tenant=True),
        )
        for key in INDEXED_KEYWORDS[1:]:
            await self._client.create_payload_index(
                name, key, field_schema=qm.PayloadSchemaType.KEYWORD
            )
        self._dims[name] = dim

    async def upsert(self, collection: str, merchant_id: str, points: list[VectorPoint]) -> None:
        if not points:
            return
        structs = [
            qm.PointStruct(
                id=str(point_uuid(merchant_id, p.id)),
                vector=list(p.vector),
                payload=_stamped_payload(merchant_id, p),
            )
            for p in points
        ]
        await self._client.upsert(collection, points=structs, wait=True)

    async def search(
        self, collection: str, merchant_id: str, vector: list[float], **kw: Unpack[SearchOptions]
    ) -> list[VectorHit]:
        limit, must = kw.get("limit", 10), kw.get("must")
        result = await self._client.query_points(
            collection,
            query=list(vector),
            query_filter=server_filter(merchant_id, must),
            limit=limit,
            with_payload=True,
        )
        return [_hit(p.score, p.payload) for p in result.points]

    async def delete(self, collection: str, merchant_id: str, ids: list[str]) -> None:
        if not ids:
            return
        flt = server_filter(merchant_id)
        flt.must = [
            *_as_list(flt.must),
            qm.HasIdCondition(has_id=[str(point_uuid(merchant_id, i)) for i in ids]),
        ]
        await self._client.delete(
            collection, points_selector=qm.FilterSelector(filter=flt), wait=True
        )

    async def count(self, collection: str, merchant_id: str) -> int:
        result = await self._client.count(
            collection, count_filter=server_filter(merchant_id), exact=True
        )
        return int(result.count)

    async def close(self) -> None:
        await self._client.close()


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


if TYPE_CHECKING:  # mypy proves both adapters satisfy the port; no runtime cost

    def _conforms(
        edge: EdgeVectorStore, server: QdrantServerVectorStore
    ) -> tuple[VectorStore, VectorStore]:
        return edge, server
