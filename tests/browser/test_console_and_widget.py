"""The console and the widget in a real browser, proven by what people see on the screen.

An agent logs in, a customer writes in the widget, the agent sees it live, takes over and
replies, the customer sees the reply and the bot stays silent; a catalog import shows its
progress and bad lines; the widget restores its history after a reload and in a new tab;
Arabic pages render right to left; a viewer gets no edit controls.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.demo import demo_catalog_bytes
from tests.browser.conftest import Account, log_in, new_page, shot_path, sign_up
from tests.conftest import Engine

pytestmark = pytest.mark.integration


async def _import_demo_catalog(engine: Engine, account: Account) -> None:
    job = await engine.import_and_wait(
        account.access_token, "/api/v1/catalog/import", demo_catalog_bytes()
    )
    assert job["status"] == "done", job


async def _bot_texts(widget: Any) -> list[str]:
    texts: list[str] = await widget.locator(".kc-bot:not(.kc-greeting) .kc-text").all_inner_texts()
    return texts


async def test_agent_sees_the_customer_live_takes_over_and_the_bot_stays_silent(
    engine: Engine, browser: Any, tmp_path: Path
) -> None:
    account = await sign_up(engine, "Live Shop")
    await _import_demo_catalog(engine, account)
    agent = await new_page(browser)
    await log_in(agent, engine, account)
    await agent.get_by_role("heading", name="Inbox").wait_for()

    customer = await new_page(browser)
    await customer.goto(f"{engine.base_url}/webchat/{account.merchant_id}")
    await customer.locator(".kc-greeting").wait_for()
    await customer.get_by_label("Type a message").fill("I need running shoes")
    await customer.get_by_label("Send").click()
    await customer.locator(".kc-card").first.wait_for()  # the bot answered with products
    assert await customer.locator(".kc-card .kc-add").count() >= 1

    # The conversation appears in the agent's inbox without a reload, with an unread count.
    row = agent.locator(".conv", has_text="webchat")
    try:
        await row.first.wait_for()
    except Exception:
        await agent.screenshot(path=str(tmp_path / "fail.png"), full_page=True)
        print("SHOT", tmp_path / "fail.png", await agent.locator("main").inner_html())
        raise
    await agent.locator("#unread-badge:not([hidden])").wait_for()
    await row.first.locator("a").click()
    await agent.locator(".messages .msg.in", has_text="I need running shoes").wait_for()
    await agent.get_by_role("button", name="Take over").click()
    await agent.get_by_text("You have this conversation: the bot is silent").wait_for()
    await agent.get_by_label("Reply").fill("Hello, Sara from the shop here. Which size?")
    await agent.get_by_role("button", name="Send").click()

    await customer.locator(".kc-agent", has_text="Sara from the shop").wait_for()
    bot_before = await _bot_texts(customer)
    await customer.get_by_label("Type a message").fill("Size 42 please")
    await customer.get_by_label("Send").click()

    # The agent sees the message live, marked as not answered by the bot ...
    answered = agent.locator(".messages .msg.in", has_text="Size 42 please")
    await answered.locator(".tag", has_text="not answered").wait_for()
    # ... and the customer got no bot reply to it (the turn has committed by now).
    assert await _bot_texts(customer) == bot_before
    assert (await customer.locator(".kc-msg").last.inner_text()).strip() == "Size 42 please"
    await agent.screenshot(path=str(shot_path("console-inbox.png", tmp_path)), full_page=True)
    await agent.goto(f"{engine.base_url}/console/#/analytics")
    await agent.locator("svg.chart circle").first.wait_for()  # a point for today
    await agent.screenshot(path=str(shot_path("console-analytics.png", tmp_path)), full_page=True)
    await agent.context.close()
    await customer.context.close()


async def test_catalog_import_shows_progress_and_bad_lines(
    engine: Engine, browser: Any, tmp_path: Path
) -> None:
    account = await sign_up(engine, "Import Shop")
    page = await new_page(browser)
    await log_in(page, engine, account)
    await page.goto(f"{engine.base_url}/console/#/catalog")
    lines = [
        {"sku": "IMP-1", "title": "Blue cotton shirt", "price": 80, "currency": "SAR"},
        {"sku": "IMP-2", "title": "Leather belt", "price": 120, "currency": "SAR"},
        {"sku": "", "title": "no sku"},
        {"sku": "IMP-4", "title": "Wool scarf", "price": -5},
        {"sku": "IMP-5", "title": "Canvas tote bag", "price": 45, "currency": "SAR"},
    ]
    data = b"\n".join(orjson.dumps(x) for x in lines) + b"\n{not json\n"
    await page.get_by_label("Import a file (JSONL or CSV)").set_input_files(
        {"name": "products.jsonl", "mimeType": "application/x-ndjson", "buffer": data}
    )
    await page.get_by_role("button", name="Import", exact=True).click()
    status = page.locator(".progress-label")
    await status.filter(has_text=re.compile(r"^Done")).wait_for(timeout=120_000)
    assert "3/3" in await status.inner_text()
    bar = page.locator("progress")
    assert await bar.get_attribute("max") == "3"
    report = page.locator(".import-report")
    await report.get_by_role("heading", name=re.compile("Lines not imported")).wait_for()
    bad = await report.locator("tbody tr td:first-child").all_inner_texts()
    assert bad == ["3", "4", "6"]
    # The good lines are in the product list, and the search preview finds them.
    await page.locator(".product-table", has_text="Canvas tote bag").wait_for()
    await page.get_by_label("Search preview").fill("tote bag")
    await page.locator("form.preview button").click()
    await page.locator(".hits", has_text="IMP-5").wait_for()
    await page.screenshot(path=str(shot_path("console-catalog.png", tmp_path)), full_page=True)
    await page.context.close()


async def test_widget_restores_history_after_reload_and_in_a_new_tab(
    engine: Engine, browser: Any, merchant_site: str, tmp_path: Path
) -> None:
    account = await sign_up(engine, "Embed Shop")
    await _import_demo_catalog(engine, account)
    async with engine.session.patch(
        f"{engine.base_url}/api/v1/merchant",
        json={
            "allowed_origins": [merchant_site],
            "widget_color": "#7a3cc4",
            "widget_greeting": "Welcome to Embed Shop! Ask me anything.",
        },
        headers=account.auth,
    ) as r:
        assert r.status == 200, await r.text()
    page = await new_page(browser)
    url = f"{merchant_site}/?engine={engine.base_url}&merchant={account.merchant_id}"
    await page.goto(url)
    await page.get_by_role("button", name="Open chat").click()
    await page.get_by_text("Welcome to Embed Shop! Ask me anything.").wait_for()
    await page.get_by_label("Type a message").fill("do you have a leather bag?")
    await page.get_by_label("Send").click()
    await page.locator(".kc-card").first.wait_for()
    await page.locator(".kc-card .kc-add").first.click()  # "Add #1 to my cart"
    await page.locator(".kc-bot .kc-text", has_text=re.compile("cart", re.I)).last.wait_for()
    await page.screenshot(path=str(shot_path("widget.png", tmp_path)))
    before = await page.locator(".kc-msg .kc-text").all_inner_texts()
    assert before[:2] == ["Welcome to Embed Shop! Ask me anything.", "do you have a leather bag?"]

    await page.reload()
    await page.get_by_role("button", name="Open chat").click()
    await page.locator(".kc-me", has_text="do you have a leather bag?").wait_for()
    await page.locator(".kc-card").first.wait_for()
    after = await page.locator(".kc-msg .kc-text").all_inner_texts()
    assert after == before  # the same conversation, each message once
    second = await page.context.new_page()
    await second.goto(url)
    await second.get_by_role("button", name="Open chat").click()
    await second.locator(".kc-me", has_text="do you have a leather bag?").wait_for()
    assert await second.locator(".kc-msg .kc-text").all_inner_texts() == before
    await page.context.close()


async def test_arabic_pages_render_right_to_left(
    engine: Engine, browser: Any, tmp_path: Path
) -> None:
    account = await sign_up(engine, "متجر الورد", "ar")
    page = await new_page(browser, locale="ar-SA")
    await page.goto(f"{engine.base_url}/console/#/login")
    await page.get_by_role("heading", name="تسجيل الدخول").wait_for()
    assert await page.evaluate("document.documentElement.dir") == "rtl"
    await page.get_by_label("البريد الإلكتروني").fill(account.email)
    await page.get_by_label("كلمة المرور").fill(account.password)
    await page.locator("form.auth button[type=submit]").click()
    await page.get_by_role("heading", name="المحادثات").wait_for()
    direction = await page.evaluate("getComputedStyle(document.querySelector('main')).direction")
    assert direction == "rtl"
    links = page.locator(".topbar nav a")
    first, last = await links.first.bounding_box(), await links.last.bounding_box()
    assert first["x"] > last["x"]  # the first item sits on the right

    chat = await new_page(browser, locale="ar-SA")
    await chat.goto(f"{engine.base_url}/webchat/{account.merchant_id}")
    await chat.get_by_label("اكتب رسالتك").fill("السلام عليكم")
    await chat.get_by_label("إرسال").click()
    await chat.locator(".kc-bot:not(.kc-greeting)").first.wait_for()
    box = chat.locator(".kc-box")
    assert await box.get_attribute("dir") == "rtl"
    assert await box.evaluate("b => getComputedStyle(b).direction") == "rtl"
    mine = await chat.locator(".kc-me").first.bounding_box()
    bot = await chat.locator(".kc-bot:not(.kc-greeting)").first.bounding_box()
    assert mine["x"] < bot["x"]  # the customer's bubble is on the left in RTL
    await chat.screenshot(path=str(shot_path("widget-ar.png", tmp_path)))
    await page.locator(".conv a").first.click()  # live: the chat above is in the inbox
    await page.locator(".messages .msg.in", has_text="السلام عليكم").wait_for()
    await page.screenshot(path=str(shot_path("console-inbox-ar.png", tmp_path)))
    await page.context.close()
    await chat.context.close()


async def test_a_viewer_sees_no_edit_controls(engine: Engine, browser: Any) -> None:
    owner = await sign_up(engine, "Roles Shop")
    async with engine.session.post(
        f"{engine.base_url}/api/v1/users",
        json={"email": "viewer-" + owner.email, "role": "viewer"},
        headers=owner.auth,
    ) as r:
        assert r.status == 201, await r.text()
        invite = (await r.json())["invite_token"]
    async with engine.session.post(
        f"{engine.base_url}/api/v1/auth/accept-invite",
        json={"invite_token": invite, "password": "viewer-pass-123"},
    ) as r:
        assert r.status == 200, await r.text()
    await engine.ask(owner.access_token, "hello", customer="role-check-1")
    handoff = await engine.ask(owner.access_token, "I want to talk to a human", customer="hand-1")
    assert handoff["handoff"] is True
    page = await new_page(browser)
    await log_in(page, engine, ("viewer-" + owner.email, "viewer-pass-123"))
    await page.get_by_text("Read only (viewer)").wait_for()
    # The bot's handoff stands out in the list.
    flagged = page.locator(".conv.handoff", has_text="hand-1")
    await flagged.get_by_text("Needs a human").wait_for()
    assert await page.locator(".conv.handoff").count() == 1
    await page.locator(".conv a").first.click()
    await page.locator(".messages .msg").first.wait_for()
    assert await page.get_by_role("button", name="Take over").count() == 0
    assert await page.get_by_label("Reply").count() == 0
    await page.goto(f"{engine.base_url}/console/#/catalog")
    await page.get_by_label("Search preview").wait_for()
    assert await page.get_by_role("button", name="Create").count() == 0
    assert await page.get_by_label("Import a file (JSONL or CSV)").count() == 0
    # A reload keeps the session (the refresh token is exchanged silently) ...
    await page.reload()
    await page.get_by_text("Read only (viewer)").wait_for()
    assert await page.get_by_role("button", name="Log in").count() == 0
    # ... and logging out ends it: a reload lands on the login form.
    await page.get_by_role("button", name="Log out").click()
    await page.get_by_role("heading", name="Log in").wait_for()
    await page.reload()
    await page.get_by_role("heading", name="Log in").wait_for()
    await page.context.close()


async def test_every_screen_opens_without_a_script_error(engine: Engine, browser: Any) -> None:
    account = await sign_up(engine, "Screens Shop")
    page = await new_page(browser)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await log_in(page, engine, account)
    screens = {
        "knowledge": "Questions the bot could not answer",
        "orders": "Leads",
        "channels": "What to paste where",
        "team": "API keys",
        "settings": "Paste this on your site",
        "analytics": "Top questions",
    }
    for screen, text in screens.items():
        await page.goto(f"{engine.base_url}/console/#/{screen}")
        await page.get_by_text(text, exact=True).first.wait_for()
    # A question the bot could not answer becomes a new answer in one click.
    question = "do you sell excavator hydraulic pumps?"
    await engine.ask(account.access_token, question, customer="gap-screens-1")
    await page.goto(f"{engine.base_url}/console/#/knowledge")
    await page.get_by_role("button", name="Write an answer").first.click()
    assert await page.locator("dialog").get_by_label("Title").input_value() == question
    await page.locator("dialog").get_by_label("Text").fill("We sell clothes and bags only.")
    await page.locator("dialog").get_by_role("button", name="Save").click()
    documents = page.locator(".panels section.card").first
    await documents.get_by_text(question).wait_for()  # now a document the bot can quote
    # Connecting a channel shows its webhook URL.
    await page.goto(f"{engine.base_url}/console/#/channels")
    await page.get_by_label("Kind").select_option("whatsapp")
    form = page.locator("form.channel-form")
    await form.get_by_label("Phone Number Id").fill("1234567890")
    await form.get_by_label("Access Token").fill("EAAG-test-token")
    await form.get_by_label("App Secret").fill("app-secret-value")
    await form.get_by_label("Verify Token").fill("verify-me")
    await form.get_by_role("button", name="Connect").click()
    webhook = page.get_by_label("Webhook URL")
    await webhook.wait_for()
    assert "/webhooks/whatsapp/ch_" in await webhook.input_value()
    assert errors == []
    await page.context.close()


async def test_a_phone_downloads_little_and_the_widget_fills_its_screen(
    engine: Engine, browser: Any, tmp_path: Path
) -> None:
    account = await sign_up(engine, "Phone Shop", "ar")
    phone = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
    context = await browser.new_context(locale="ar-SA", **phone)
    context.set_default_timeout(30_000)
    page = await context.new_page()
    requests: list[Any] = []
    page.on("requestfinished", lambda r: requests.append(r))

    async def transferred() -> int:
        sizes = [await r.sizes() for r in requests if r.url.startswith(engine.base_url)]
        requests.clear()
        return sum(s["responseBodySize"] for s in sizes)

    await page.goto(f"{engine.base_url}/console/#/login")
    await page.get_by_role("heading", name="تسجيل الدخول").wait_for()
    console_bytes = await transferred()
    assert 0 < console_bytes < 40_000, console_bytes  # the whole sign-in screen, compressed
    await page.goto(f"{engine.base_url}/webchat/{account.merchant_id}")
    await page.get_by_label("اكتب رسالتك").fill("وش عندكم؟")
    await page.get_by_label("إرسال").click()
    await page.locator(".kc-bot:not(.kc-greeting)").first.wait_for()
    widget_bytes = await transferred()
    assert 0 < widget_bytes < 25_000, widget_bytes
    box = await page.locator(".kc-box").bounding_box()
    assert box["width"] >= 385
    await page.screenshot(path=str(shot_path("widget-phone.png", tmp_path)))
    await context.close()
