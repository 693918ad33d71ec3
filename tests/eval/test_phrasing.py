"""Generative phrasing through the real reply pipeline (real models, real stores) against a fake
OpenAI-compatible server on loopback: the customer gets the model's wording only when it is
grounded, affordable and on time; otherwise the extractive reply, word for word."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from engine.adapters.llm import OpenAICompatibleModel
from engine.config import Settings
from engine.domain.conversation import Thresholds
from engine.domain.dialogue.turns import TurnService
from engine.evaluation.store import LocalEngine
from engine.services.phrasing import InProcessTokenBudget, Phraser
from tests.fakes.fake_llm import FakeLLM, draft_of

SHIPPING_EN = "is shipping free?"
RETURNS_AR = "هل الاسترجاع يشمل العطور؟"


_MODELS: list[OpenAICompatibleModel] = []


@pytest.fixture(scope="module")
async def fake_llm() -> AsyncIterator[FakeLLM]:
    fake = await FakeLLM().start()
    yield fake
    for model in _MODELS:
        await model.close()
    await fake.close()


def _phrase_with(
    engine: LocalEngine, fake: FakeLLM, *, daily_tokens: int = 10_000, timeout_s: float = 5.0
) -> None:
    model = OpenAICompatibleModel(fake.url, model="fake-model", timeout_s=10, allow_private=True)
    _MODELS.append(model)
    phraser = Phraser(model, InProcessTokenBudget(), daily_tokens=daily_tokens, timeout_s=timeout_s)
    engine.turns = TurnService(
        engine.retriever, Thresholds(), commerce=engine.commerce, gaps=engine.gaps, phraser=phraser
    )


async def _extractive(engine: LocalEngine, customer: str, text: str) -> str:
    engine.turns = TurnService(
        engine.retriever, Thresholds(), commerce=engine.commerce, gaps=engine.gaps
    )
    reply = await engine.ask(customer, text)
    return str(reply["text"])


async def _reply(engine: LocalEngine, customer: str, text: str) -> dict[str, Any]:
    return await engine.ask(customer, text)


async def test_a_grounded_phrasing_reaches_the_customer(
    local_engine: LocalEngine, fake_llm: FakeLLM
) -> None:
    extractive = await _extractive(local_engine, "p-good-0", SHIPPING_EN)
    fake_llm.reset(reply=lambda m: "Happy to help! " + draft_of(m))
    _phrase_with(local_engine, fake_llm)
    reply = await _reply(local_engine, "p-good-1", SHIPPING_EN)
    assert reply["text"] == "Happy to help! " + extractive
    assert "300" in reply["text"]
    sent = fake_llm.calls[0]["body"]
    assert sent["model"] == "fake-model" and "300" in sent["messages"][-1]["content"]
    assert "English" in sent["messages"][0]["content"]


async def test_an_arabic_question_is_phrased_in_arabic(
    local_engine: LocalEngine, fake_llm: FakeLLM
) -> None:
    extractive = await _extractive(local_engine, "p-ar-0", RETURNS_AR)
    fake_llm.reset(reply=lambda m: "أهلاً بك! " + draft_of(m))
    _phrase_with(local_engine, fake_llm)
    reply = await _reply(local_engine, "p-ar-1", RETURNS_AR)
    assert reply["text"] == "أهلاً بك! " + extractive
    assert "Arabic" in fake_llm.calls[0]["body"]["messages"][0]["content"]


async def test_a_model_that_invents_a_price_is_not_heard(
    local_engine: LocalEngine, fake_llm: FakeLLM
) -> None:
    extractive = await _extractive(local_engine, "p-lie-0", SHIPPING_EN)
    fake_llm.reset(reply=lambda m: draft_of(m) + " Orders over 150 SAR ship free too.")
    _phrase_with(local_engine, fake_llm)
    reply = await _reply(local_engine, "p-lie-1", SHIPPING_EN)
    assert len(fake_llm.calls) == 1
    assert reply["text"] == extractive and "150" not in reply["text"]


async def test_a_slow_model_gives_way_to_the_extractive_reply(
    local_engine: LocalEngine, fake_llm: FakeLLM
) -> None:
    extractive = await _extractive(local_engine, "p-slow-0", SHIPPING_EN)
    fake_llm.reset(reply=lambda m: "Slow but sure: " + draft_of(m), delay_s=3.0)
    _phrase_with(local_engine, fake_llm, timeout_s=0.2)
    reply = await _reply(local_engine, "p-slow-1", SHIPPING_EN)
    assert reply["text"] == extractive


async def test_a_spent_budget_stops_phrasing_for_the_day(
    local_engine: LocalEngine, fake_llm: FakeLLM
) -> None:
    extractive = await _extractive(local_engine, "p-budget-0", SHIPPING_EN)
    fake_llm.reset(reply=lambda m: "Sure! " + draft_of(m))
    _phrase_with(local_engine, fake_llm, daily_tokens=40)  # one call costs 50 (usage)
    first = await _reply(local_engine, "p-budget-1", SHIPPING_EN)
    second = await _reply(local_engine, "p-budget-2", SHIPPING_EN)
    assert first["text"] == "Sure! " + extractive
    assert second["text"] == extractive
    assert len(fake_llm.calls) == 1


@pytest.mark.parametrize("failure", [{"status": 503}, {"status": 429}, {"garbage": True}])
async def test_server_errors_and_garbage_give_the_extractive_reply(
    local_engine: LocalEngine, fake_llm: FakeLLM, failure: dict[str, Any]
) -> None:
    extractive = await _extractive(local_engine, f"p-err-{failure}-0", SHIPPING_EN)
    fake_llm.reset(reply=lambda m: "Never shown " + draft_of(m), **failure)
    _phrase_with(local_engine, fake_llm)
    reply = await _reply(local_engine, f"p-err-{failure}-1", SHIPPING_EN)
    assert len(fake_llm.calls) == 1
    assert reply["text"] == extractive


def test_phrasing_is_off_by_default_and_its_url_passes_the_egress_guard() -> None:
    from engine.bootstrap import Container, Remotes

    remotes = Remotes(vectors=None)  # type: ignore[arg-type]
    assert Container(Settings.from_env({}), remotes).phraser is None
    private = Settings.from_env({"LLM_BASE_URL": "http://10.0.0.7/v1"})
    with pytest.raises(ValueError, match="https"):
        _ = Container(private, remotes).phraser
    public = Settings.from_env({"LLM_BASE_URL": "https://api.openai.com/v1", "LLM_MODEL": "m"})
    assert Container(public, remotes).phraser is not None


async def test_a_private_literal_address_is_refused_before_any_call() -> None:
    from engine.services.ports import LanguageModelError

    model = OpenAICompatibleModel("https://127.0.0.1:9/v1", allow_private=False)
    with pytest.raises(LanguageModelError, match="not public"):
        await model.complete([{"role": "user", "content": "hi"}], max_tokens=5)
    await model.close()
