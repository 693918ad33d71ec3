"""OpenAPI 3.1, generated from the very ``Route`` list and pydantic models that serve requests."""

from __future__ import annotations

import html
from typing import Any

from pydantic import BaseModel

from engine.http.routing import Route
from engine.http.schemas import Problem

REF = "#/components/schemas/{model}"
ERRORS = {
    "400": "Malformed request",
    "401": "Missing or invalid credentials",
    "403": "The caller's role cannot do this",
    "404": "Not found (also for other merchants' records)",
    "413": "Body too large",
    "422": "Validation failed (field-level errors)",
    "429": "Rate limited (see Retry-After)",
}


def _schema(model: type[BaseModel], mode: str, components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
    for name, sub in schema.pop("$defs", {}).items():
        components.setdefault(name, sub)
    components.setdefault(model.__name__, schema)
    return {"$ref": REF.format(model=model.__name__)}


def _problem_responses(components: dict[str, Any], route: Route) -> dict[str, Any]:
    ref = _schema(Problem, "serialization", components)
    codes = dict(ERRORS)
    if route.perm is None:
        codes.pop("403")
    if route.method == "POST" and route.path.endswith("/orders"):
        codes["409"] = "A request with this Idempotency-Key is still running"
    if route.path.endswith(("/users", "/products", "/knowledge", "/signup")):
        codes["409"] = "Already exists"
    if route.path.endswith("/search"):
        codes["503"] = "Search unavailable"
    if route.path.endswith("/live"):
        codes["426"] = "Not a WebSocket upgrade"
    if route.request_media:
        codes["415"] = "Unsupported media type"
    codes.update(dict(route.errors))
    return {
        code: {"description": text, "content": {"application/problem+json": {"schema": ref}}}
        for code, text in codes.items()
    }


def build(routes: list[Route], version: str = "1.0.0") -> dict[str, Any]:
    components: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for r in routes:
        op: dict[str, Any] = {
            "operationId": r.handler.__name__,
            "summary": r.summary,
            "tags": [r.tag],
            "parameters": [],
            "responses": {},
        }
        if r.perm is not None:
            op["security"] = [{"bearer": []}]
            op["x-required-permission"] = r.perm
        else:
            op["security"] = []
        for name in r.path_params:
            op["parameters"].append(
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 128,
                        "pattern": "^[A-Za-z0-9._:-]+$",
                    },
                }
            )
        if r.query is not None:
            schema = r.query.model_json_schema(ref_template=REF, mode="validation")
            for name, sub in schema.pop("$defs", {}).items():
                components.setdefault(name, sub)
            required = set(schema.get("required", []))
            for name, prop in schema.get("properties", {}).items():
                op["parameters"].append(
                    {"name": name, "in": "query", "required": name in required, "schema": prop}
                )
        for name, needed, text in r.headers:
            op["parameters"].append(
                {
                    "name": name,
                    "in": "header",
                    "required": needed,
                    "description": text,
                    "schema": {"type": "string", "format": "uuid"},
                }
            )
        if r.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": _schema(r.body, "validation", components)}
                },
            }
        elif r.request_media:
            op["requestBody"] = {
                "required": True,
                "content": {media: {"schema": {"type": "string"}} for media in r.request_media},
            }
        ok = str(r.status)
        if r.status == 204:
            op["responses"]["204"] = {"description": "Done"}
        elif r.response is not None:
            for code, text in ((ok, "OK"), *r.also_ok):
                op["responses"][code] = {
                    "description": text,
                    "content": {
                        "application/json": {
                            "schema": _schema(r.response, "serialization", components)
                        }
                    },
                }
        elif r.raw_body is not None:
            op["responses"][ok] = {
                "description": "Switching protocols" if r.status == 101 else "OK",
                "content": {
                    r.raw_body: {
                        "schema": {"type": "object" if r.raw_body.endswith("json") else "string"}
                    }
                },
            }
        op["responses"].update(_problem_responses(components, r))
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Kaleem merchant admin API",
            "version": version,
            "description": "Errors are RFC 9457 problem+json. Lists use cursor pagination "
            "(`limit` 1-100, `cursor` = `next_cursor`). Rate limits: RateLimit-* headers, "
            "429 + Retry-After.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A user access JWT, a merchant API key, or the operator "
                    "token with X-Kaleem-Merchant",
                }
            },
        },
    }


def docs_page(spec: dict[str, Any]) -> str:
    """A dependency-free reference page (no CDN: the engine runs offline)."""
    rows = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            perm = op.get("x-required-permission", "public")
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code>"
                f"</td><td>{html.escape(op['summary'])}</td><td>{perm}</td></tr>"
            )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Kaleem API</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{padding:.2em .6em}"
        "tr:nth-child(even){background:#f4f4f4}</style></head><body>"
        f"<h1>{html.escape(spec['info']['title'])}</h1>"
        f"<p>{html.escape(spec['info']['description'])}</p>"
        "<p>Machine-readable: <a href='/api/v1/openapi.json'>/api/v1/openapi.json</a></p>"
        "<table><tr><th>method</th><th>path</th><th>what</th><th>permission</th></tr>"
        + "".join(rows)
        + "</table></body></html>"
    )
