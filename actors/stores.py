"""The embedded vector store, owned by one Ray actor, and the proxy other processes use.

The embedded vector engine (qdrant-edge) is an in-process library whose shard files only one
process may own: this actor is that process, and the gateway and the host actors reach it
through ``ActorVectorStore``, which satisfies the same port as the Qdrant-server adapter.
Records do not come here: SQLite lets every process open the record file itself, so no record
read or write pays an actor hop.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Unpack

import ray

from engine.services.ports import SearchOptions, VectorHit, VectorPoint

log = logging.getLogger(__name__)

_VEC_OPS = frozenset({"ensure_collection", "upsert", "search", "delete", "count"})


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class EmbeddedStoresActor:
    def __init__(self, data_dir: str) -> None:
        from engine.adapters.vectors import EdgeVectorStore

        self._vectors = EdgeVectorStore(Path(data_dir) / "vectors")

    async def ready(self) -> bool:
        return True

    async def vec(self, op: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if op not in _VEC_OPS:
            raise ValueError(f"unsupported operation {op}")
        return await getattr(self._vectors, op)(*args, **kwargs)

    async def close(self) -> None:
        await self._vectors.close()


class ActorVectorStore:
    def __init__(self, actor: Any) -> None:
        self._actor = actor

    async def ensure_collection(self, name: str, dim: int) -> None:
        await self._actor.vec.remote("ensure_collection", (name, dim), {})

    async def upsert(self, collection: str, merchant_id: str, points: list[VectorPoint]) -> None:
        await self._actor.vec.remote("upsert", (collection, merchant_id, points), {})

    async def search(
        self, collection: str, merchant_id: str, vector: list[float], **kw: Unpack[SearchOptions]
    ) -> list[VectorHit]:
        limit, must = kw.get("limit", 10), kw.get("must")
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
