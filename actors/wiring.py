"""Per-process wiring of the store ports: production servers when configured, else the actor."""

from __future__ import annotations

from typing import Any

from actors.stores import ActorDocumentStore, ActorVectorStore
from engine.config import Settings
from engine.ports import DocumentStore, VectorStore


def document_store(settings: Settings, stores_actor: Any | None) -> DocumentStore:
    if settings.mongo_url:
        from engine.storage.documents import MongoDocumentStore

        return MongoDocumentStore(settings.mongo_url, settings.mongo_db)
    if stores_actor is None:
        raise RuntimeError("no MONGO_URL and no embedded stores actor")
    return ActorDocumentStore(stores_actor)


def vector_store(settings: Settings, stores_actor: Any | None) -> VectorStore:
    if settings.qdrant_url:
        from engine.storage.vectors import QdrantServerVectorStore

        server: VectorStore = QdrantServerVectorStore(settings.qdrant_url)
        return server
    if stores_actor is None:
        raise RuntimeError("no QDRANT_URL and no embedded stores actor")
    return ActorVectorStore(stores_actor)
