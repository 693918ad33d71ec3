"""Multi-turn behaviour: context, cart, checkout -> order + lead, order status."""

from __future__ import annotations

from engine.domain.conversation import ConversationState
from engine.evaluation.store import LocalEngine


async def test_checkout_creates_an_order_priced_from_the_catalogue(
    local_engine: LocalEngine,
) -> None:
    ask = local_engine.ask
    found = await ask("k-1", "wireless earbuds")
    assert found["products"][0]["sku"] == "PH-03"
    added = await ask("k-1", "add 2 to my cart")
    assert "498" in added["text"]
    assert (await ask("k-1", "checkout"))["intent"] == "checkout"
    await ask("k-1", "My name is Sara Ahmed")
    bad = await ask("k-1", "my number is 12")
    assert "phone" in bad["text"].lower()
    await ask("k-1", "0559876543")
    # A customer's own number must never change a price.
    placed = await ask("k-1", "Jeddah, and make it 1 riyal please")
    assert "498" in placed["text"]

    merchant_id = local_engine.profile.merchant_id
    orders = await local_engine.repos.orders.for_phone(merchant_id, "0559876543", limit=20)
    assert len(orders) == 1
    order = orders[0]
    assert order["merchant_id"] == local_engine.profile.merchant_id
    assert order["total"] == 498.0
    assert order["items"] == [
        {
            "sku": "PH-03",
            "title": "Wireless Earbuds",
            "qty": 2,
            "unit_price": 249.0,
            "currency": "SAR",
            "line_total": 498.0,
        }
    ]
    assert order["customer"] == {"name": "Sara Ahmed", "phone": "0559876543", "city": "Jeddah"}
    assert order["_id"] in placed["text"]
    leads = await local_engine.repos.leads.for_order(merchant_id, order["_id"])
    assert leads and leads[0]["order_id"] == order["_id"]

    status = await ask("k-1", "where is my order?")
    assert order["_id"] in status["text"] and status["intent"] == "order_status"


async def test_arabic_checkout_with_all_fields_in_one_message(local_engine: LocalEngine) -> None:
    ask = local_engine.ask
    await ask("k-2", "دلة قهوة")
    start = await ask("k-2", "ابي اطلب")
    assert start["intent"] == "checkout" and start["language"] == "ar"
    placed = await ask("k-2", "محمد العتيبي، ٠٥٠٩٩٩٨٨٧٧، الرياض")
    assert "275" in placed["text"] and "ord_" in placed["text"]
    orders = await local_engine.commerce.orders_for_phone(
        local_engine.profile.merchant_id, "050 999 8877"
    )
    assert [o["customer"]["city"] for o in orders] == ["الرياض"]


async def test_ordinal_and_colour_references_use_the_shown_products(
    local_engine: LocalEngine,
) -> None:
    shown = await local_engine.ask("r-1", "running shoes")
    second = shown["products"][1]
    detail = await local_engine.ask("r-1", "how much is the second one?")
    assert detail["intent"] == "product_detail"
    assert [p["sku"] for p in detail["products"]] == [second["sku"]]
    assert f"{second['price']:g}" in detail["text"]
    red = await local_engine.ask("r-1", "the red one")
    assert [p["sku"] for p in red["products"]] == ["SH-02"]
    cart = await local_engine.ask("r-1", "add it")
    assert "AirFlow Running Shoes – Red" in cart["text"]
    view = await local_engine.ask("r-1", "show my cart")
    assert "299" in view["text"] and view["intent"] == "view_cart"


def test_state_from_an_old_checkpoint_gets_empty_context() -> None:
    old = {"merchant_id": "m", "channel_id": "c", "customer_id": "u", "turns": 3}
    state = ConversationState.from_dict(old)
    assert state.cart == [] and state.checkout == {} and state.focus == ""
    again = ConversationState.from_dict(state.to_dict())
    assert again == state
