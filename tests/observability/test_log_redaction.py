"""No secrets and no customer text in the logs.

Unit: the formatters mask secret-shaped values wherever they hide (message, ``extra=``,
exception text). Integration: a real Telegram webhook → reply flow, with a retry and a dead
letter on the way (so the delivery actor does log), while the gateway process's logs are
captured at INFO and every Ray worker log file of the session is read afterwards; the bot token,
the webhook secret, the merchant API key and the customer's words appear in none of them.
"""

from __future__ import annotations

import asyncio
import io
import logging
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from observability.logging_setup import MASK, JsonFormatter, TextFormatter, redact
from tests.conftest import Engine
from tests.fakes.fake_telegram import FakeTelegram, make_update
from tests.observability.test_tracing import _ids, connect_telegram, read_trace

BOT_TOKEN = "7311234567:AAH3kzq_Vb9x-RtY2mN8pLw4QeUoS1dFgHj"
API_KEY = "kal_" + "Zx9" * 12
SECRETS = {
    "telegram token in a URL": f"https://api.telegram.org/bot{BOT_TOKEN}/sendMessage",
    "bare telegram token": BOT_TOKEN,
    "api key": API_KEY,
    "bearer header": "Authorization: Bearer abcDEF123456ghiJKL",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtMSJ9.c2lnbmF0dXJlLXZhbHVl",
    "meta token": "EAAGm0PX4ZCpsBAKZAZB1234567890abcdef",
    "fernet": "gAAAAABkZ3Jvb3QtZmVybmV0LXRva2VuLWZvci10ZXN0cw==",
}


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_redact_masks_secret_shaped_values(name: str) -> None:
    value = SECRETS[name]
    out = redact(f"calling {value} failed")
    assert MASK in out
    for secret in (BOT_TOKEN, API_KEY, "abcDEF123456ghiJKL", "c2lnbmF0dXJlLXZhbHVl"):
        assert secret not in out


def test_redact_leaves_ordinary_text_alone() -> None:
    line = "delivery retry outbox_id=r-0a1b2c chat 5000123 at 12:30:45 status=429"
    assert redact(line) == line


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "engine.services.delivery", logging.ERROR, __file__, 1, msg, args, None
    )
    record.__dict__.update(extra)
    return record


def test_json_formatter_redacts_message_args_extra_and_exception() -> None:
    fmt = JsonFormatter()
    try:
        raise ValueError(f"bad URL https://api.telegram.org/bot{BOT_TOKEN}/sendMessage")
    except ValueError:
        record = _record("send to %s failed", f"bot{BOT_TOKEN}", key=API_KEY)
        record.exc_info = sys.exc_info()
        line = fmt.format(record)
    assert BOT_TOKEN not in line and API_KEY not in line
    data = orjson.loads(line)  # still valid JSON after masking
    assert data["key"] == MASK and MASK in data["msg"] and MASK in data["exc"]


def test_text_formatter_redacts_too() -> None:
    line = TextFormatter().format(_record("token %s", BOT_TOKEN))
    assert BOT_TOKEN not in line and MASK in line


# -- integration --------------------------------------------------------------------------------
@pytest.fixture
def gateway_logs() -> Iterator[io.StringIO]:
    """This process's logs (the gateway's) at INFO, formatted as production formats them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("kaleem-gateway"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    saved = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)


def ray_worker_logs() -> str:
    """Every worker log file of this Ray session (actors' stderr/stdout, Serve replicas)."""
    import ray._private.worker as ray_worker

    node = ray_worker._global_node
    assert node is not None
    texts = []
    for path in Path(node.get_logs_dir_path()).rglob("*"):
        if path.is_file() and path.suffix in {".out", ".err", ".log"}:
            texts.append(path.read_text(errors="replace"))
    return "\n".join(texts)


@pytest.mark.integration
async def test_secrets_and_customer_text_never_reach_the_logs(
    engine: Engine, fake_telegram: FakeTelegram, gateway_logs: io.StringIO
) -> None:
    token = f"{secrets.randbelow(9 * 10**9) + 10**9}:AA{secrets.token_urlsafe(26)[:33]}"
    fake_telegram.add_token(token)
    merchant_id, api_key = await engine.create_merchant("Redaction Shop", "en")
    channel_id, webhook_secret = await connect_telegram(engine, api_key, fake_telegram, token)
    nonce = "zq" + secrets.token_hex(6)
    text = f"do you sell the {nonce} sneakers in size 42"

    # 1. answered after one 429 (the delivery actor logs a retry)
    update_id, chat = next(_ids), next(_ids)
    fake_telegram.fail_next(1, 429, retry_after=1)
    assert await engine.post_telegram_update(
        channel_id, webhook_secret, make_update(update_id, chat, text)
    )
    await fake_telegram.wait_for_messages(chat, 1, timeout=60)
    # 2. a customer who blocked the bot: dead-lettered (the delivery actor logs an error)
    blocked_update, blocked_chat = next(_ids), next(_ids)
    fake_telegram.block_chat(blocked_chat)
    await engine.post_telegram_update(
        channel_id, webhook_secret, make_update(blocked_update, blocked_chat, text)
    )
    # 3. a forged webhook (wrong secret) and a request with a wrong API key
    assert (
        await engine.post_telegram_update(channel_id, "forged-" + webhook_secret, {"x": 1}) == 401
    )
    async with engine.session.get(
        f"{engine.base_url}/api/v1/channels", headers={"Authorization": f"Bearer {api_key}x"}
    ) as resp:
        assert resp.status == 401

    spans = await read_trace(
        Path(engine.runtime.settings.trace_file), str(update_id), {"provider.call", "delivery"}
    )
    retried = await read_trace(
        Path(engine.runtime.settings.trace_file), str(blocked_update), {"delivery"}
    )
    assert {x["attributes"].get("kaleem.outcome") for x in retried} >= {"dead_letter"}
    trace_id = spans[0]["trace_id"]
    await asyncio.sleep(0.5)  # let the actors' stderr reach their log files

    gateway = gateway_logs.getvalue()
    workers = await asyncio.to_thread(ray_worker_logs)
    # The scan is not vacuous: the delivery actor's retry line of THIS message is in the files,
    # with its trace id and merchant id.
    retry_lines = [x for x in workers.splitlines() if "delivery retry" in x and trace_id in x]
    assert retry_lines, "the delivery actor's retry log line was not found"
    assert merchant_id in retry_lines[0]
    for name, secret in {
        "bot token": token,
        "bot token secret half": token.split(":", 1)[1],
        "webhook secret": webhook_secret,
        "merchant api key": api_key,
        "customer text": text,
        "customer's words": nonce,
    }.items():
        assert secret not in gateway, f"{name} in the gateway logs"
        assert secret not in workers, f"{name} in the Ray worker logs"
