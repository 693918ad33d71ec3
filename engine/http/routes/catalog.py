"""Products and knowledge: CRUD, categories, export and search with the bot's own retrieval.

The record is written first (the source of truth, so a 201 is readable at once), then the
indexer actor embeds and upserts the vector; deletes remove the vector through the same actor,
behind the same lock, so a delete never overtakes an earlier index of the same id.
A product's API id is its SKU (unique per merchant, stable across catalog re-imports).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from aiohttp import web

from engine.domain import catalog
from engine.http import schemas as s
from engine.http.context import client_ip, found
from engine.http.paging import keyset, listing
from engine.http.problems import ProblemError
from engine.http.routing import Ctx, Reply
from engine.services.ports import Document, DuplicateKey
from engine.services.repositories import Keyset

log = logging.getLogger(__name__)
EXPORT_PAGE = 500
MAX_CATEGORIES = 200


def product_out(doc: Document) -> dict[str, Any]:
    return {
        "id": doc["sku"],
        "sku": doc["sku"],
        "title": doc.get("title") or "",
        "description": doc.get("description") or "",
        "price": doc.get("price"),
        "currency": doc.get("currency"),
        "category": doc.get("category"),
        "url": doc.get("url"),
        "image_url": doc.get("image_url"),
        "in_stock": bool(doc.get("in_stock", True)),
        "attributes": doc.get("attributes") or {},
        "updated_at": doc.get("updated_at"),
    }


def _pid(ctx: Ctx) -> str:
    return catalog.product_doc_id(ctx.merchant_id, ctx.path["product_id"])


async def product_exists(ctx: Ctx) -> bool:
    return await ctx.api.repos.products.exists(ctx.merchant_id, _pid(ctx))


async def create_product(ctx: Ctx) -> Reply:
    body: s.ProductIn = ctx.body
    product = catalog.Product(**body.model_dump())
    try:
        doc = await ctx.api.catalog.add_product(ctx.merchant_id, product, time.time())
    except DuplicateKey as exc:
        raise ProblemError(
            409, "Conflict", f"sku {body.sku!r} exists; PATCH /api/v1/products/{body.sku}"
        ) from exc
    return Reply(201, product_out(doc), {"Location": f"/api/v1/products/{body.sku}"})


async def get_product(ctx: Ctx) -> dict[str, Any]:
    doc = await ctx.api.repos.products.get(ctx.merchant_id, _pid(ctx))
    return product_out(found(doc, "product"))


async def patch_product(ctx: Ctx) -> dict[str, Any]:
    body: s.ProductPatchIn = ctx.body
    changes = body.model_dump(exclude_unset=True)
    doc = await ctx.api.catalog.change_product(
        ctx.merchant_id, ctx.path["product_id"], changes, time.time()
    )
    return product_out(found(doc, "product"))


async def delete_product(ctx: Ctx) -> Reply:
    if not await ctx.api.catalog.remove_product(ctx.merchant_id, ctx.path["product_id"]):
        raise ProblemError(404, "Not found", "no such product")
    return Reply(204, None)


async def list_products(ctx: Ctx) -> dict[str, Any]:
    q: s.ProductQuery = ctx.query
    products = await ctx.api.repos.products.page_filtered(
        ctx.merchant_id,
        category=q.category,
        in_stock=q.in_stock,
        limit=q.limit,
        after=keyset(q.cursor),
    )
    return listing(products, product_out)


async def export_products(ctx: Ctx) -> web.StreamResponse:
    """NDJSON, streamed page by page: memory stays bounded whatever the catalog size."""
    api = ctx.api
    await api.audit(ctx.merchant_id, ctx.actor, "products.export", None, client_ip(ctx.request))
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/x-ndjson",
            "Content-Disposition": 'attachment; filename="products.jsonl"',
        }
    )
    await response.prepare(ctx.request)
    after: Keyset | None = None
    while True:
        products = await api.repos.products.page(ctx.merchant_id, limit=EXPORT_PAGE, after=after)
        chunk = b"".join(
            orjson.dumps({k: v for k, v in product_out(d).items() if k != "id"}) + b"\n"
            for d in products.items
        )
        if chunk:
            await response.write(chunk)
        if products.after is None:
            break
        after = products.after
    await response.write_eof()
    return response


async def categories(ctx: Ctx) -> dict[str, Any]:
    top = await ctx.api.repos.products.categories(ctx.merchant_id, limit=MAX_CATEGORIES)
    return {"items": [{"name": n, "count": c} for n, c in top]}


async def search_products(ctx: Ctx) -> dict[str, Any]:
    api = ctx.api
    q: s.SearchQuery = ctx.query
    if api.retriever is None:
        raise ProblemError(503, "Search unavailable", "no retriever is configured")
    result = await api.retriever.retrieve(
        ctx.merchant_id, q.q, product_limit=q.limit, knowledge_limit=0, max_price=q.max_price
    )
    items = [
        {
            "sku": h.card.sku,
            "title": h.card.title,
            "price": h.card.price,
            "currency": h.card.currency,
            "url": h.card.url,
            "score": round(float(h.score), 4),
        }
        for h in result.products[: q.limit]
    ]
    return {"items": items}


# -- knowledge ------------------------------------------------------------------------------
def knowledge_out(doc: Document) -> dict[str, Any]:
    return {
        "id": doc["doc_id"],
        "title": doc.get("title") or "",
        "body": doc.get("body") or "",
        "language": doc.get("language"),
        "chunks": int(doc.get("chunks") or 0),
        "updated_at": doc.get("updated_at"),
    }


def _kid(ctx: Ctx) -> str:
    return f"{ctx.merchant_id}:{ctx.path['doc_id']}"


async def knowledge_exists(ctx: Ctx) -> bool:
    return await ctx.api.repos.knowledge.exists(ctx.merchant_id, _kid(ctx))


async def create_knowledge(ctx: Ctx) -> Reply:
    body: s.KnowledgeIn = ctx.body
    document = catalog.KnowledgeDoc(body.id, body.title, body.body, body.language)
    try:
        doc = await ctx.api.catalog.add_document(ctx.merchant_id, document, time.time())
    except DuplicateKey as exc:
        raise ProblemError(409, "Conflict", f"document {body.id!r} exists") from exc
    return Reply(201, knowledge_out(doc))


async def get_knowledge(ctx: Ctx) -> dict[str, Any]:
    doc = await ctx.api.repos.knowledge.get(ctx.merchant_id, _kid(ctx))
    return knowledge_out(found(doc, "document"))


async def patch_knowledge(ctx: Ctx) -> dict[str, Any]:
    body: s.KnowledgePatchIn = ctx.body
    changes = body.model_dump(exclude_unset=True)
    doc = await ctx.api.catalog.change_document(
        ctx.merchant_id, ctx.path["doc_id"], changes, time.time()
    )
    return knowledge_out(found(doc, "document"))


async def delete_knowledge(ctx: Ctx) -> Reply:
    if not await ctx.api.catalog.remove_document(ctx.merchant_id, ctx.path["doc_id"]):
        raise ProblemError(404, "Not found", "no such document")
    return Reply(204, None)


async def list_knowledge(ctx: Ctx) -> dict[str, Any]:
    q: s.PageQuery = ctx.query
    documents = await ctx.api.repos.knowledge.page(
        ctx.merchant_id, limit=q.limit, after=keyset(q.cursor)
    )
    return listing(documents, knowledge_out)


P = "/api/v1/products"
K = "/api/v1/knowledge"
