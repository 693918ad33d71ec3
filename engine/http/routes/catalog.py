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
from engine.domain.catalog import KNOWLEDGE, PRODUCTS
from engine.http import schemas as s
from engine.http.context import API, Api, client_ip, found
from engine.http.paging import keyset, listing
from engine.http.problems import ProblemError
from engine.http.routing import Ctx, Reply, Route
from engine.services.indexing import VECTOR_CHUNKS, pending_fields, tombstone
from engine.services.ports import Document, DuplicateKey
from engine.services.repositories import Keyset

log = logging.getLogger(__name__)
EXPORT_PAGE = 500
MAX_CATEGORIES = 200


def _api(ctx: Ctx) -> Api:
    return ctx.request.app[API]


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


def _nudge_indexer(api: Api, merchant_id: str) -> None:
    """The write already marked the record pending (``pending_fields``); this only asks the
    indexer to look now rather than at its next sweep, so losing it loses nothing."""
    api.deps.indexer.reconcile(merchant_id)


def _pid(ctx: Ctx) -> str:
    return catalog.product_doc_id(ctx.merchant_id, ctx.path["product_id"])


async def product_exists(ctx: Ctx) -> bool:
    return await _api(ctx).repos.products.exists(ctx.merchant_id, _pid(ctx))


async def create_product(ctx: Ctx) -> Reply:
    api = _api(ctx)
    body: s.ProductIn = ctx.body
    doc = {**catalog.Product(**body.model_dump()).to_doc(ctx.merchant_id), **pending_fields()}
    doc["updated_at"] = doc["created_at"] = time.time()
    try:
        await api.repos.products.create(doc)
    except DuplicateKey as exc:
        raise ProblemError(
            409, "Conflict", f"sku {body.sku!r} exists; PATCH /api/v1/products/{body.sku}"
        ) from exc
    _nudge_indexer(api, ctx.merchant_id)
    return Reply(201, product_out(doc), {"Location": f"/api/v1/products/{body.sku}"})


async def get_product(ctx: Ctx) -> dict[str, Any]:
    doc = await _api(ctx).repos.products.get(ctx.merchant_id, _pid(ctx))
    return product_out(found(doc, "product"))


async def patch_product(ctx: Ctx) -> dict[str, Any]:
    api = _api(ctx)
    body: s.ProductPatchIn = ctx.body
    sets = {**body.model_dump(exclude_unset=True), **pending_fields()}
    sets["updated_at"] = time.time()
    doc = found(await api.repos.products.update(ctx.merchant_id, _pid(ctx), sets), "product")
    _nudge_indexer(api, ctx.merchant_id)
    return product_out(doc)


async def _delete_with_tombstone(
    api: Api, collection: str, record: Document, vector_ids: list[str]
) -> bool:
    """Tombstone, then delete, then nudge: the indexer removes the vectors (services.indexing)."""
    merchant_id = str(record["merchant_id"])
    await api.repos.tombstones.add(tombstone(collection, record, vector_ids))
    deleted = await api.repos.catalog(collection).delete(merchant_id, str(record["_id"]))
    _nudge_indexer(api, merchant_id)
    return deleted


async def delete_product(ctx: Ctx) -> Reply:
    api = _api(ctx)
    doc = await api.repos.products.get(ctx.merchant_id, _pid(ctx))
    if doc is None or not await _delete_with_tombstone(
        api, PRODUCTS, doc, catalog.product_vector_ids(ctx.path["product_id"])
    ):
        raise ProblemError(404, "Not found", "no such product")
    return Reply(204, None)


async def list_products(ctx: Ctx) -> dict[str, Any]:
    q: s.ProductQuery = ctx.query
    products = await _api(ctx).repos.products.page_filtered(
        ctx.merchant_id,
        category=q.category,
        in_stock=q.in_stock,
        limit=q.limit,
        after=keyset(q.cursor),
    )
    return listing(products, product_out)


async def export_products(ctx: Ctx) -> web.StreamResponse:
    """NDJSON, streamed page by page: memory stays bounded whatever the catalog size."""
    api = _api(ctx)
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
    top = await _api(ctx).repos.products.categories(ctx.merchant_id, limit=MAX_CATEGORIES)
    return {"items": [{"name": n, "count": c} for n, c in top]}


async def search_products(ctx: Ctx) -> dict[str, Any]:
    api = _api(ctx)
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
    return await _api(ctx).repos.knowledge.exists(ctx.merchant_id, _kid(ctx))


async def create_knowledge(ctx: Ctx) -> Reply:
    api = _api(ctx)
    body: s.KnowledgeIn = ctx.body
    doc = {
        **catalog.KnowledgeDoc(body.id, body.title, body.body, body.language).to_doc(
            ctx.merchant_id
        ),
        "created_at": time.time(),
        "updated_at": time.time(),
    }
    doc["chunks"] = len(
        catalog.chunk_knowledge(catalog.KnowledgeDoc(body.id, body.title, body.body))
    )
    doc.update(pending_fields())
    try:
        await api.repos.knowledge.create(doc)
    except DuplicateKey as exc:
        raise ProblemError(409, "Conflict", f"document {body.id!r} exists") from exc
    _nudge_indexer(api, ctx.merchant_id)
    return Reply(201, knowledge_out(doc))


async def get_knowledge(ctx: Ctx) -> dict[str, Any]:
    doc = await _api(ctx).repos.knowledge.get(ctx.merchant_id, _kid(ctx))
    return knowledge_out(found(doc, "document"))


async def patch_knowledge(ctx: Ctx) -> dict[str, Any]:
    api = _api(ctx)
    body: s.KnowledgePatchIn = ctx.body
    before = found(await api.repos.knowledge.get(ctx.merchant_id, _kid(ctx)), "document")
    merged = {**before, **body.model_dump(exclude_unset=True)}
    count = len(
        catalog.chunk_knowledge(
            catalog.KnowledgeDoc(str(merged["doc_id"]), str(merged["title"]), str(merged["body"]))
        )
    )
    sets = {
        **body.model_dump(exclude_unset=True),
        **pending_fields(),
        "chunks": count,
        # Every chunk id an indexed version may own, so the indexer can remove the ones a
        # shorter version leaves behind (set in this same write: nothing to lose on a crash).
        VECTOR_CHUNKS: max(count, int(before.get(VECTOR_CHUNKS) or before.get("chunks") or 0)),
        "updated_at": time.time(),
    }
    doc = found(await api.repos.knowledge.update(ctx.merchant_id, _kid(ctx), sets), "document")
    _nudge_indexer(api, ctx.merchant_id)
    return knowledge_out(doc)


async def delete_knowledge(ctx: Ctx) -> Reply:
    api = _api(ctx)
    doc = found(await api.repos.knowledge.get(ctx.merchant_id, _kid(ctx)), "document")
    # Imports never stored a chunk count: remove a generous range of positional chunk ids.
    count = int(doc.get(VECTOR_CHUNKS) or doc.get("chunks") or 200)
    ids = catalog.knowledge_vector_ids(str(doc["doc_id"]), count)
    if not await _delete_with_tombstone(api, KNOWLEDGE, doc, ids):
        raise ProblemError(404, "Not found", "no such document")
    return Reply(204, None)


async def list_knowledge(ctx: Ctx) -> dict[str, Any]:
    q: s.PageQuery = ctx.query
    documents = await _api(ctx).repos.knowledge.page(
        ctx.merchant_id, limit=q.limit, after=keyset(q.cursor)
    )
    return listing(documents, knowledge_out)


P = "/api/v1/products"
K = "/api/v1/knowledge"
ROUTES = [
    Route(
        "GET",
        P,
        list_products,
        "List products",
        "products",
        query=s.ProductQuery,
        response=s.ProductPage,
    ),
    Route(
        "POST",
        P,
        create_product,
        "Create a product (indexed for the bot)",
        "products",
        perm="write",
        body=s.ProductIn,
        response=s.ProductOut,
        status=201,
    ),
    Route(
        "GET",
        f"{P}/export",
        export_products,
        "Export the catalog as NDJSON",
        "products",
        perm="manage",
        raw_body="application/x-ndjson",
    ),
    Route(
        "GET",
        f"{P}/categories",
        categories,
        "Categories with product counts",
        "products",
        response=s.CategoryList,
    ),
    Route(
        "GET",
        f"{P}/search",
        search_products,
        "Search with the bot's retrieval",
        "products",
        query=s.SearchQuery,
        response=s.SearchOut,
    ),
    Route(
        "GET", P + "/{product_id}", get_product, "Get a product", "products", response=s.ProductOut
    ),
    Route(
        "PATCH",
        P + "/{product_id}",
        patch_product,
        "Update a product (re-indexed)",
        "products",
        perm="write",
        body=s.ProductPatchIn,
        response=s.ProductOut,
        exists=product_exists,
    ),
    Route(
        "DELETE",
        P + "/{product_id}",
        delete_product,
        "Delete a product and its vector",
        "products",
        perm="write",
        status=204,
        exists=product_exists,
    ),
    Route(
        "GET",
        K,
        list_knowledge,
        "List knowledge documents",
        "knowledge",
        query=s.PageQuery,
        response=s.KnowledgePage,
    ),
    Route(
        "POST",
        K,
        create_knowledge,
        "Create a knowledge document",
        "knowledge",
        perm="write",
        body=s.KnowledgeIn,
        response=s.KnowledgeOut,
        status=201,
    ),
    Route(
        "GET",
        K + "/{doc_id}",
        get_knowledge,
        "Get a knowledge document",
        "knowledge",
        response=s.KnowledgeOut,
    ),
    Route(
        "PATCH",
        K + "/{doc_id}",
        patch_knowledge,
        "Update a document (re-indexed)",
        "knowledge",
        perm="write",
        body=s.KnowledgePatchIn,
        response=s.KnowledgeOut,
        exists=knowledge_exists,
    ),
    Route(
        "DELETE",
        K + "/{doc_id}",
        delete_knowledge,
        "Delete a document and its vectors",
        "knowledge",
        perm="write",
        status=204,
        exists=knowledge_exists,
    ),
]
