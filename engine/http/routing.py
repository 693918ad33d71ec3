"""Declarative routes: one ``Route`` describes auth, RBAC, validation AND the OpenAPI entry.

Why: the OpenAPI document must be generated from the same schemas that validate requests (one
source of truth). Every ``/api/v1`` route is a ``Route`` whose pydantic models validate the body
and the query string here and are turned into JSON Schema by ``engine.http.openapi``; a route
cannot exist without being documented (``engine/http/routes/__init__.py`` is the list).

Tenant isolation: a caller only ever sees its own merchant. When a role is not allowed a
route that names a resource, we first ask whether that resource exists *for the caller's
merchant*: another merchant's id answers 404 (never 403), so existence never leaks.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from engine.domain.identity import RANK
from engine.http.auth import Caller
from engine.http.context import API, Api
from engine.http.keys import AUTH
from engine.http.problems import ProblemError, read_limited

# What each permission needs: viewers read; agents handle conversations, orders and leads;
# admins change the catalog, knowledge, users, keys and channels; owners alone own billing
# and other owners. "operator" routes are for the platform's operator token only.
PERMS: dict[str, int] = {"read": 0, "converse": 1, "write": 2, "manage": 2, "owner": 3}
OPERATOR = "operator"

JSON_LIMIT = 64 * 1024


@dataclass(slots=True)
class Ctx:
    request: web.Request
    caller: Caller | None
    body: Any = None
    query: Any = None

    @property
    def merchant_id(self) -> str:
        assert self.caller is not None and self.caller.merchant_id
        return self.caller.merchant_id

    @property
    def scope(self) -> str | None:
        """The merchant whose records this call sees; None for an operator acting for all
        (only on routes declared with ``operator_scope``)."""
        assert self.caller is not None
        return self.caller.merchant_id or None

    @property
    def api(self) -> Api:
        """The gateway's services (records, auth, commerce, ...), shared by every route."""
        return self.request.app[API]

    @property
    def path(self) -> dict[str, str]:
        return dict(self.request.match_info)

    @property
    def actor(self) -> str:
        """Who did it, for the audit log: a user id, an API key id or the operator."""
        c = self.caller
        if c is None:
            return "anonymous"
        if c.operator:
            return "operator"
        return c.user_id or c.key_id or "api-key"


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


HandlerFn = Callable[[Ctx], Awaitable[Any]]
ExistsFn = Callable[[Ctx], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: HandlerFn
    summary: str
    tag: str
    perm: str | None = "read"  # None: public (signup, login...)
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None  # None with status 204: no body
    status: int = 200
    exists: ExistsFn | None = None
    headers: tuple[tuple[str, bool, str], ...] = ()  # (name, required, description)
    raw_body: str | None = None  # the response's media type when it is not JSON
    # A request body read as-is (imports): its media types; the handler parses it.
    request_media: tuple[str, ...] = ()
    # An operator may call without naming a merchant and then sees every merchant's records.
    operator_scope: bool = False
    # The status of a query-string validation failure (a documented 400 on some routes).
    query_error_status: int = 422
    # Errors this route may answer beyond the common ones: (status, description).
    errors: tuple[tuple[str, str], ...] = ()
    # Other success statuses answering the same ``response`` model: (status, description).
    also_ok: tuple[tuple[str, str], ...] = ()

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)


_TAG_ERRORS = frozenset({"union_tag_invalid", "union_tag_not_found"})


def field_errors(exc: ValidationError, tags: frozenset[str] = frozenset()) -> list[dict[str, str]]:
    """Field-level errors; for a body that is a union told apart by a tag (``kind``), the
    tag itself is the field of a bad tag, and the member's name is left out of the path."""
    out = []
    for err in exc.errors()[:50]:
        parts = [str(p) for p in err.get("loc", ()) if p != "__root__"]
        if parts and parts[0] in tags:
            parts = parts[1:]
        if err.get("type") in _TAG_ERRORS:
            parts = [str((err.get("ctx") or {}).get("discriminator", "kind")).strip("'")]
        out.append({"field": ".".join(parts) or "body", "message": str(err.get("msg", "invalid"))})
    return out


def invalid(
    exc: ValidationError, status: int = 422, tags: frozenset[str] = frozenset()
) -> ProblemError:
    errors = field_errors(exc, tags)
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:3])
    title = "Validation failed" if status == 422 else "Invalid query parameter"
    return ProblemError(status, title, detail, errors=errors)


def allowed(role: str, perm: str) -> bool:
    return RANK.get(role, -1) >= PERMS[perm]


async def parse_body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    raw = await read_limited(request, JSON_LIMIT)
    if not raw.strip():
        raw = b"{}"  # no body: required fields are then reported one by one (422)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ProblemError(400, "Malformed JSON", str(exc)) from exc
    if not isinstance(data, dict):
        raise ProblemError(400, "Malformed JSON", "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc, tags=getattr(model, "union_tags", frozenset())) from exc


def parse_query(request: web.Request, model: type[BaseModel], status: int = 422) -> BaseModel:
    data: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        data[key] = values if len(values) > 1 else values[0]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc, status) from exc


def dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


def make_handler(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        caller: Caller | None = None
        if route.perm == OPERATOR:
            caller = request.app[AUTH].require_operator(request)
        elif route.perm is not None:
            caller = await request.app[AUTH].require_merchant(
                request, any_merchant=route.operator_scope
            )
        ctx = Ctx(request, caller)
        if (
            caller is not None
            and route.perm not in (None, OPERATOR)
            and not allowed(caller.role, str(route.perm))
        ):
            if route.exists is not None and not await route.exists(ctx):
                raise ProblemError(404, "Not found", "no such resource")
            raise ProblemError(
                403, "Forbidden", f"the {caller.role} role cannot do this ({route.perm})"
            )
        if route.query is not None:
            ctx.query = parse_query(request, route.query, route.query_error_status)
        if route.body is not None:
            ctx.body = await parse_body(request, route.body)
        result = await route.handler(ctx)
        if isinstance(result, web.StreamResponse):
            return result
        reply = result if isinstance(result, Reply) else Reply(route.status, result)
        if reply.status == 204:
            return web.Response(status=204, headers=reply.headers)
        return web.Response(
            status=reply.status,
            body=orjson.dumps(dump(reply.body)),
            content_type="application/json",
            headers=reply.headers,
        )

    handle.__name__ = route.handler.__name__
    return handle


def add_routes(app: web.Application, routes: list[Route]) -> None:
    for route in routes:
        app.router.add_route(route.method, route.path, make_handler(route))
