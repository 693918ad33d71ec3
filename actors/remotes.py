"""Ray handles turned into the ports a :class:`engine.bootstrap.Container` is built from.

Every actor and the gateway call :func:`container` once: the vector server when configured
(``QDRANT_URL``), else a proxy to the embedded vector store's owner actor; Serve handles become
``ServeEmbedder``s. Records are not reached through Ray: each process opens the repositories
itself (``Container.repos``). This is the only place where a Ray handle meets an engine port.
"""

from __future__ import annotations

from typing import Any

from actors.stores import ActorVectorStore
from engine.bootstrap import Container, Remotes
from engine.config import Settings
from engine.services.ports import VectorStore
from serve_apps.clients import ServeEmbedder


def vector_store(settings: Settings, stores_actor: Any | None) -> VectorStore:
    if settings.qdrant_url:
        from engine.adapters.vectors import QdrantServerVectorStore

        server: VectorStore = QdrantServerVectorStore(settings.qdrant_url)
        return server
    if stores_actor is None:
        raise RuntimeError("no QDRANT_URL and no embedded stores actor")
    return ActorVectorStore(stores_actor)


def container(
    settings: Settings,
    stores_actor: Any | None,
    embedder: Any,
    indexer: Any = None,
    **overrides: Any,
) -> Container:
    remotes = Remotes(
        vectors=vector_store(settings, stores_actor),
        embedder=None if embedder is None else ServeEmbedder(embedder),
        indexer=indexer,
    )
    return Container(settings, remotes, **overrides)
