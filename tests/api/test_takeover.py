"""Agent takeover: the bot stays silent while an agent has the conversation, in message order."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import orjson
import pytest

from engine.adapters.records import conversation_id
from engine.adapters.redis.keys import conversation_state
from engine.domain.conversation import ConversationState, MerchantProfile
from engine.domain.dialogue.turns import TurnService
from engine.domain.messages import InboundMessage
from tests.api.test_admin_api import call, make_tenant
from tests.api.test_carts_unit import NoHits
from tests.api.test_carts_unit import message as msg
from tests.conftest import Engine


async def test_turns_respect_pause_and_resume_in_arrival_order() -> None:
    svc = TurnService(NoHits())
    merchant = MerchantProfile("m1", "Shop", "en")
    state = ConversationState("m1", "ch", "c1")
    # pause, a customer message, resume, all coalesced into one turn: nothing is answered.
    r = await svc.run_turn(
        state, [msg("p", control="pause"), msg("1"), msg("r", control="resume")], merchant, 1.0
    )
    assert r.reply is None and not r.state.paused and r.state.has_handled("1")
    r = await svc.run_turn(r.state, [msg("2")], merchant, 2.0)
    assert r.reply is not None and r.reply.in_reply_to == ("2",)
    r = await svc.run_turn(r.state, [msg("p2", control="pause")], merchant, 3.0)
    assert r.reply is None and r.state.paused
    r = await svc.run_turn(r.state, [msg("3"), msg("3")], merchant, 4.0)
    assert r.reply is None and r.state.has_handled("3")
    restored = ConversationState.from_dict(orjson.loads(orjson.dumps(r.state.to_dict())))
    assert restored.paused


@pytest.mark.integration
async def test_takeover_silences_the_bot_until_hand_back(engine: Engine) -> None:
    tenant = await make_tenant(engine, "Takeover shop")
    agent = tenant.tokens["agent"]
    customer = "to-" + secrets.token_hex(3)
    first = await engine.ask(tenant.api_key, "hello", customer=customer)
    assert first["text"]
    key = f"{tenant.merchant_id}:playground:{customer}"
    cid = conversation_id(key)
    for _ in range(100):  # the summary is written off the reply path
        status, _, _ = await call(engine, "GET", f"/api/v1/conversations/{cid}", agent)
        if status == 200:
            break
        await asyncio.sleep(0.1)
    status, conv, _ = await call(engine, "POST", f"/api/v1/conversations/{cid}/takeover", agent)
    assert status == 200 and conv["paused"]
    deps_inbox = engine.runtime.runner.app
    from engine.http.keys import DEPS

    inbox = deps_inbox[DEPS].inbox
    silent_id = "silent-" + secrets.token_hex(4)
    await inbox.append(
        InboundMessage(
            tenant.merchant_id,
            "playground",
            "playground",
            customer,
            silent_id,
            "anyone there?",
            time.time(),
        )
    )
    status, conv, _ = await call(engine, "POST", f"/api/v1/conversations/{cid}/handback", agent)
    assert status == 200 and not conv["paused"]
    again = await engine.ask(tenant.api_key, "thanks", customer=customer)
    assert again["text"]
    redis = deps_inbox[DEPS].redis
    state = orjson.loads(await redis.get(conversation_state(tenant.merchant_id, key)))
    assert silent_id in state["handled"] and state["paused"] is False
    # The bot answered "hello" and "thanks" only: two replies, never one for the silent message.
    bot: list[dict[str, Any]] = []
    for _ in range(100):  # replies are recorded off the reply path
        _, page, _ = await call(
            engine, "GET", f"/api/v1/conversations/{cid}/messages?limit=100", agent
        )
        bot = [m for m in page["items"] if m["direction"] == "out" and m["intent"] != "agent"]
        if len(bot) >= 2:
            break
        await asyncio.sleep(0.1)
    assert len(bot) == 2
    # ...but what the customer said meanwhile is in the record, marked as not answered.
    heard = {m["text"]: m["answered"] for m in page["items"] if m["direction"] == "in"}
    assert heard == {"hello": True, "anyone there?": False, "thanks": True}
