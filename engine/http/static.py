"""The console's and the widget's files, served by the gateway itself (no CDN, no build step).

They ship inside the package (``engine/http/static/``) and are read once, in a worker thread,
then kept in memory: the set is fixed and small (tens of KiB), so the cache is bounded by the
package itself. Every answer carries a strong ETag so a slow phone downloads a file once per
release. Pages get a strict CSP: scripts and styles from the gateway only, nothing inline.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import importlib.resources
import re
from dataclasses import dataclass

from aiohttp import web

from engine.http.problems import ProblemError

TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}
SAFE_PATH = re.compile(r"^[a-z0-9_-]+(/[a-z0-9_-]+)*\.(html|js|css|svg|json)$")
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str
    gzipped: bytes  # compressed once at load, not per request


_cache: dict[str, Asset] = {}


def _read(path: str) -> Asset | None:
    node = importlib.resources.files("engine.http") / "static"
    for part in path.split("/"):
        node = node / part
    if not node.is_file():
        return None
    body = node.read_bytes()
    suffix = path[path.rindex(".") :]
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    return Asset(body, TYPES[suffix], etag, gzip.compress(body, 9, mtime=0))


async def asset(path: str) -> Asset:
    """A packaged file by its path under ``static/``, or 404 (only known file kinds)."""
    if not SAFE_PATH.match(path):
        raise ProblemError(404, "Not found", "no such file")
    found = _cache.get(path)
    if found is None:  # two first requests may both read it: harmless, same bytes
        loaded = await asyncio.to_thread(_read, path)
        if loaded is None:
            raise ProblemError(404, "Not found", "no such file")
        _cache[path] = found = loaded
    return found


def respond(
    found: Asset, request: web.Request | None = None, *, cross_origin: bool = False
) -> web.Response:
    headers = {
        **PAGE_HEADERS,
        "ETag": found.etag,
        # Files from a merchant's page load cross-site (the widget), the console's do not.
        "Cross-Origin-Resource-Policy": "cross-origin" if cross_origin else "same-origin",
    }
    if found.content_type == "text/html":
        headers["Content-Security-Policy"] = CONSOLE_CSP
        headers["X-Frame-Options"] = "DENY"
    if request is not None and request.headers.get("If-None-Match") == found.etag:
        return web.Response(status=304, headers=headers)
    charset = "utf-8" if found.content_type.startswith(("text/", "application/json")) else None
    headers["Vary"] = "Accept-Encoding"
    body = found.body
    accepts = request.headers.get("Accept-Encoding", "") if request is not None else ""
    if "gzip" in accepts:
        body = found.gzipped
        headers["Content-Encoding"] = "gzip"
    return web.Response(
        body=body, content_type=found.content_type, charset=charset, headers=headers
    )


async def console_index(request: web.Request) -> web.StreamResponse:
    """Every console screen is the same page; the app reads the path after ``#``."""
    return respond(await asset("console/index.html"), request)


async def console_file(request: web.Request) -> web.StreamResponse:
    return respond(await asset("console/" + request.match_info["path"]), request)


async def console_redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/console/")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/console", console_redirect)
    app.router.add_get("/console/", console_index)
    app.router.add_get("/console/{path:.+}", console_file)
