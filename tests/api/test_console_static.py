"""The console and the widget are served by the gateway itself, under a strict CSP, with nothing
fetched from anywhere else."""

from __future__ import annotations

import importlib.resources
import re

import pytest

from tests.conftest import Engine, Store

pytestmark = pytest.mark.integration
STATIC = importlib.resources.files("engine.http") / "static"
# The only absolute URLs the files may name: the SVG namespace and example placeholders.
ALLOWED_URLS = ("http://www.w3.org/2000/svg", "https://shop.example.com")


def _files(folder: str) -> list[str]:
    return sorted(p.name for p in (STATIC / folder).iterdir() if p.is_file())


async def test_console_page_has_a_strict_csp_and_no_inline_script(engine: Engine) -> None:
    async with engine.session.get(f"{engine.base_url}/console/") as r:
        assert r.status == 200 and r.content_type == "text/html"
        html = await r.text()
        csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all("src=" in tag for tag in scripts)
    assert "style=" not in html
    async with engine.session.get(f"{engine.base_url}/console", allow_redirects=False) as r:
        assert r.status == 302 and r.headers["Location"] == "/console/"


async def test_every_module_the_console_imports_is_served_with_an_etag(engine: Engine) -> None:
    for name in _files("console"):
        async with engine.session.get(f"{engine.base_url}/console/{name}") as r:
            assert r.status == 200, name
            assert r.headers["Content-Encoding"] == "gzip"
            etag = r.headers["ETag"]
            body = await r.text()
        if name.endswith(".js"):
            assert r.content_type == "text/javascript"
            for imported in re.findall(r'from "\./([a-z_-]+\.js)"', body):
                assert imported in _files("console"), (name, imported)
        async with engine.session.get(
            f"{engine.base_url}/console/{name}", headers={"If-None-Match": etag}
        ) as r:
            assert r.status == 304


@pytest.mark.parametrize(
    "path",
    ["/console/../config.py", "/console/%2e%2e/webchat.py", "/console/app.py", "/console/x.js"],
)
async def test_only_packaged_assets_are_served(engine: Engine, path: str) -> None:
    async with engine.session.get(f"{engine.base_url}{path}") as r:
        assert r.status == 404
        assert r.content_type == "application/problem+json"


def test_no_file_loads_anything_from_another_host() -> None:
    for folder in ("console", "webchat"):
        for name in _files(folder):
            text = (STATIC / folder / name).read_text(encoding="utf-8")
            for url in re.findall(r"https?://[^\s\"'`)<]+", text):
                assert url.startswith(ALLOWED_URLS), (name, url)


async def test_widget_files_load_from_any_site(engine: Engine, demo_store: Store) -> None:
    async with engine.session.get(f"{engine.base_url}/webchat/widget.js") as r:
        assert r.status == 200 and r.content_type == "text/javascript"
        assert r.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    async with engine.session.get(f"{engine.base_url}/webchat/widget.css") as r:
        assert r.status == 200 and r.content_type == "text/css"
    async with engine.session.get(f"{engine.base_url}/webchat/{demo_store.merchant_id}") as r:
        assert r.status == 200
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        page = await r.text()
        assert 'dir="rtl"' in page and 'data-mode="page"' in page
