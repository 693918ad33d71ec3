"""A re-imported document that got shorter keeps no stale windows: its old windows leave the
vector store, its record is the new version, and nothing answers from the old text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engine.adapters.records import KNOWLEDGE, Records
from engine.adapters.repositories import sqlite_repositories
from engine.adapters.secrets import SecretBox, load_or_create_key
from engine.adapters.vectors import EdgeVectorStore
from engine.domain.catalog import KnowledgeDoc
from engine.services.indexing import VECTOR_CHUNKS, IndexService, knowledge_index_items
from engine.services.retrieval import build_lexicon

DIM = 8


class UnitEmbedder:
    async def embed_queries(self, texts: list[str]) -> Any:
        return await self.embed_passages(texts)

    async def embed_passages(self, texts: list[str]) -> Any:
        rows = np.ones((len(texts), DIM), dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


async def _import(service: IndexService, records: Records, docs: list[KnowledgeDoc]) -> None:
    """What ``POST /api/v1/knowledge/import`` hands the indexer."""
    job = await records.create_job("m1", KNOWLEDGE, len(docs), [])
    items = [item for d in docs for item in knowledge_index_items(d)]
    rows = [{**d.to_doc("m1"), "doc_id": d.id} for d in docs]
    await service.index(job, "m1", KNOWLEDGE, items, rows)


async def test_a_shorter_reimport_removes_the_old_windows(tmp_path: Path) -> None:
    store = sqlite_repositories(tmp_path / "records.sqlite3")
    vectors = EdgeVectorStore(tmp_path / "vectors")
    await vectors.ensure_collection(KNOWLEDGE, DIM)
    records = Records(store, SecretBox(load_or_create_key("", tmp_path)))
    service = IndexService(UnitEmbedder(), vectors, records)
    paragraph = "Gift wrapping is free on every order over 200 SAR and takes one extra day. " * 8
    long_doc = KnowledgeDoc("gifts", "Gift wrapping", "\n\n".join([paragraph] * 5), "en")
    other = KnowledgeDoc("hours", "Opening hours", "We answer chats from 9 AM to 11 PM.", "en")
    await _import(service, records, [long_doc, other])
    old_ids = {i.id for i in knowledge_index_items(long_doc)}
    assert len(old_ids) > 4
    assert await vectors.count(KNOWLEDGE, "m1") == len(old_ids) + 1

    short = KnowledgeDoc("gifts", "Gift wrapping", "Gift wrapping costs 15 SAR.", "en")
    await _import(service, records, [short])

    new_ids = {i.id for i in knowledge_index_items(short)}
    assert await vectors.count(KNOWLEDGE, "m1") == len(new_ids) + 1
    hits = await vectors.search(KNOWLEDGE, "m1", [1.0] * DIM, limit=50)
    assert {h.id for h in hits} == new_ids | {"hours#0.0"}
    assert all("free on every order" not in h.payload["body"] for h in hits)
    record = await store.knowledge.get("m1", "m1:gifts")
    assert record is not None and record["body"] == short.body
    assert int(record[VECTOR_CHUNKS]) >= 1  # still names every window it may own
    lexicon = build_lexicon([], [d async for page in store.knowledge.scan("m1") for d in page], ())
    assert {c["body"] for c in lexicon.chunks.values()} == {short.body, other.body}
    await vectors.close()
    await store.close()
