"""WhatsApp Cloud API output: pure builders for ``POST /{version}/{phone_number_id}/messages``.

A reply becomes text messages (split at WhatsApp's 4096-character body limit) and, when it
shows products, one interactive message: reply buttons for up to three products, a list for
up to ten. Row and button ids carry ``product:<title>`` so a tap comes back as the product's
full title (row titles are cut at 24 characters by WhatsApp). Outside the 24-hour customer
service window a free-form message would be rejected (131047), so :func:`build_template` is
the only thing the delivery side may send then.
"""

from __future__ import annotations

from typing import Any, Final

from connectors.base import ProviderCall
from connectors.telegram import render_text, split_text
from engine.domain.messages import OutboundReply, ProductCard

CHANNEL_KIND: Final = "whatsapp"
DEFAULT_API_VERSION: Final = "v21.0"
MAX_TEXT_LEN: Final = 4096
MAX_INTERACTIVE_BODY: Final = 1024
MAX_BUTTONS: Final = 3
MAX_BUTTON_TITLE: Final = 20
MAX_ROWS: Final = 10
MAX_ROW_TITLE: Final = 24
MAX_ROW_DESCRIPTION: Final = 72
MAX_ID: Final = 200
PRODUCT_PREFIX: Final = "product:"

_LABELS: Final[dict[str, dict[str, str]]] = {
    "en": {"choose": "Choose a product:", "button": "View products", "section": "Products"},
    "ar": {"choose": "اختر منتجاً:", "button": "عرض المنتجات", "section": "المنتجات"},
}


def messages_url(api_base: str, api_version: str, phone_number_id: str) -> str:
    if not phone_number_id.isdigit():
        raise ValueError("phone_number_id must be digits")
    return f"{api_base.rstrip('/')}/{api_version or DEFAULT_API_VERSION}/{phone_number_id}/messages"


def _labels(language: str) -> dict[str, str]:
    return _LABELS["ar"] if language.lower().startswith("ar") else _LABELS["en"]


def _cut(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _price(product: ProductCard) -> str:
    if product.price is None:
        return ""
    text = f"{product.price:,.2f}"
    text = text[:-3] if text.endswith(".00") else text
    return f"{text} {product.currency or ''}".strip()


def _call(url: str, token: str, to: str, body: dict[str, Any]) -> ProviderCall:
    payload = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, **body}
    return ProviderCall(
        method="POST",
        url=url,
        json=payload,
        recipient=to,
        headers={"Authorization": f"Bearer {token}"},
    )


def build_messages(
    api_base: str, api_version: str, phone_number_id: str, access_token: str, reply: OutboundReply
) -> list[ProviderCall]:
    """Calls for one in-window reply, to be sent in order."""
    url = messages_url(api_base, api_version, phone_number_id)
    to = reply.customer_id
    calls: list[ProviderCall] = []
    text = render_text(reply)
    products = [p for p in reply.products if (p.title.strip() or p.sku)][:MAX_ROWS]
    interactive_body = reply.text.strip()
    if products and 0 < len(interactive_body) <= MAX_INTERACTIVE_BODY:
        # The answer itself is the interactive body: one message instead of two.
        calls.append(_call(url, access_token, to, _interactive(interactive_body, products, reply)))
        return calls
    for chunk in split_text(text, MAX_TEXT_LEN):
        calls.append(
            _call(
                url,
                access_token,
                to,
                {"type": "text", "text": {"body": chunk, "preview_url": True}},
            )
        )
    if products:
        body = _labels(reply.language)["choose"]
        calls.append(_call(url, access_token, to, _interactive(body, products, reply)))
    return calls


def _interactive(body: str, products: list[ProductCard], reply: OutboundReply) -> dict[str, Any]:
    labels = _labels(reply.language)
    if len(products) <= MAX_BUTTONS:
        buttons = [
            {
                "type": "reply",
                "reply": {
                    "id": _product_id(p),
                    "title": _cut(p.title or p.sku, MAX_BUTTON_TITLE),
                },
            }
            for p in products
        ]
        return {
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": body},
                "action": {"buttons": buttons},
            },
        }
    rows = []
    for p in products:
        row: dict[str, str] = {"id": _product_id(p), "title": _cut(p.title or p.sku, MAX_ROW_TITLE)}
        if price := _price(p):
            row["description"] = _cut(price, MAX_ROW_DESCRIPTION)
        rows.append(row)
    return {
        "type": "interactive",
        "interactive": {
            "type": "list",
            "body": {"text": body},
            "action": {
                "button": _cut(labels["button"], MAX_BUTTON_TITLE),
                "sections": [{"title": _cut(labels["section"], MAX_ROW_TITLE), "rows": rows}],
            },
        },
    }


def _product_id(product: ProductCard) -> str:
    """Unique per product within a message (WhatsApp rejects duplicate row ids)."""
    return (PRODUCT_PREFIX + (product.title.strip() or product.sku))[
        : MAX_ID - 20
    ] + f"#{product.sku}"[:20]


def product_text_from_id(reply_id: str) -> str | None:
    """The product title a tapped row or button stands for (``None`` if not one of ours)."""
    if not reply_id.startswith(PRODUCT_PREFIX):
        return None
    body = reply_id[len(PRODUCT_PREFIX) :]
    return body.rsplit("#", 1)[0] if "#" in body else body


def build_image(
    api_base: str,
    api_version: str,
    phone_number_id: str,
    access_token: str,
    to: str,
    image_url: str,
    caption: str = "",
) -> ProviderCall:
    image: dict[str, str] = {"link": image_url}
    if caption:
        image["caption"] = caption[:1024]
    return _call(
        messages_url(api_base, api_version, phone_number_id),
        access_token,
        to,
        {"type": "image", "image": image},
    )


def build_template(
    api_base: str,
    api_version: str,
    phone_number_id: str,
    access_token: str,
    to: str,
    template_name: str,
    language_code: str,
) -> ProviderCall:
    """A pre-approved template: the only message allowed outside the 24-hour window."""
    return _call(
        messages_url(api_base, api_version, phone_number_id),
        access_token,
        to,
        {
            "type": "template",
            "template": {"name": template_name, "language": {"code": language_code}},
        },
    )
