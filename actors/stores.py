"""The embedded stores, owned by one Ray actor, and the proxies other processes use.

The embedded document store and the embedded vector engine are in-process libraries: only one
process may own their files. This actor is that process; the gateway and the host actors reach
it through ``ActorDocumentStore``/``ActorVectorStore``, which satisfy the same ports as the
MongoDB and Qdrant-server adapters, so nothing above the ports knows which one it has.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import ray

from engine.services.ports import (
    Document,
    DocumentCollection,
    DuplicateKey,
    SortSpec,
    VectorHit,
    VectorPoint,
)

log = logging.getLogger(__name__)

_DOC_OPS = frozenset(
    {
        "insert_one",
        "find_one",
        "find",
        "update_one",
        "bulk_upsert",
        "find_one_and_update",
        "replace_one",
        "delete_one",
        "delete_many",
        "count_documents",
        "create_index",
    }
)
_VEC_OPS = frozenset({"ensure_collection", "upsert", "search", "delete", "count"})


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class EmbeddedStoresActor:
    def __init__(self, data_dir: str, flush_interval_s: float = 1.0) -> None:
        from engine.adapters.documents import EmbeddedDocumentStore
        from engine.adapters.vectors import EdgeVectorStore

        root = Path(data_dir)
        self._docs = EmbeddedDocumentStore(root / "documents")
        self._docs.start_autoflush(flush_interval_s)
        self._vectors = EdgeVectorStore(root / "vectors")

    async def ready(self) -> bool:
        return True

    async def doc(
        self, collection: str, op: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[str, Any]:
        if op not in _DOC_OPS:
            return ("error", f"unsupported operation {op}")
        try:
            result = await getattr(self._docs.collection(collection), op)(*args, **kwargs)
        except DuplicateKey as exc:
            return ("duplicate", str(exc))
        return ("ok", result)

    async def vec(self, op: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if op not in _VEC_OPS:
            raise ValueError(f"unsupported operation {op}")
        return await getattr(self._vectors, op)(*args, **kwargs)

    async def flush(self) -> None:
        await self._docs.flush()

    async def close(self) -> None:
        await self._docs.close()
        await self._vectors.close()


class _ActorCollection:
    def __init__(self, actor: Any, name: str) -> None:
        self._actor = actor
        self._name = name

    async def _call(self, op: str, *args: Any, **kwargs: Any) -> Any:
        status, value = await self._actor.doc.remote(self._name, op, args, kwargs)
        if status == "duplicate":
            raise DuplicateKey(value)
        if status != "ok":
            raise RuntimeError(value)
        return value

    async def insert_one(self, doc: Document) -> None:
        await self._call("insert_one", doc)

    async def find_one(
        self, filter: Document, projection: Document | None = None
    ) -> Document | None:
        result: Document | None = await self._call("find_one", filter, projection)
        return result

    async def find(
        self,
        filter: Document,
        *,
        sort: SortSpec | None = None,
        skip: int = 0,
        limit: int = 0,
        projection: Document | None = None,
    ) -> list[Document]:
        result: list[Document] = await self._call(
            "find", filter, sort=sort, skip=skip, limit=limit, projection=projection
        )
        return result

    async def update_one(self, filter: Document, update: Document, *, upsert: bool = False) -> int:
        return int(await self._call("update_one", filter, update, upsert=upsert))

    async def bulk_upsert(self, ops: list[tuple[Document, Document]]) -> int:
        return int(await self._call("bulk_upsert", ops))

    async def find_one_and_update(
        self, filter: Document, update: Document, *, upsert: bool = False
    ) -> Document | None:
        result: Document | None = await self._call(
            "find_one_and_update", filter, update, upsert=upsert
        )
        return result

    async def replace_one(self, filter: Document, doc: Document, *, upsert: bool = False) -> int:
        return int(await self._call("replace_one", filter, doc, upsert=upsert))

    async def delete_one(self, filter: Document) -> int:
        return int(await self._call("delete_one", filter))

    async def delete_many(self, filter: Document) -> int:
        return int(await self._call("delete_many", filter))

    async def count_documents(self, filter: Document) -> int:
        return int(await self._call("count_documents", filter))

    async def create_index(
        self, keys: SortSpec, *, unique: bool = False, name: str | None = None
    ) -> None:
        await self._call("create_index", keys, unique=unique, name=name)


class ActorDocumentStore:
    def __init__(self, actor: Any) -> None:
        self._actor = actor

    def collection(self, name: str) -> DocumentCollection:
        return _ActorCollection(self._actor, name)

    async def close(self) -> None:
        return None


class ActorVectorStore:
    def __init__(self, actor: Any) -> None:
        self._actor = actor

    async def ensure_collection(self, name: str, dim: int) -> None:
        await self._actor.vec.remote("ensure_collection", (name, dim), {})

    async def upsert(self, collection: str, merchant_id: str, points: list[VectorPoint]) -> None:
        await self._actor.vec.remote("upsert", (collection, merchant_id, points), {})

    async def search(
        self,
        collection: str,
        merchant_id: str,
        vector: list[float],
        *,
        limit: int = 10,
        must: dict[str, Any] | None = None,
    ) -> list[VectorHit]:
        hits: list[VectorHit] = await self._actor.vec.remote(
            "search", (collection, merchant_id, vector), {"limit": limit, "must": must}
        )
        return hits

    async def delete(self, collection: str, merchant_id: str, ids: list[str]) -> None:
        await self._actor.vec.remote("delete", (collection, merchant_id, ids), {})

    async def count(self, collection: str, merchant_id: str) -> int:
        return int(await self._actor.vec.remote("count", (collection, merchant_id), {}))

    async def close(self) -> None:
        return None
