"""Repositories: the records the engine keeps, each query scoped by merchant.

Written against the ``DocumentStore`` port, so the same code runs on MongoDB in production and
on the embedded store by default.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from typing import Any

from engine.conversation import MerchantProfile
from engine.ports import Document, DocumentStore
from engine.secrets import SecretBox, hash_api_key, new_api_key

MERCHANTS = "merchants"
CHANNELS = "channels"
PRODUCTS = "products"
KNOWLEDGE = "knowledge"
JOBS = "jobs"
MESSAGES = "messages"


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


@dataclass(frozen=True, slots=True)
class Channel:
    id: str
    merchant_id: str
    kind: str
    api_base: str
    bot_token: str
    secret_token: str


class Records:
    def __init__(self, store: DocumentStore, box: SecretBox) -> None:
        self._store = store
        self._box = box

    async def ensure_indexes(self) -> None:
        await self._store.collection(MERCHANTS).create_index([("api_key_hash", 1)], unique=True)
        await self._store.collection(CHANNELS).create_index([("merchant_id", 1)])
        await self._store.collection(PRODUCTS).create_index(
            [("merchant_id", 1), ("sku", 1)], unique=True
        )
        await self._store.collection(KNOWLEDGE).create_index([("merchant_id", 1), ("doc_id", 1)])
        await self._store.collection(JOBS).create_index([("merchant_id", 1)])
        await self._store.collection(MESSAGES).create_index(
            [("merchant_id", 1), ("conversation_key", 1), ("at", 1)]
        )

    # -- merchants ---------------------------------------------------------------------------
    async def create_merchant(self, name: str, default_language: str) -> tuple[str, str]:
        merchant_id = new_id("m")
        api_key = new_api_key()
        await self._store.collection(MERCHANTS).insert_one(
            {
                "_id": merchant_id,
                "name": name,
                "default_language": default_language,
                "api_key_hash": hash_api_key(api_key),
                "created_at": time.time(),
            }
        )
        return merchant_id, api_key

    async def merchant_by_api_key(self, api_key: str) -> Document | None:
        return await self._store.collection(MERCHANTS).find_one(
            {"api_key_hash": hash_api_key(api_key)}
        )

    async def merchant(self, merchant_id: str) -> Document | None:
        return await self._store.collection(MERCHANTS).find_one({"_id": merchant_id})

    async def profile(self, merchant_id: str) -> MerchantProfile | None:
        doc = await self.merchant(merchant_id)
        if doc is None:
            return None
        return MerchantProfile(merchant_id, str(doc["name"]), str(doc["default_language"]))

    # -- channels ----------------------------------------------------------------------------
    async def create_channel(
        self, merchant_id: str, kind: str, api_base: str, bot_token: str, secret_token: str
    ) -> str:
        channel_id = new_id("ch")
        await self._store.collection(CHANNELS).insert_one(
            {
                "_id": channel_id,
                "merchant_id": merchant_id,
                "kind": kind,
                "api_base": api_base,
                "bot_token_enc": self._box.encrypt(bot_token),
                "secret_token_enc": self._box.encrypt(secret_token),
                "created_at": time.time(),
            }
        )
        return channel_id

    async def channel(self, channel_id: str) -> Channel | None:
        doc = await self._store.collection(CHANNELS).find_one({"_id": channel_id})
        if doc is None:
            return None
        return Channel(
            id=str(doc["_id"]),
            merchant_id=str(doc["merchant_id"]),
            kind=str(doc["kind"]),
            api_base=str(doc["api_base"]),
            bot_token=self._box.decrypt(str(doc["bot_token_enc"])),
            secret_token=self._box.decrypt(str(doc["secret_token_enc"])),
        )

    # -- catalog and knowledge ---------------------------------------------------------------
    async def upsert_product(self, merchant_id: str, doc: Document) -> None:
        sku = str(doc["sku"])
        body = {**doc, "merchant_id": merchant_id, "updated_at": time.time()}
        body.pop("_id", None)
        await self._store.collection(PRODUCTS).update_one(
            {"_id": f"{merchant_id}:{sku}"}, {"$set": body}, upsert=True
        )

    async def upsert_knowledge(self, merchant_id: str, doc: Document) -> None:
        body = {**doc, "merchant_id": merchant_id, "updated_at": time.time()}
        body.pop("_id", None)
        await self._store.collection(KNOWLEDGE).update_one(
            {"_id": f"{merchant_id}:{doc['doc_id']}"}, {"$set": body}, upsert=True
        )

    async def upsert_many(self, collection: str, merchant_id: str, docs: list[Document]) -> None:
        """Upsert by ``_id`` in bounded concurrent waves (the stores serve them concurrently)."""
        coll = self._store.collection(collection)
        now = time.time()
        for start in range(0, len(docs), 64):
            wave = docs[start : start + 64]
            await asyncio.gather(
                *(
                    coll.update_one(
                        {"_id": d["_id"], "merchant_id": merchant_id},
                        {
                            "$set": {
                                **{k: v for k, v in d.items() if k != "_id"},
                                "merchant_id": merchant_id,
                                "updated_at": now,
                            }
                        },
                        upsert=True,
                    )
                    for d in wave
                )
            )

    async def count_products(self, merchant_id: str) -> int:
        return await self._store.collection(PRODUCTS).count_documents({"merchant_id": merchant_id})

    # -- jobs --------------------------------------------------------------------------------
    async def create_job(self, merchant_id: str, kind: str, total: int, errors: list[Any]) -> str:
        job_id = new_id("job")
        await self._store.collection(JOBS).insert_one(
            {
                "_id": job_id,
                "merchant_id": merchant_id,
                "kind": kind,
                "status": "running",
                "progress": {"total": total, "stored": 0, "indexed": 0},
                "errors": errors,
                "created_at": time.time(),
                "updated_at": time.time(),
            }
        )
        return job_id

    async def update_job(self, job_id: str, **fields: Any) -> None:
        sets = {
            f"progress.{k}" if k in {"stored", "indexed", "total"} else k: v
            for k, v in fields.items()
        }
        sets["updated_at"] = time.time()
        await self._store.collection(JOBS).update_one({"_id": job_id}, {"$set": sets})

    async def job(self, merchant_id: str, job_id: str) -> Document | None:
        return await self._store.collection(JOBS).find_one(
            {"_id": job_id, "merchant_id": merchant_id}
        )

    # -- messages ----------------------------------------------------------------------------
    async def record_message(self, merchant_id: str, doc: Document) -> None:
        """Idempotent by ``_id``: a replayed turn overwrites, never duplicates."""
        await self._store.collection(MESSAGES).replace_one(
            {"_id": doc["_id"]}, {**doc, "merchant_id": merchant_id}, upsert=True
        )
