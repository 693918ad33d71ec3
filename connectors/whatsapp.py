"""WhatsApp Cloud API output: pure builders for ``POST /{version}/{phone_number_id}/messages``.

A reply becomes text messages (split at WhatsApp's 4096-character body limit) and, when it
shows products, one interactive message: reply buttons for up to three products, a list for
up to ten. Row and button ids carry ``product:<title>`` so a tap comes back as the product's
full title (row titles are cut at 24 characters by WhatsApp). Outside the 24-hour customer
service window a free-form message would be rejected (131047), so :func:`build_template` is
the only thing the delivery side may send then.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final, Literal

from pydantic import Field

from connectors.base import (
    DIGITS,
    ChannelDraft,
    ConnectIn,
    Event,
    Inbound,
    MalformedPayload,
    PermanentFailure,
    ProviderCall,
    ProviderDefaults,
    SendLimits,
    SendRule,
)
from connectors.meta import (
    MAX_REASON_LEN,
    STATUS_VALUES,
    WINDOW_S,
    MetaConnectIn,
    MetaKind,
    as_list,
    as_object,
    as_str,
    clip,
    load_body,
    location_text,
    nested_str,
    product_text,
    timestamp,
)
from connectors.telegram import render_text, split_text
from engine.domain.channels import Channel
from engine.domain.messages import InboundMessage, OutboundReply, ProductCard

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


# --------------------------------------------------------------------------------------------
# Input: the WhatsApp Cloud webhook
# --------------------------------------------------------------------------------------------


def parse_whatsapp(
    body: bytes,
    *,
    merchant_id: str,
    channel_id: str,
    phone_number_id: str,
    received_at: float,
) -> Inbound:
    """Every message and status of every change of every entry.

    Changes for another phone number (one Meta app can serve several) are skipped: they belong
    to another channel's URL. Message types we cannot answer in text (stickers, audio, unknown)
    are counted as ignored and their ids still deduped by the caller.
    """
    data = load_body(body, "whatsapp")
    out = Inbound()
    for entry in data["entry"]:
        entry = as_object(entry, "whatsapp entry")
        changes = entry.get("changes")
        if not isinstance(changes, list):
            raise MalformedPayload("whatsapp entry has no changes array")
        for change in changes:
            change = as_object(change, "whatsapp change")
            value = change.get("value")
            if change.get("field") != "messages" or not isinstance(value, dict):
                out.ignored += 1
                continue
            metadata = value.get("metadata")
            number = as_str(metadata.get("phone_number_id")) if isinstance(metadata, dict) else None
            if phone_number_id and number is not None and number != phone_number_id:
                out.ignored += 1
                continue
            names = _contact_names(value.get("contacts"))
            for message in as_list(value.get("messages"), "whatsapp messages"):
                _wa_message(
                    as_object(message, "whatsapp message"),
                    names,
                    out,
                    merchant_id=merchant_id,
                    channel_id=channel_id,
                    received_at=received_at,
                )
            for status in as_list(value.get("statuses"), "whatsapp statuses"):
                status = as_object(status, "whatsapp status")
                pmid = as_str(status.get("id"))
                value_s = status.get("status")
                if pmid is None or value_s not in STATUS_VALUES:
                    raise MalformedPayload("whatsapp status needs an id and a known status")
                detail: dict[str, Any] = {}
                errors = status.get("errors")
                if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                    code = errors[0].get("code")
                    detail["error_code"] = code if isinstance(code, int) else None
                    title = errors[0].get("title") or errors[0].get("message")
                    detail["error"] = str(title)[:MAX_REASON_LEN] if title else ""
                out.events.append(
                    Event(
                        "status",
                        pmid,
                        as_str(status.get("recipient_id")) or "",
                        str(value_s),
                        timestamp(status.get("timestamp"), received_at),
                        detail,
                    )
                )
    return out


def _contact_names(contacts: Any) -> dict[str, str]:
    names: dict[str, str] = {}
    if not isinstance(contacts, list):
        return names
    for contact in contacts:
        if not isinstance(contact, dict):
            continue
        wa_id = as_str(contact.get("wa_id"))
        profile = contact.get("profile")
        name = profile.get("name") if isinstance(profile, dict) else None
        if wa_id and isinstance(name, str) and name.strip():
            names[wa_id] = name.strip()[:64]
    return names


def _wa_message(
    message: dict[str, Any],
    names: dict[str, str],
    out: Inbound,
    *,
    merchant_id: str,
    channel_id: str,
    received_at: float,
) -> None:
    wamid = as_str(message.get("id"))
    sender = as_str(message.get("from"))
    kind = message.get("type")
    if wamid is None or sender is None or not isinstance(kind, str):
        raise MalformedPayload("whatsapp message needs id, from and type")
    at = timestamp(message.get("timestamp"), received_at)
    text: str | None = None
    if kind == "text":
        text = nested_str(message, "text", "body")
    elif kind == "interactive":
        inter = message.get("interactive")
        if isinstance(inter, dict):
            reply = inter.get("button_reply") or inter.get("list_reply")
            if isinstance(reply, dict):
                text = product_text(reply.get("id")) or as_str(reply.get("title"))
    elif kind == "button":  # a template's quick-reply button
        button = message.get("button")
        if isinstance(button, dict):
            text = product_text(button.get("payload")) or as_str(button.get("text"))
    elif kind in ("image", "video", "document"):
        text = nested_str(message, kind, "caption")
    elif kind == "location":
        text = location_text(message.get("location"))
    elif kind == "reaction":
        reaction = message.get("reaction")
        if isinstance(reaction, dict) and (target := as_str(reaction.get("message_id"))):
            emoji = reaction.get("emoji")
            out.events.append(
                Event("reaction", target, sender, emoji if isinstance(emoji, str) else "", at)
            )
            return
    if text is None or not text.strip():
        out.ignored += 1
        return
    out.messages.append(
        InboundMessage(
            merchant_id=merchant_id,
            channel_id=channel_id,
            channel_kind="whatsapp",
            customer_id=sender,
            message_id=wamid,
            text=clip(text),
            received_at=received_at,
            customer_name=names.get(sender),
            trace={"wa_type": kind},
        )
    )


# --------------------------------------------------------------------------------------------
# The channel kind
# --------------------------------------------------------------------------------------------


class WhatsAppConnectIn(MetaConnectIn):
    kind: Literal["whatsapp"]
    phone_number_id: str = Field(pattern=DIGITS)
    access_token: str = Field(min_length=1, max_length=1024)
    template_name: str | None = Field(default=None, pattern=r"^[a-z0-9_]{1,512}$")
    template_language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")


class WhatsApp(MetaKind):
    kind: ClassVar[str] = CHANNEL_KIND
    connect: ClassVar[type[ConnectIn] | None] = WhatsAppConnectIn

    def draft(self, body: ConnectIn, defaults: ProviderDefaults) -> ChannelDraft:
        assert isinstance(body, WhatsAppConnectIn)
        config = {
            "api_version": body.api_version or defaults.graph_api_version,
            "phone_number_id": body.phone_number_id,
            "account_id": body.phone_number_id,
        }
        if body.template_name:
            config["template_name"] = body.template_name
            config["template_language"] = body.template_language or "en"
        return ChannelDraft(
            api_base=body.api_base or defaults.graph_api_base,
            secrets={
                "access_token": body.access_token,
                "app_secret": body.app_secret,
                "verify_token": body.verify_token,
            },
            config=config,
        )

    def parse(self, channel: Channel, body: bytes, received_at: float) -> Inbound:
        return parse_whatsapp(
            body,
            merchant_id=channel.merchant_id,
            channel_id=channel.id,
            phone_number_id=channel.account_id,
            received_at=received_at,
        )

    def outbound(
        self, channel: Channel, reply: OutboundReply, now: float
    ) -> list[ProviderCall] | PermanentFailure:
        """Outside the 24-hour window only a pre-approved template may be sent; without one
        the reply is parked (dead-lettered with the reason, replayable)."""
        args = (channel.api_base, channel.api_version, channel.account_id, channel.access_token)
        if now - reply.received_at <= WINDOW_S:
            return build_messages(*args, reply)
        if not channel.template_name:
            return PermanentFailure(
                "parked: outside the WhatsApp 24-hour window and no template is configured"
            )
        language = channel.template_language or ("ar" if reply.language.startswith("ar") else "en")
        return [build_template(*args, reply.customer_id, channel.template_name, language)]

    def send_rules(self, limits: SendLimits) -> tuple[SendRule, ...]:
        return (
            SendRule("recipient", limits.whatsapp_pair_per_s, limits.whatsapp_pair_burst),
            SendRule("channel", limits.whatsapp_per_number, limits.whatsapp_per_number),
        )


KIND: Final = WhatsApp()
