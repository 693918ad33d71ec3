"""A real browser (Debian's chromium, driven by Playwright) against the session's real engine.

No browser is downloaded: Playwright drives ``/usr/bin/chromium`` (``make tools`` installs it).
Product images of the demo catalogue point at a host that does not exist; the browser's requests
for them are answered here with a small SVG, so pages look real and nothing leaves the machine.
Screenshots go to ``KALEEM_SCREENSHOT_DIR`` when it is set (``docs/`` to refresh the README's).
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import Engine
from tests.gateways import served

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IMAGE = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="300" height="200" viewBox="0 0 300 200">'
    '<rect width="300" height="200" fill="#dfe9e5"/><circle cx="150" cy="95" r="48" '
    'fill="#1f6f5c" opacity=".55"/><rect x="60" y="150" width="180" height="16" rx="8" '
    'fill="#1f6f5c" opacity=".35"/></svg>'
)

pytestmark = pytest.mark.integration


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        skip = pytest.mark.skip(reason="Debian's chromium is not installed (make tools)")
        for item in items:
            if "tests/browser" in str(item.fspath):
                item.add_marker(skip)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        await b.close()


async def _fake_image(route: Any) -> None:
    await route.fulfill(status=200, content_type="image/svg+xml", body=IMAGE)


async def new_page(browser: Any, locale: str = "en-US", **kw: Any) -> Any:
    viewport = {"width": 1280, "height": 800}
    context = await browser.new_context(locale=locale, viewport=viewport, **kw)
    context.set_default_timeout(30_000)
    await context.route("https://demo.kaleem.example/**", _fake_image)
    page = await context.new_page()
    # What the page logged is printed, so a failing test shows the browser's side too.
    page.on("console", lambda m: print(f"[browser {m.type}] {m.text}"))
    page.on("pageerror", lambda e: print(f"[browser error] {e}"))
    return page


def shot_path(name: str, tmp_path: Path) -> Path:
    folder = os.environ.get("KALEEM_SCREENSHOT_DIR")
    return (Path(folder) if folder else tmp_path) / name


@dataclass
class Account:
    merchant_id: str
    email: str
    password: str
    access_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def sign_up(engine: Engine, name: str, language: str = "en") -> Account:
    email = f"owner-{secrets.token_hex(4)}@shop.example.com"
    password = "correct-horse-" + secrets.token_hex(4)
    async with engine.session.post(
        f"{engine.base_url}/api/v1/auth/signup",
        json={
            "merchant_name": name,
            "email": email,
            "password": password,
            "default_language": language,
        },
    ) as r:
        assert r.status == 201, await r.text()
        body = await r.json()
    return Account(body["merchant_id"], email, password, body["access_token"])


async def log_in(page: Any, engine: Engine, account: Account | tuple[str, str]) -> None:
    email, password = (account.email, account.password) if isinstance(account, Account) else account
    await page.goto(f"{engine.base_url}/console/#/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.locator("form.auth button[type=submit]").click()
    await page.locator("#live-dot.up").wait_for()


@pytest.fixture
async def merchant_site() -> AsyncIterator[str]:
    """A merchant's own web site on another origin, embedding the widget with one line."""

    async def page(request: web.Request) -> web.Response:
        engine_url = request.query["engine"]
        merchant = request.query["merchant"]
        lang = request.query.get("lang", "en")
        html = (
            f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>Shop</title>'
            "</head><body><h1>Welcome to the shop</h1>"
            f'<script src="{engine_url}/webchat/widget.js" data-merchant="{merchant}" async>'
            "</script></body></html>"
        )
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    async with served(app) as url:
        yield url
