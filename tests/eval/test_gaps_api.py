"""``GET /api/v1/analytics/gaps`` on the real engine: unanswered questions, per merchant."""

from __future__ import annotations

import pytest

from tests.conftest import Engine, Store

pytestmark = pytest.mark.integration


async def test_unanswered_questions_are_listed_for_their_merchant_only(
    engine: Engine, demo_store: Store
) -> None:
    question = "do you sell snow chains for tractors?"
    reply = await engine.ask(demo_store.api_key, question, customer="gap-1")
    assert reply["products"] == []
    url = f"{engine.base_url}/api/v1/analytics/gaps"
    headers = {"Authorization": f"Bearer {demo_store.api_key}"}
    async with engine.session.get(url, params={"limit": "10"}, headers=headers) as r:
        assert r.status == 200
        body = await r.json()
    assert body["limit"] == 10
    assert question in [g["question"] for g in body["items"]]

    _, other_key = await engine.create_merchant("Gapless", "en")
    other = {"Authorization": f"Bearer {other_key}"}
    async with engine.session.get(url, headers=other) as r:
        assert r.status == 200
        assert (await r.json())["items"] == []
    async with engine.session.get(url, params={"limit": "0"}, headers=headers) as r:
        assert r.status == 400
        assert r.content_type == "application/problem+json"
    async with engine.session.get(url) as r:
        assert r.status == 401
