"""Messenger Send API output (shared with Instagram): pure builders for ``/{id}/messages``.

Text is split at the platform limit (Messenger 2,000 characters; Instagram 1,000 bytes, see
``instagram.py``); products become a generic template (a swipeable carousel of up to ten cards,
each with a "view" link and a "choose" postback) with quick replies under it, so a customer can
pick a product with one tap. ``tag="HUMAN_AGENT"`` turns a reply into a tagged message, allowed
up to 7 days after the customer's last message; the delivery side decides when.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Final, Literal

from pydantic import Field

from connectors.base import (
    DIGITS,
    ChannelDraft,
    ConnectIn,
    Inbound,
    PermanentFailure,
    ProviderCall,
    ProviderDefaults,
)
from connectors.meta import (
    HUMAN_AGENT_WINDOW_S,
    WINDOW_S,
    MetaConnectIn,
    MetaKind,
    is_human_agent_reply,
    parse_messaging,
)
from connectors.telegram import split_text
from engine.domain.channels import Channel
from engine.domain.messages import OutboundReply, ProductCard

CHANNEL_KIND: Final = "messenger"
DEFAULT_API_VERSION: Final = "v21.0"
MAX_TEXT_LEN: Final = 2000
MAX_ELEMENTS: Final = 10
MAX_ELEMENT_TITLE: Final = 80
MAX_BUTTON_TITLE: Final = 20
MAX_QUICK_REPLIES: Final = 13
MAX_PAYLOAD: Final = 1000
PRODUCT_PREFIX: Final = "product:"
HUMAN_AGENT: Final = "HUMAN_AGENT"

_LABELS: Final[dict[str, dict[str, str]]] = {
    "en": {"view": "View", "choose": "Choose", "no_price": "price on request"},
    "ar": {"view": "عرض", "choose": "اختيار", "no_price": "السعر عند الطلب"},
}

Splitter = Callable[[str], list[str]]


def messages_url(api_base: str, api_version: str, account_id: str) -> str:
    if not account_id.isdigit():
        raise ValueError("page/account id must be digits")
    return f"{api_base.rstrip('/')}/{api_version or DEFAULT_API_VERSION}/{account_id}/messages"


def _labels(language: str) -> dict[str, str]:
    return _LABELS["ar"] if language.lower().startswith("ar") else _LABELS["en"]


def _cut(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _price(product: ProductCard, labels: dict[str, str]) -> str:
    if product.price is None:
        return labels["no_price"]
    text = f"{product.price:,.2f}"
    text = text[:-3] if text.endswith(".00") else text
    return f"{text} {product.currency or ''}".strip()


def default_split(text: str) -> list[str]:
    return split_text(text, MAX_TEXT_LEN)


def build_messages(
    api_base: str,
    api_version: str,
    account_id: str,
    page_access_token: str,
    reply: OutboundReply,
    *,
    tag: str | None = None,
    split: Splitter = default_split,
) -> list[ProviderCall]:
    url = messages_url(api_base, api_version, account_id)
    recipient = reply.customer_id
    calls: list[ProviderCall] = []
    for chunk in split(reply.text) if reply.text.strip() else []:
        calls.append(_call(url, page_access_token, recipient, {"text": chunk}, tag))
    products = [p for p in reply.products if (p.title.strip() or p.sku)][:MAX_ELEMENTS]
    if products:
        calls.append(
            _call(url, page_access_token, recipient, _generic_template(products, reply), tag)
        )
    return calls


def _call(
    url: str, token: str, recipient: str, message: dict[str, Any], tag: str | None
) -> ProviderCall:
    payload: dict[str, Any] = {"recipient": {"id": recipient}, "message": message}
    if tag:
        payload["messaging_type"] = "MESSAGE_TAG"
        payload["tag"] = tag
    else:
        payload["messaging_type"] = "RESPONSE"
    return ProviderCall(
        method="POST",
        url=url,
        json=payload,
        recipient=recipient,
        headers={"Authorization": f"Bearer {token}"},
    )


def _payload(product: ProductCard) -> str:
    return (PRODUCT_PREFIX + (product.title.strip() or product.sku))[:MAX_PAYLOAD]


def _generic_template(products: list[ProductCard], reply: OutboundReply) -> dict[str, Any]:
    labels = _labels(reply.language)
    elements = []
    for p in products:
        buttons: list[dict[str, str]] = []
        if p.url and p.url.startswith(("https://", "http://")):
            buttons.append({"type": "web_url", "url": p.url, "title": labels["view"]})
        buttons.append({"type": "postback", "title": labels["choose"], "payload": _payload(p)})
        elements.append(
            {
                "title": _cut(p.title or p.sku, MAX_ELEMENT_TITLE),
                "subtitle": _cut(_price(p, labels), MAX_ELEMENT_TITLE),
                "buttons": buttons,
            }
        )
    quick = [
        {
            "content_type": "text",
            "title": _cut(p.title or p.sku, MAX_BUTTON_TITLE),
            "payload": _payload(p),
        }
        for p in products[:MAX_QUICK_REPLIES]
    ]
    return {
        "attachment": {
            "type": "template",
            "payload": {"template_type": "generic", "elements": elements},
        },
        "quick_replies": quick,
    }


def build_image(
    api_base: str,
    api_version: str,
    account_id: str,
    page_access_token: str,
    recipient: str,
    image_url: str,
    *,
    tag: str | None = None,
) -> ProviderCall:
    message = {"attachment": {"type": "image", "payload": {"url": image_url, "is_reusable": True}}}
    return _call(
        messages_url(api_base, api_version, account_id), page_access_token, recipient, message, tag
    )


def product_text_from_payload(payload: str) -> str | None:
    return payload[len(PRODUCT_PREFIX) :] if payload.startswith(PRODUCT_PREFIX) else None


# --------------------------------------------------------------------------------------------
# The channel kinds (Instagram reuses this one with its own limits, see ``instagram.py``)
# --------------------------------------------------------------------------------------------


class PageConnectIn(MetaConnectIn):
    """A Facebook page (Messenger) or an Instagram account answered through one."""

    page_id: str = Field(pattern=DIGITS)
    page_access_token: str = Field(min_length=1, max_length=1024)

    def account(self) -> tuple[str, str]:
        """(the config field it was given as, the account id)."""
        return "page_id", self.page_id


class MessengerConnectIn(PageConnectIn):
    kind: Literal["messenger"]


class Messenger(MetaKind):
    kind: ClassVar[str] = CHANNEL_KIND
    connect: ClassVar[type[ConnectIn] | None] = MessengerConnectIn
    # How a long reply is cut into messages (Instagram counts UTF-8 bytes, not characters).
    text_split: ClassVar[Splitter] = default_split

    def draft(self, body: ConnectIn, defaults: ProviderDefaults) -> ChannelDraft:
        assert isinstance(body, PageConnectIn)
        field_name, account_id = body.account()
        return ChannelDraft(
            api_base=body.api_base or defaults.graph_api_base,
            secrets={
                "access_token": body.page_access_token,
                "app_secret": body.app_secret,
                "verify_token": body.verify_token,
            },
            config={
                "api_version": body.api_version or defaults.graph_api_version,
                field_name: account_id,
                "account_id": account_id,
            },
        )

    def parse(self, channel: Channel, body: bytes, received_at: float) -> Inbound:
        return parse_messaging(
            body,
            self.kind,
            merchant_id=channel.merchant_id,
            channel_id=channel.id,
            account_id=channel.account_id,
            received_at=received_at,
        )

    def build(self, channel: Channel, reply: OutboundReply, tag: str | None) -> list[ProviderCall]:
        return build_messages(
            channel.api_base,
            channel.api_version,
            channel.account_id,
            channel.access_token,
            reply,
            tag=tag,
            split=type(self).text_split,
        )

    def outbound(
        self, channel: Channel, reply: OutboundReply, now: float
    ) -> list[ProviderCall] | PermanentFailure:
        """Within 24 h a plain response; a human agent's reply up to 7 days with the
        ``HUMAN_AGENT`` tag; anything later is parked."""
        age = now - reply.received_at
        if age <= WINDOW_S:
            return self.build(channel, reply, None)
        human = is_human_agent_reply(reply)
        if human and age <= HUMAN_AGENT_WINDOW_S:
            return self.build(channel, reply, HUMAN_AGENT)
        return PermanentFailure(
            f"parked: outside the {self.kind} 24-hour window"
            + (" (and past the 7-day human-agent window)" if human else "")
        )


KIND: Final = Messenger()
