"""What the bot says in one turn, given the conversation so far: the decision logic.

Split from :mod:`engine.domain.conversation` (which owns state, idempotency and the reply envelope)
so the decisions read top to bottom: handoff first, then an in-progress checkout, then
commerce follow-ups that need context ("add it", "the second one", "أرخص منه", "where is my
order"), then small talk, then retrieval with hard filters and a confidence threshold that
chooses between answering, a short clarifying question and an honest fallback.

Grounding rules: every price shown comes from a catalogue record (retrieval payload or the
order total computed by :mod:`engine.services.commerce`), every policy answer quotes the merchant's
text; nothing a customer types can change a price.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from engine.domain.commerce import CommerceError, normalize_phone
from engine.domain.dialogue import constraints, intents, replies
from engine.domain.messages import ProductCard
from engine.domain.retrieval import Filters, ProductHit, RetrievalResult
from engine.domain.text import Language, normalize_arabic, normalize_digits

if TYPE_CHECKING:
    from engine.domain.conversation import ConversationState, MerchantProfile, Thresholds
    from engine.domain.retrieval import RetrievalPort

log = logging.getLogger(__name__)

CART_MAX_LINES: Final = 20
_PHONE_RE: Final = re.compile(r"\+?\d[\d\s-]{5,18}\d")
_ORDER_ID_RE: Final = re.compile(r"\bord_[0-9a-f]{12}\b")
# A store platform's own order number (what Salla, Zid or Shopify showed the customer), said
# as "order 55123", "#55123", "طلب رقم 55123"; read only from digit-normalised text.
_PLATFORM_ORDER_RE: Final = re.compile(
    r"(?:order\s*(?:no\.?|number|#)?|رقم\s*الطلب|طلب\s*(?:رقم)?|#)\s*#?(\d{3,12})\b",
    re.IGNORECASE,
)
_NAME_PREFIX_RE: Final = re.compile(
    normalize_arabic(
        r"^(?:my name is|my name's|name:?|i am|i'm|this is|it's|اسمي|الاسم|انا|أنا)\s+"
    )
)
_CITY_PREFIX_RE: Final = re.compile(
    normalize_arabic(r"^(?:city:?|in|to|deliver to|from|مدينة|مدينه|المدينة|في|الى|إلى|من)\s+")
)
_NUMBERS_RE: Final = re.compile(r"\d+(?:[.,]\d+)*")
_QTY_RE: Final = re.compile(r"(?:add|x|×)\s*(\d{1,2})\b|\b(\d{1,2})\s*(?:pcs|pieces|حبات|قطع|حبه)")


class CommercePort(Protocol):
    """The slice of :class:`engine.services.commerce.Commerce` a conversation uses."""

    async def create_order(
        self,
        merchant_id: str,
        customer: dict[str, Any],
        items: list[dict[str, Any]],
        *,
        source: str,
        conversation_key: str | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]: ...

    async def get_order(self, merchant_id: str, order_id: str) -> dict[str, Any] | None: ...

    async def orders_by_platform_number(
        self, merchant_id: str, number: str
    ) -> list[dict[str, Any]]: ...


class PaymentLinksPort(Protocol):
    """Where a customer pays for an order (``engine.services.payments.Payments``)."""

    async def link_for(self, merchant_id: str, order_id: str) -> str | None:
        """The order's payment link, created once per order; None when the merchant takes no
        online payment or the provider failed (the order stands; staff can send a link)."""
        ...


@dataclass(slots=True)
class Decision:
    text: str
    intent: str
    products: list[ProductCard] = field(default_factory=list)
    handoff: bool = False
    inference_s: float = 0.0
    # The products as the conversation remembers them (card + colour/stock), when shown.
    shown: list[dict[str, Any]] | None = None
    gap_score: float | None = None  # set when the question went unanswered


def remembered(hit: ProductHit) -> dict[str, Any]:
    attrs = hit.attributes or {}
    colour = attrs.get("color") or attrs.get("colour")
    if not isinstance(colour, str) or not colour:
        colour = constraints.colour_of(hit.card.title) or ""
    return {
        **hit.card.to_dict(),
        "colour": normalize_arabic(str(colour)),
        "in_stock": hit.in_stock,
    }


def _card(item: dict[str, Any]) -> ProductCard:
    return ProductCard.from_dict(item)


def _pick(state: ConversationState, text: str) -> dict[str, Any] | None:
    """The shown product a follow-up refers to: by position, by colour, else the focus."""
    shown = state.last_products
    if not shown:
        return None
    n = intents.ordinal(text)
    if n is not None:
        if n == -1:
            return shown[-1]
        return shown[n - 1] if 1 <= n <= len(shown) else None
    colour = constraints.colour_of(text)
    if colour:
        words = constraints.COLOURS.get(colour, ())
        for item in shown:
            title = normalize_arabic(str(item.get("title") or ""))
            if item.get("colour") in (colour, *words) or any(w in title.split() for w in words):
                return item
        return None
    for item in shown:
        if item.get("sku") == state.focus:
            return item
    return shown[0]


def _phone_in(text: str) -> str | None:
    match = _PHONE_RE.search(normalize_digits(text))
    if not match:
        return None
    digits = re.sub(r"[^\d+]", "", match.group(0))
    return digits if 7 <= len(digits.lstrip("+")) <= 15 else None


def _strip_prefix(rx: re.Pattern[str], text: str) -> str:
    norm_prefix = rx.match(normalize_arabic(text))
    if norm_prefix:
        # Prefixes are plain words: drop the same number of words from the original text.
        words = len(norm_prefix.group(0).split())
        return " ".join(text.split()[words:])
    return text.strip()


def _cart_total(cart: list[dict[str, Any]]) -> tuple[float, str | None]:
    total = sum(float(i.get("price") or 0.0) * int(i.get("qty") or 1) for i in cart)
    currencies = {i.get("currency") for i in cart if i.get("currency")}
    return round(total, 2), (next(iter(currencies)) if len(currencies) == 1 else None)


class DialogueFlow:
    def __init__(
        self,
        retriever: RetrievalPort,
        thresholds: Thresholds,
        commerce: CommercePort | None = None,
        payments: PaymentLinksPort | None = None,
    ) -> None:
        self._retriever = retriever
        self._t = thresholds
        self._commerce = commerce
        self._payments = payments

    async def decide(
        self,
        state: ConversationState,
        merchant: MerchantProfile,
        text: str,
        language: Language,
        intent: intents.Intent,
        conversation_key: str,
        turn_id: str = "",
    ) -> Decision:
        """``turn_id`` names the turn (its messages): an order placed by it is named by it,
        so a turn that runs again after a crash finds its order instead of placing another."""
        name = intent.name
        if name == intents.HANDOFF:
            state.checkout = {}
            return Decision(replies.handoff(language), name, handoff=True)
        if state.checkout:
            if intents.is_cancel(text):
                state.checkout = {}
                return Decision(replies.checkout_cancelled(language), intents.CHECKOUT)
            # A clear policy question mid-checkout is answered; anything else is the field.
            if not (name == intents.POLICY_QUESTION and intent.confidence >= 0.9):
                return await self._collect(
                    state, merchant, text, language, conversation_key, turn_id
                )
        commerce = intents.commerce_intent(
            text, has_context=bool(state.last_products), has_cart=bool(state.cart)
        )
        if commerce == intents.ORDER_STATUS:
            found = await self._order_status(state, merchant, text, language)
            if found is not None:
                return found
        elif commerce == intents.CHECKOUT:
            return self._start_checkout(state, text, language)
        elif commerce == intents.VIEW_CART:
            return self._view_cart(state, language)
        elif commerce == intents.ADD_TO_CART:
            return self._add_to_cart(state, text, language)
        elif commerce == intents.PRODUCT_DETAIL:
            return self._detail(state, text, language)
        if (
            state.last_products
            and constraints.colour_of(text)
            and not intents.has_product_noun(text)
            and not constraints.extract(text).cheaper
        ):
            picked = _pick(state, text)
            if picked is not None:
                return self._detail_of(state, picked, language)
        if name == intents.GREETING:
            return Decision(replies.greeting(language, merchant.name), name)
        if name == intents.THANKS:
            return Decision(replies.thanks(language), name)
        if name == intents.OUT_OF_SCOPE:
            return Decision(replies.out_of_scope(language, merchant.name), name)
        return await self._search(state, merchant, text, language, intent)

    # -- retrieval ------------------------------------------------------------------------------
    async def _search(
        self,
        state: ConversationState,
        merchant: MerchantProfile,
        text: str,
        language: Language,
        intent: intents.Intent,
    ) -> Decision:
        cons = constraints.extract(text)
        query = text
        if cons.max_price is not None or cons.min_price is not None:
            # The bound is a filter now; its digits would only dilute both signals.
            query = _NUMBERS_RE.sub(" ", normalize_digits(text))
        exclude: tuple[str, ...] = ()
        max_price = cons.max_price
        followup = cons.cheaper and not intents.has_product_noun(text)
        if followup and state.last_query:
            # "أرخص منه" / "anything cheaper?": same need as before, below the product in focus.
            query = state.last_query
            ref = _pick(state, text)
            if ref is not None and ref.get("price") is not None:
                max_price = float(ref["price"]) - 0.01
                exclude = (str(ref.get("sku")),)
        filters = Filters(
            max_price=max_price,
            min_price=cons.min_price,
            colour=cons.colour,
            size=cons.size,
            exclude_skus=exclude,
        )
        result = await self._retriever.retrieve(merchant.merchant_id, query, filters=filters)
        decision = self._answer(text, language, intent, result, cheaper=cons.cheaper)
        if decision.shown:
            state.last_query = query
            state.focus = str(decision.shown[0]["sku"])
        elif followup and decision.gap_score is not None:
            decision = Decision(
                replies.nothing_cheaper(language), intents.PRODUCT_SEARCH, inference_s=0.0
            )
        return decision

    def _answer(
        self,
        text: str,
        language: Language,
        intent: intents.Intent,
        result: RetrievalResult,
        *,
        cheaper: bool = False,
    ) -> Decision:
        t = self._t
        policy_first = intent.name == intents.POLICY_QUESTION
        knowledge_ok = result.best_knowledge >= t.knowledge
        product_ok = result.best_product >= t.product
        inference = result.inference_s
        # A named product kind ("عطر", "watch") or a price bound is a shopping request: a
        # policy that shares a word with it ("perfumes cannot be returned") must not win.
        product_first = intent.name == intents.PRODUCT_SEARCH and (
            intent.confidence >= 0.9 or constraints.extract(text).any()
        )
        if product_first:
            knowledge_ok = False
        if knowledge_ok and (policy_first or result.best_knowledge >= result.best_product):
            best = max(result.knowledge[:2], key=lambda h: h.score)
            # Several documents may say the same thing in two languages: quote the one in the
            # customer's language when it scores about as well as the best.
            for hit in result.knowledge:
                if hit.language == language and hit.score >= best.score - 0.05:
                    best = hit
                    break
            return Decision(
                replies.policy_answer(language, text, best.title, best.text),
                intents.POLICY_QUESTION,
                inference_s=inference,
            )
        if product_ok and not policy_first:
            top = result.best_product
            # Keep products close to the best one: a weak tail confuses more than it helps.
            hits = [h for h in result.products if h.score >= max(t.product, top * 0.8)]
            hits = hits[: t.max_products]
            if cheaper:
                hits.sort(key=lambda h: (h.card.price is None, h.card.price or 0.0))
            return Decision(
                replies.cheaper_found(language) if cheaper else replies.products_found(language),
                intents.PRODUCT_SEARCH,
                products=[h.card for h in hits],
                inference_s=inference,
                shown=[remembered(h) for h in hits],
            )
        best_score = max(result.best_product, result.best_knowledge)
        if (
            not policy_first
            and intent.product_hint
            and result.products
            and result.best_product >= t.clarify
        ):
            titles = [h.card.title for h in result.products[:2]]
            return Decision(
                replies.clarify(language, titles),
                intents.CLARIFY,
                inference_s=inference,
                gap_score=best_score,
            )
        return Decision(
            replies.no_match(language), intent.name, inference_s=inference, gap_score=best_score
        )

    # -- follow-ups on shown products -----------------------------------------------------------
    def _detail(self, state: ConversationState, text: str, language: Language) -> Decision:
        picked = _pick(state, text)
        if picked is None:
            return Decision(replies.which_product(language), intents.PRODUCT_DETAIL)
        return self._detail_of(state, picked, language)

    def _detail_of(
        self, state: ConversationState, item: dict[str, Any], language: Language
    ) -> Decision:
        state.focus = str(item.get("sku"))
        price = item.get("price")
        return Decision(
            replies.product_detail(
                language,
                str(item.get("title") or ""),
                None if price is None else float(price),
                item.get("currency"),
                bool(item.get("in_stock", True)),
            ),
            intents.PRODUCT_DETAIL,
            products=[_card(item)],
            # Keep the list: "the red one" after "the second one" still means that list.
            shown=list(state.last_products),
        )

    def _add_to_cart(self, state: ConversationState, text: str, language: Language) -> Decision:
        picked = _pick(state, text)
        if picked is None:
            return Decision(replies.which_product(language), intents.ADD_TO_CART)
        return self._add(state, picked, _quantity(text), language)

    def _add(
        self, state: ConversationState, item: dict[str, Any], qty: int, language: Language
    ) -> Decision:
        sku = str(item.get("sku"))
        state.focus = sku
        for line in state.cart:
            if line.get("sku") == sku:
                line["qty"] = min(99, int(line.get("qty") or 1) + qty)
                break
        else:
            if len(state.cart) < CART_MAX_LINES:
                state.cart.append(
                    {
                        "sku": sku,
                        "title": str(item.get("title") or sku),
                        "qty": qty,
                        "price": item.get("price"),
                        "currency": item.get("currency"),
                    }
                )
        total, currency = _cart_total(state.cart)
        return Decision(
            replies.added_to_cart(
                language, str(item.get("title") or sku), qty, len(state.cart), total, currency
            ),
            intents.ADD_TO_CART,
        )

    def _view_cart(self, state: ConversationState, language: Language) -> Decision:
        total, currency = _cart_total(state.cart)
        lines = [
            (
                str(i.get("title")),
                int(i.get("qty") or 1),
                float(i.get("price") or 0) * int(i.get("qty") or 1),
            )
            for i in state.cart
        ]
        return Decision(replies.cart_view(language, lines, total, currency), intents.VIEW_CART)

    # -- checkout ------------------------------------------------------------------------------
    def _start_checkout(self, state: ConversationState, text: str, language: Language) -> Decision:
        if not state.cart:
            picked = _pick(state, text)
            if picked is None:
                return Decision(replies.checkout_empty(language), intents.CHECKOUT)
            self._add(state, picked, _quantity(text), language)
        state.checkout = {"stage": "name"}
        return Decision(replies.ask_field(language, "name"), intents.CHECKOUT)

    async def _collect(
        self,
        state: ConversationState,
        merchant: MerchantProfile,
        text: str,
        language: Language,
        conversation_key: str,
        turn_id: str = "",
    ) -> Decision:
        info = state.checkout
        phone = _phone_in(text)
        rest = _PHONE_RE.sub(" ", normalize_digits(text)) if phone else text
        parts = [p.strip() for p in re.split(r"[,،\n;؛]+", rest) if p.strip()]
        if phone:
            info["phone"] = phone
        for part in parts:
            if not info.get("name"):
                info["name"] = _strip_prefix(_NAME_PREFIX_RE, part)[:120]
            elif not info.get("city") and (info.get("phone") or len(parts) > 1):
                info["city"] = _strip_prefix(_CITY_PREFIX_RE, part)[:80]
            elif info.get("stage") == "phone" and not phone:
                return Decision(replies.bad_phone(language), intents.CHECKOUT)
        for stage in ("name", "phone", "city"):
            if not info.get(stage):
                info["stage"] = stage
                return Decision(replies.ask_field(language, stage), intents.CHECKOUT)
        return await self._place_order(state, merchant, language, conversation_key, turn_id)

    async def _place_order(
        self,
        state: ConversationState,
        merchant: MerchantProfile,
        language: Language,
        conversation_key: str,
        turn_id: str = "",
    ) -> Decision:
        info = dict(state.checkout)
        state.checkout = {}
        if self._commerce is None:
            return Decision(replies.handoff(language), intents.CHECKOUT, handoff=True)
        customer = {"name": info["name"], "phone": info["phone"], "city": info["city"]}
        items = [{"sku": i["sku"], "qty": int(i.get("qty") or 1)} for i in state.cart]
        try:
            order = await self._commerce.create_order(
                merchant.merchant_id,
                customer,
                items,
                source="chat",
                conversation_key=conversation_key,
                request_id=f"{conversation_key}|{turn_id}" if turn_id else None,
            )
        except CommerceError as exc:
            log.info("order rejected", extra={"reason": type(exc).__name__})
            if type(exc).__name__ == "InvalidCustomer":
                state.checkout = {"stage": "phone", "name": info["name"], "city": info["city"]}
                return Decision(replies.bad_phone(language), intents.CHECKOUT)
            return Decision(replies.order_failed(language), intents.CHECKOUT)
        state.cart = []
        state.orders = [*state.orders, str(order["_id"])][-20:]
        order_id, total, currency = str(order["_id"]), float(order["total"]), order.get("currency")
        link = None
        if self._payments is not None:
            link = await self._payments.link_for(merchant.merchant_id, order_id)
        if link:
            return Decision(
                replies.order_pay_link(language, order_id, total, currency, customer["name"], link),
                intents.CHECKOUT,
            )
        return Decision(
            replies.order_created(
                language, order_id, total, currency, customer["name"], customer["city"]
            ),
            intents.CHECKOUT,
        )

    async def _order_status(
        self, state: ConversationState, merchant: MerchantProfile, text: str, language: Language
    ) -> Decision | None:
        """Answer from the order records; None lets the caller answer from the policies.

        A phone number is no proof of who is asking (anyone can type one into a webchat), so it
        never finds an order by itself: the bot answers for orders placed in this
        conversation, or for an order whose number AND phone the customer both give.
        """
        if self._commerce is None:
            return None
        match = _ORDER_ID_RE.search(text)
        digits = normalize_digits(text)
        platform = None if match else _PLATFORM_ORDER_RE.search(digits)
        # The order number has digits too: the phone is read from what is left without it.
        rest = _PLATFORM_ORDER_RE.sub(" ", digits) if platform else _ORDER_ID_RE.sub(" ", text)
        phone = _phone_in(rest)
        order: dict[str, Any] | None = None
        if match and phone:
            found = await self._commerce.get_order(merchant.merchant_id, match.group(0))
            if found is not None and normalize_phone(str(found.get("phone") or "")) == (
                normalize_phone(phone)
            ):
                order = found
        elif platform and phone:
            candidates = await self._commerce.orders_by_platform_number(
                merchant.merchant_id, platform.group(1)
            )
            order = next(
                (
                    c
                    for c in candidates
                    if normalize_phone(str(c.get("phone") or "")) == normalize_phone(phone)
                ),
                None,
            )
        elif state.orders:
            wanted = match.group(0) if match else state.orders[-1]
            if wanted in state.orders:
                order = await self._commerce.get_order(merchant.merchant_id, wanted)
        if order is None:
            if phone or match or platform:
                return Decision(replies.order_lookup(language), intents.ORDER_STATUS)
            return None
        return Decision(
            replies.order_status(
                language,
                # A store platform's order answers with the platform's own number and words.
                str(order.get("platform_order_number") or order["_id"]),
                str(order.get("platform_status") or order.get("status") or "new"),
                float(order.get("total") or 0.0),
                order.get("currency"),
            ),
            intents.ORDER_STATUS,
        )


def _quantity(text: str) -> int:
    match = _QTY_RE.search(normalize_digits(normalize_arabic(text)))
    if not match:
        return 1
    value = int(match.group(1) or match.group(2))
    return max(1, min(value, 99))
