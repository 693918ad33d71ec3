"""Telegram Bot API connector: pure functions, no I/O, no Ray.

Input and output are split (as Rasa does) so each side is testable without a network:

* input: :func:`verify_secret` checks the ``X-Telegram-Bot-Api-Secret-Token`` header that
  ``setWebhook(secret_token=...)`` makes Telegram send; :func:`parse_update` turns one webhook
  body into an :class:`~engine.domain.messages.InboundMessage` (or ``None`` for updates we do not
  answer); :func:`update_id_of` gives the dedupe key even for those.
* output: :func:`build_send_message` turns an :class:`~engine.domain.messages.OutboundReply` into
  fully built :class:`~connectors.base.ProviderCall` objects, and :func:`interpret_response`
  maps Telegram's answer onto Delivered / RetryLater / PermanentFailure for the delivery
  machinery in ``actors/``.

Unlike Rasa's Telegram channel we compare secrets in constant time, reject malformed bodies
with a clear reason instead of crashing, never answer bots (no bot-to-bot loops), split long
replies instead of letting Telegram reject them, and never put the bot token in a reason.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Final, Literal, TypeGuard

import orjson
from pydantic import Field, field_validator

from connectors.base import (
    SECRET_TOKEN,
    ChannelDraft,
    ChannelKind,
    ConnectIn,
    Delivered,
    Inbound,
    MalformedPayload,
    PermanentFailure,
    ProviderCall,
    ProviderDefaults,
    RetryLater,
    SendLimits,
    SendOutcome,
    SendRule,
    WebhookAnswer,
)
from engine.domain.channels import Channel
from engine.domain.messages import InboundMessage, OutboundReply, ProductCard

CHANNEL_KIND: Final = "telegram"
SECRET_HEADER: Final = "X-Telegram-Bot-Api-Secret-Token"

# Telegram rejects texts over 4096 characters "after entities parsing", counted like its
# entity offsets in UTF-16 code units; counting UTF-16 units is never more permissive.
MAX_TEXT_LEN: Final = 4096
# Inbound text is capped at the same size: Telegram never sends more (captions are capped at
# 1024), so anything longer is not Telegram's and must not reach the models unbounded.
MAX_INBOUND_TEXT_LEN: Final = 4096
# Telegram allows at most 100 buttons in one inline keyboard; past that the whole send fails.
MAX_BUTTONS: Final = 100
# Telegram does not document a hard cap on button labels, but clients cut long ones anyway.
MAX_BUTTON_LABEL: Final = 64
# callback_data is 1-64 bytes.
MAX_CALLBACK_DATA: Final = 64
# Telegram's rule for setWebhook's secret_token: 1-256 characters of A-Z a-z 0-9 _ -.
_SECRET_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,256}")
DEFAULT_ALLOWED_UPDATES: Final = ("message", "edited_message", "callback_query")

_LABELS: Final[dict[str, dict[str, str]]] = {
    "en": {"header": "Products:", "no_price": "price on request", "view": "View"},
    "ar": {"header": "المنتجات:", "no_price": "السعر عند الطلب", "view": "عرض"},
}


# --------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------


def verify_secret(expected: str, provided: str | None) -> bool:
    """Check the webhook's secret header in constant time.

    An empty ``expected`` means the channel was never given a secret: we refuse rather than
    accept everything, because an unauthenticated webhook lets anyone inject customer
    messages (Chatwoot's 2026 advisory). Bytes are compared so non-ASCII input cannot raise.
    """
    if not expected or provided is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), provided.encode("utf-8"))


def update_id_of(body: bytes) -> int | None:
    """The ``update_id`` of a webhook body, or ``None`` if there is none; never raises.

    The gateway records and dedupes every update id, including updates :func:`parse_update`
    turns into ``None``, so Telegram's redeliveries of ignored updates are cheap too.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    update_id = data.get("update_id")
    return update_id if _is_int(update_id) else None


def parse_update(
    body: bytes, *, merchant_id: str, channel_id: str, received_at: float
) -> InboundMessage | None:
    """Parse one webhook body into the message we answer, or ``None`` if we answer nothing.

    Raises :class:`MalformedPayload` when the body cannot be something Telegram sent (not a
    JSON object, no integer ``update_id``, a message without a proper ``chat``): those are
    answered with 400 and are worth an alert. Well-formed updates we do not act on (joins,
    stickers, edits, channel posts, messages from bots) return ``None`` so Telegram stops
    redelivering them.

    ``message_id`` is ``str(update_id)``: Telegram's own dedupe key, stable across redeliveries.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload(f"telegram update is not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise MalformedPayload("telegram update is not a JSON object")
    update_id = data.get("update_id")
    if not _is_int(update_id):
        raise MalformedPayload("telegram update has no integer update_id")

    for key in ("message", "edited_message"):
        if key in data:
            _check_message_shape(data[key], key)

    if "message" in data:
        message: dict[str, Any] = data["message"]
        sender = message.get("from")
        if _is_bot(sender):
            return None  # never answer bots: two bots answering each other loop forever
        text = message.get("text")
        if text is None:
            text = message.get("caption")  # a photo of a product with a question under it
        if not isinstance(text, str):
            return None  # stickers, locations, joins...: nothing to answer in text
        chat_id = message["chat"]["id"]
        name_source = sender if isinstance(sender, dict) else message["chat"]
        return _inbound(
            update_id,
            chat_id,
            text,
            _display_name(name_source),
            merchant_id=merchant_id,
            channel_id=channel_id,
            received_at=received_at,
        )

    if "callback_query" in data:
        return _parse_callback_query(
            data["callback_query"],
            update_id,
            merchant_id=merchant_id,
            channel_id=channel_id,
            received_at=received_at,
        )

    # edited_message: the customer already got an answer to the original text; answering the
    # edit as a new turn would send a second, confusing reply. my_chat_member, channel_post,
    # inline_query, ...: not customer conversation.
    return None


def _parse_callback_query(
    query: Any, update_id: int, *, merchant_id: str, channel_id: str, received_at: float
) -> InboundMessage | None:
    """A tap on an inline button we sent with ``callback_data``: its data is the customer's text.

    The reply goes to the chat the button was in; Telegram omits ``message`` for very old or
    inline-mode messages, and then the user id is the private chat id.
    """
    if not isinstance(query, dict):
        raise MalformedPayload("telegram callback_query is not an object")
    sender = query.get("from")
    if not isinstance(sender, dict) or not _is_int(sender.get("id")):
        raise MalformedPayload("telegram callback_query has no integer from.id")
    if _is_bot(sender):
        return None
    data = query.get("data")
    if not isinstance(data, str):
        return None  # game callbacks carry game_short_name instead of data
    chat_id: int = sender["id"]
    message = query.get("message")
    if isinstance(message, dict):
        chat = message.get("chat")
        if isinstance(chat, dict) and _is_int(chat.get("id")):
            chat_id = chat["id"]
    trace: dict[str, str] = {}
    query_id = query.get("id")
    if isinstance(query_id, str):
        # Kept so the sender can call answerCallbackQuery (stops the client's spinner).
        trace["telegram_callback_query_id"] = query_id
    return _inbound(
        update_id,
        chat_id,
        data,
        _display_name(sender),
        merchant_id=merchant_id,
        channel_id=channel_id,
        received_at=received_at,
        trace=trace,
    )


def _inbound(
    update_id: int,
    chat_id: int,
    text: str,
    name: str | None,
    *,
    merchant_id: str,
    channel_id: str,
    received_at: float,
    trace: dict[str, str] | None = None,
) -> InboundMessage | None:
    text = text[:MAX_INBOUND_TEXT_LEN]
    if not text.strip():
        return None
    return InboundMessage(
        merchant_id=merchant_id,
        channel_id=channel_id,
        channel_kind=CHANNEL_KIND,
        customer_id=str(chat_id),
        message_id=str(update_id),
        text=text,
        received_at=received_at,
        customer_name=name,
        trace=trace or {},
    )


def _check_message_shape(message: Any, key: str) -> None:
    """Reject messages Telegram could not have sent, so later code can index without guards."""
    if not isinstance(message, dict):
        raise MalformedPayload(f"telegram {key} is not an object")
    if not _is_int(message.get("message_id")):
        raise MalformedPayload(f"telegram {key} has no integer message_id")
    chat = message.get("chat")
    if not isinstance(chat, dict) or not _is_int(chat.get("id")):
        raise MalformedPayload(f"telegram {key} has no chat with an integer id")
    sender = message.get("from")
    if sender is not None and (not isinstance(sender, dict) or not _is_int(sender.get("id"))):
        raise MalformedPayload(f"telegram {key}.from has no integer id")
    for field_name in ("text", "caption"):
        value = message.get(field_name)
        if value is not None and not isinstance(value, str):
            raise MalformedPayload(f"telegram {key}.{field_name} is not a string")


def _is_int(value: object) -> TypeGuard[int]:
    # bool is an int subclass: `true` is not a valid id.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_bot(sender: Any) -> bool:
    return isinstance(sender, dict) and sender.get("is_bot") is True


def _display_name(user: dict[str, Any]) -> str | None:
    for key in ("first_name", "username", "title"):
        value = user.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:64]
    return None


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def build_send_message(api_base: str, bot_token: str, reply: OutboundReply) -> list[ProviderCall]:
    """Build the ``sendMessage`` calls for one reply, to be sent in list order.

    Products are rendered into the text (numbered title, price, url) because every Telegram
    client shows text, and additionally offered as URL buttons on the last message. Texts over
    Telegram's limit are split at line or word boundaries rather than rejected. No
    ``parse_mode``: plain text needs no escaping, so a product title with ``*`` or ``<`` cannot
    break the send. Returns ``[]`` when there is nothing to say (Telegram rejects empty text).
    """
    url = _method_url(api_base, bot_token, "sendMessage")
    text = render_text(reply)
    chunks = split_text(text, MAX_TEXT_LEN)
    chat_id = _chat_id_param(reply.customer_id)
    keyboard = _inline_keyboard(reply.products, reply.language)
    calls: list[ProviderCall] = []
    for index, chunk in enumerate(chunks):
        payload: dict[str, Any] = {"chat_id": chat_id, "text": chunk}
        if keyboard and index == len(chunks) - 1:
            payload["reply_markup"] = {"inline_keyboard": keyboard}
        calls.append(
            ProviderCall(method="POST", url=url, json=payload, recipient=reply.customer_id)
        )
    return calls


def render_text(reply: OutboundReply) -> str:
    """The reply's text followed by its products as a numbered list in the reply's language."""
    labels = _labels(reply.language)
    parts: list[str] = []
    if reply.text.strip():
        parts.append(reply.text.strip())
    if reply.products:
        lines = [labels["header"]]
        for number, product in enumerate(reply.products, start=1):
            lines.append(f"{number}. {_product_line(product, labels)}")
            if product.url:
                lines.append(product.url)
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _product_line(product: ProductCard, labels: dict[str, str]) -> str:
    title = product.title.strip() or product.sku
    if product.price is None:
        return f"{title} — {labels['no_price']}"
    price = _format_price(product.price)
    currency = (product.currency or "").strip()
    return f"{title} — {price} {currency}" if currency else f"{title} — {price}"


def _format_price(price: float) -> str:
    text = f"{price:,.2f}"
    return text[:-3] if text.endswith(".00") else text


def _labels(language: str) -> dict[str, str]:
    return _LABELS["ar"] if language.lower().startswith("ar") else _LABELS["en"]


def _inline_keyboard(products: Sequence[ProductCard], language: str) -> list[list[dict[str, str]]]:
    """One row per product: a "choose" button (``callback_data``) and, if any, a URL button.

    The choose button's data is the product title cut to Telegram's 64-byte ``callback_data``
    limit, so a tap comes back as a callback query whose text the bot reads like a typed title
    (the gateway answers ``answerCallbackQuery`` in the webhook response). Only http(s) URLs:
    Telegram answers any other URL with ``BUTTON_URL_INVALID`` and then the whole message, text
    included, is lost.
    """
    view = _labels(language)["view"]
    rows: list[list[dict[str, str]]] = []
    buttons = 0
    for product in products:
        title = product.title.strip() or product.sku
        row: list[dict[str, str]] = []
        data = _cut_bytes(title, MAX_CALLBACK_DATA)
        if data.strip():
            row.append({"text": _cut_label(title), "callback_data": data})
        if product.url and product.url.startswith(("https://", "http://")):
            row.append({"text": _cut_label(f"{view}: {title}"), "url": product.url})
        if not row or buttons + len(row) > MAX_BUTTONS:
            continue
        buttons += len(row)
        rows.append(row)
    return rows


def _cut_label(label: str) -> str:
    return label if len(label) <= MAX_BUTTON_LABEL else label[: MAX_BUTTON_LABEL - 1] + "…"


def _cut_bytes(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")[:limit]
    return encoded.decode("utf-8", errors="ignore")


def split_text(text: str, limit: int = MAX_TEXT_LEN) -> list[str]:
    """Split ``text`` into non-blank chunks of at most ``limit`` UTF-16 code units.

    Prefers a paragraph or line break, then a space, in the second half of the window, so
    numbered product lines stay whole; falls back to a hard cut for unbroken text. Cuts are
    between code points, so an emoji (a surrogate pair in UTF-16) is never split.
    """
    if limit < 2:
        raise ValueError("limit must be at least 2")
    chunks: list[str] = []
    rest = text.strip()
    while rest:
        if _utf16_len(rest) <= limit:
            chunks.append(rest)
            break
        cut = _prefix_fitting(rest, limit)
        window = rest[:cut]
        split_at = -1
        for separator in ("\n\n", "\n", " "):
            position = window.rfind(separator)
            if position >= cut // 2:
                split_at = position
                break
        if split_at <= 0:
            split_at = cut
        chunk = rest[:split_at].rstrip()
        if chunk:
            chunks.append(chunk)
        rest = rest[split_at:].lstrip()
    return chunks


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _prefix_fitting(text: str, limit: int) -> int:
    """The largest number of code points of ``text`` whose UTF-16 length is <= ``limit``."""
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)


def _chat_id_param(customer_id: str) -> int | str:
    # Telegram takes an integer chat id or an "@channel" username; ids round-trip as ints.
    try:
        return int(customer_id)
    except ValueError:
        return customer_id


def build_set_webhook(
    api_base: str,
    bot_token: str,
    url: str,
    secret_token: str,
    *,
    allowed_updates: Iterable[str] = DEFAULT_ALLOWED_UPDATES,
    max_connections: int | None = None,
    drop_pending_updates: bool = False,
) -> ProviderCall:
    """Build ``setWebhook`` with a secret, so every update carries :data:`SECRET_HEADER`.

    ``allowed_updates`` is always sent: Telegram otherwise keeps whatever an earlier call set,
    and we do not want to pay for update kinds we drop. The secret is validated here because
    Telegram would reject it anyway, and failing at configuration time is clearer.
    """
    if not _SECRET_TOKEN_RE.fullmatch(secret_token):
        raise ValueError("secret_token must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
    if not url:
        raise ValueError("webhook url must not be empty (use build_delete_webhook)")
    payload: dict[str, Any] = {
        "url": url,
        "secret_token": secret_token,
        "allowed_updates": list(allowed_updates),
        "drop_pending_updates": drop_pending_updates,
    }
    if max_connections is not None:
        if not 1 <= max_connections <= 100:
            raise ValueError("max_connections must be between 1 and 100")
        payload["max_connections"] = max_connections
    return ProviderCall(
        method="POST", url=_method_url(api_base, bot_token, "setWebhook"), json=payload
    )


def build_delete_webhook(
    api_base: str, bot_token: str, *, drop_pending_updates: bool = False
) -> ProviderCall:
    """Build ``deleteWebhook`` (channel removal, or switching a bot to another deployment)."""
    return ProviderCall(
        method="POST",
        url=_method_url(api_base, bot_token, "deleteWebhook"),
        json={"drop_pending_updates": drop_pending_updates},
    )


def build_answer_callback_query(
    api_base: str, bot_token: str, callback_query_id: str
) -> ProviderCall:
    """Build ``answerCallbackQuery``: without it the tapped button keeps a loading spinner."""
    return ProviderCall(
        method="POST",
        url=_method_url(api_base, bot_token, "answerCallbackQuery"),
        json={"callback_query_id": callback_query_id},
    )


def webhook_answer_for(message: InboundMessage | None) -> dict[str, Any]:
    """The webhook response body: answers a callback query inline (no extra API call).

    Telegram lets a webhook response carry one Bot API method call; answering the callback query
    there stops the tapped button's spinner at once, before any reply is even computed.
    """
    if message is not None:
        query_id = message.trace.get("telegram_callback_query_id")
        if query_id:
            return {"method": "answerCallbackQuery", "callback_query_id": query_id}
    return {"ok": True}


def _method_url(api_base: str, bot_token: str, method: str) -> str:
    # The token sits in the URL path: a token with "/", "?" or whitespace would call another
    # endpoint. The error message never repeats the token.
    if not bot_token or any(c in bot_token for c in "/?#% \t\r\n"):
        raise ValueError("bot token is empty or contains characters not allowed in a URL path")
    return f"{api_base.rstrip('/')}/bot{bot_token}/{method}"


def interpret_response(status: int, body: bytes) -> SendOutcome:
    """Map one Bot API answer onto what the delivery machinery should do next.

    Telegram answers ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N,
    "description": "...", "parameters": {"retry_after": S}}``. Flood control (429) must wait
    ``retry_after``; server errors and answers we cannot read (a proxy's HTML page) are retried;
    a blocked bot or deactivated user (403) will never be reachable; a bad token (401/404) and
    other 4xx will fail the same way again. Reasons carry Telegram's description, never the
    token.
    """
    data: dict[str, Any] | None = None
    try:
        loaded = orjson.loads(body)
    except orjson.JSONDecodeError:
        loaded = None
    if isinstance(loaded, dict):
        data = loaded

    if status == 200 and data is not None and data.get("ok") is True:
        result = data.get("result")
        if isinstance(result, dict) and _is_int(result.get("message_id")):
            return Delivered(str(result["message_id"]))
        return Delivered("")  # setWebhook & co. answer `"result": true`

    code = status
    if status == 200:
        if data is None:
            return RetryLater(reason="telegram answered 200 with an unreadable body")
        error_code = data.get("error_code")
        code = error_code if _is_int(error_code) else 500
    description = _description(data)
    reason = f"telegram {code}: {description}" if description else f"telegram {code}"

    if code == 429:
        return RetryLater(reason=reason, after_s=_retry_after(data))
    if code >= 500 or code in (408, 425):
        return RetryLater(reason=reason)
    if data is None and not 400 <= code < 500:
        return RetryLater(reason=f"telegram answered {code} with an unreadable body")
    if code == 403:
        return PermanentFailure(reason=reason, unreachable=True)
    if code in (401, 404):
        return PermanentFailure(reason=f"invalid bot token ({reason})")
    if code == 400 and (new_chat_id := _migrated_to(data)) is not None:
        return PermanentFailure(reason=f"{reason}; group migrated to chat {new_chat_id}")
    return PermanentFailure(reason=reason)


# The Bot API's own descriptions a reason may repeat (our copies): a reason never carries the
# remote's words, so a channel aimed at some other host cannot read that host back through
# dead letters or ``webhook_error``.
KNOWN_DESCRIPTIONS: Final = tuple(
    (d.lower(), d)
    for d in (
        "Forbidden: bot was blocked by the user",
        "Forbidden: user is deactivated",
        "Forbidden: bot was kicked from the group chat",
        "Forbidden: bot was kicked from the supergroup chat",
        "Forbidden: bot can't initiate conversation with a user",
        "Forbidden: bot is not a member of the channel chat",
        "Bad Request: chat not found",
        "Bad Request: message is too long",
        "Bad Request: message text is empty",
        "Bad Request: can't parse entities",
        "Bad Request: group chat was upgraded to a supergroup chat",
        "Bad Request: have no rights to send a message",
        "Bad Request: need administrator rights in the channel chat",
        "Bad Request: BUTTON_DATA_INVALID",
        "Bad Request: PEER_ID_INVALID",
        "Bad Request: CHAT_WRITE_FORBIDDEN",
        "Unauthorized",
        "Not Found",
        "Too Many Requests",
    )
)


def _description(data: dict[str, Any] | None) -> str:
    if data is None:
        return ""
    description = data.get("description")
    if not isinstance(description, str):
        return ""
    said = description.strip().lower()
    ours = next((ours for theirs, ours in KNOWN_DESCRIPTIONS if said.startswith(theirs)), "")
    after = _retry_after(data)
    if ours == "Too Many Requests" and after is not None:
        return f"{ours}: retry after {int(after)}"
    return ours


def _parameters(data: dict[str, Any] | None) -> dict[str, Any]:
    if data is None:
        return {}
    parameters = data.get("parameters")
    return parameters if isinstance(parameters, dict) else {}


def _retry_after(data: dict[str, Any] | None) -> float | None:
    value = _parameters(data).get("retry_after")
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def _migrated_to(data: dict[str, Any] | None) -> int | None:
    value = _parameters(data).get("migrate_to_chat_id")
    return value if _is_int(value) else None


# --------------------------------------------------------------------------------------------
# The channel kind
# --------------------------------------------------------------------------------------------


class TelegramConnectIn(ConnectIn):
    """``POST /api/v1/channels`` for a bot: its token and the webhook secret Telegram echoes."""

    kind: Literal["telegram"]
    bot_token: str = Field(min_length=1, max_length=256)
    secret_token: str = Field(pattern=SECRET_TOKEN)

    @field_validator("bot_token")
    @classmethod
    def _url_safe(cls, value: str) -> str:
        _method_url("https://api.telegram.org", value, "getMe")  # raises on a bad shape
        return value


class Telegram(ChannelKind):
    kind: ClassVar[str] = CHANNEL_KIND
    connect = TelegramConnectIn
    webhook_span = "webhook.telegram"
    api_hosts = ("api.telegram.org",)

    def draft(self, body: Any, defaults: ProviderDefaults) -> ChannelDraft:
        assert isinstance(body, TelegramConnectIn)
        return ChannelDraft(
            api_base=body.api_base or defaults.telegram_api_base,
            secrets={"bot_token": body.bot_token, "secret_token": body.secret_token},
        )

    def on_connect(self, channel: Channel, webhook_url: str) -> ProviderCall | None:
        return build_set_webhook(
            channel.api_base, channel.bot_token, webhook_url, channel.secret_token
        )

    def on_disconnect(self, channel: Channel) -> ProviderCall | None:
        return (
            build_delete_webhook(channel.api_base, channel.bot_token) if channel.bot_token else None
        )

    def verify(self, channel: Channel, headers: Mapping[str, str], body: bytes) -> bool:
        return verify_secret(channel.secret_token, headers.get(SECRET_HEADER))

    def parse(self, channel: Channel, body: bytes, received_at: float) -> Inbound:
        message = parse_update(
            body, merchant_id=channel.merchant_id, channel_id=channel.id, received_at=received_at
        )
        if message is not None:
            return Inbound(messages=[message])
        update_id = update_id_of(body)
        return Inbound(ignored=1, seen=[] if update_id is None else [str(update_id)])

    def answer(self, inbound: Inbound, accepted: frozenset[str]) -> WebhookAnswer:
        fresh = [m for m in inbound.messages if m.message_id in accepted]
        return WebhookAnswer(json=webhook_answer_for(fresh[0] if fresh else None))

    def outbound(
        self, channel: Channel, reply: OutboundReply, now: float
    ) -> list[ProviderCall] | PermanentFailure:
        return build_send_message(channel.api_base, channel.bot_token, reply)

    def interpret(self, status: int, body: bytes, headers: Mapping[str, str]) -> SendOutcome:
        return interpret_response(status, body)

    def send_rules(self, limits: SendLimits) -> tuple[SendRule, ...]:
        return (
            SendRule("recipient", limits.telegram_per_chat, 1.0),
            SendRule("channel", limits.telegram_per_bot, limits.telegram_per_bot),
        )


KIND: Final = Telegram()
