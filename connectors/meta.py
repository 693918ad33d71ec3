"""Meta platforms (WhatsApp Cloud, Messenger, Instagram): the input half and Graph API answers.

Pure functions, no I/O. The three products share one webhook contract (a ``GET`` verification
handshake, ``X-Hub-Signature-256`` on every ``POST``, batched ``entry`` arrays) and one error
envelope (``{"error": {"code", "error_subcode", "message", ...}}``), so those live here; the
per-product output builders are in ``whatsapp.py`` / ``messenger.py`` / ``instagram.py``.

Unlike peers we verify SHA-256 (not SHA-1) in constant time on the raw bytes before parsing,
and we walk EVERY entry and EVERY messaging item of a batched POST (Rasa keeps only the first).
Anything a customer did not type as a message (statuses, reactions, echoes) becomes an
:class:`Event` to record, never a turn to answer.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, ClassVar, Final

import orjson
from pydantic import Field

from connectors.base import (
    ChannelKind,
    ConnectIn,
    Delivered,
    Event,
    Inbound,
    MalformedPayload,
    PermanentFailure,
    RetryLater,
    SendLimits,
    SendOutcome,
    SendRule,
    WebhookAnswer,
)
from engine.domain.channels import Channel
from engine.domain.messages import InboundMessage, OutboundReply

SIGNATURE_HEADER: Final = "X-Hub-Signature-256"
MAX_INBOUND_TEXT_LEN: Final = 4096
MAX_REASON_LEN: Final = 300
_OBJECTS: Final = {
    "whatsapp": "whatsapp_business_account",
    "messenger": "page",
    "instagram": "instagram",
}
PRODUCT_PREFIX: Final = "product:"
STATUS_VALUES: Final = frozenset({"sent", "delivered", "read", "failed", "deleted"})


# --------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------


def verify_signature(app_secret: str, body: bytes, header: str | None) -> bool:
    """``X-Hub-Signature-256: sha256=<hex>`` over the raw body, compared in constant time."""
    if not app_secret or not header:
        return False
    scheme, _, provided = header.partition("=")
    if scheme.strip().lower() != "sha256" or not provided:
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), provided.strip().lower().encode("utf-8"))


def sign(app_secret: str, body: bytes) -> str:
    """The header value Meta would send (used by tests, the fake and the benchmark)."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def verify_challenge(
    verify_token: str, mode: str | None, token: str | None, challenge: str | None
) -> str | None:
    """The challenge to echo when the subscription handshake is genuine, else ``None``."""
    if mode != "subscribe" or not verify_token or token is None or not challenge:
        return None
    if not hmac.compare_digest(verify_token.encode(), token.encode("utf-8")):
        return None
    return challenge[:256]


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def load_body(body: bytes, kind: str) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload(f"{kind} webhook is not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise MalformedPayload(f"{kind} webhook is not a JSON object")
    expected = _OBJECTS[kind]
    if data.get("object") != expected:
        raise MalformedPayload(f"{kind} webhook object must be {expected!r}")
    entries = data.get("entry")
    if not isinstance(entries, list):
        raise MalformedPayload(f"{kind} webhook has no entry array")
    return data


def as_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedPayload(f"{where} is not an object")
    return value


def as_str(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def timestamp(value: Any, default: float) -> float:
    """Meta timestamps: WhatsApp sends seconds as a string, Messenger milliseconds as an int."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    if number != number or number <= 0:  # NaN or nonsense
        return default
    return number / 1000.0 if number > 1e11 else number


def clip(text: str) -> str:
    return text[:MAX_INBOUND_TEXT_LEN]


def product_text(value: Any) -> str | None:
    """A tap on one of our product buttons stands for the product's full title."""
    if not isinstance(value, str) or not value.startswith(PRODUCT_PREFIX):
        return None
    body = value[len(PRODUCT_PREFIX) :]
    if "#" in body:  # WhatsApp ids end in "#<sku>" to stay unique within one message
        body = body.rsplit("#", 1)[0]
    return body or None


def as_list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedPayload(f"{where} is not an array")
    return value


def nested_str(message: dict[str, Any], key: str, inner: str) -> str | None:
    value = message.get(key)
    if isinstance(value, dict):
        text = value.get(inner)
        if isinstance(text, str):
            return text
    return None


def location_text(location: Any) -> str | None:
    """A shared pin becomes text the bot can act on (e.g. a delivery-area question)."""
    if not isinstance(location, dict):
        return None
    parts = [str(location[k]) for k in ("name", "address") if isinstance(location.get(k), str)]
    lat, lon = location.get("latitude"), location.get("longitude")
    if isinstance(lat, int | float) and isinstance(lon, int | float):
        parts.append(f"({float(lat):.5f}, {float(lon):.5f})")
    return ("📍 " + " ".join(parts)) if parts else None


def parse_messaging(
    body: bytes,
    kind: str,
    *,
    merchant_id: str,
    channel_id: str,
    account_id: str,
    received_at: float,
) -> Inbound:
    """Messenger (``object: page``) and Instagram (``object: instagram``) webhooks.

    ``account_id`` is the page id (or Instagram account id): items from other accounts are
    skipped, echoes of what we sent are events, and ``delivery``/``read`` watermarks become
    status events.
    """
    data = load_body(body, kind)
    out = Inbound()
    for entry in data["entry"]:
        entry = as_object(entry, f"{kind} entry")
        entry_id = as_str(entry.get("id"))
        if account_id and entry_id is not None and entry_id != account_id:
            out.ignored += 1
            continue
        items = entry.get("messaging")
        if items is None and isinstance(entry.get("standby"), list):
            out.ignored += 1  # another app owns the thread (handover protocol)
            continue
        for item in as_list(items, f"{kind} messaging"):
            _messaging_item(
                as_object(item, f"{kind} messaging item"),
                kind,
                out,
                merchant_id=merchant_id,
                channel_id=channel_id,
                received_at=received_at,
            )
    return out


def _messaging_item(
    item: dict[str, Any],
    kind: str,
    out: Inbound,
    *,
    merchant_id: str,
    channel_id: str,
    received_at: float,
) -> None:
    sender = item.get("sender")
    recipient = item.get("recipient")
    sender_id = as_str(sender.get("id")) if isinstance(sender, dict) else None
    recipient_id = as_str(recipient.get("id")) if isinstance(recipient, dict) else None
    if sender_id is None:
        raise MalformedPayload(f"{kind} messaging item has no sender.id")
    at = timestamp(item.get("timestamp"), received_at)
    text: str | None = None
    mid: str | None = None
    message = item.get("message")
    if isinstance(message, dict):
        mid = as_str(message.get("mid"))
        if mid is None:
            raise MalformedPayload(f"{kind} message has no mid")
        if message.get("is_echo") is True:
            out.events.append(Event("echo", mid, recipient_id or "", "echo", at))
            return
        if message.get("is_deleted") is True:
            out.events.append(Event("status", mid, sender_id, "deleted", at))
            return
        raw = message.get("text")
        text = raw if isinstance(raw, str) else None
        quick = message.get("quick_reply")
        if isinstance(quick, dict):
            text = product_text(quick.get("payload")) or text
        if text is None:
            text = _attachment_text(message.get("attachments"))
    elif isinstance(item.get("postback"), dict):
        postback = item["postback"]
        text = product_text(postback.get("payload")) or as_str(postback.get("title"))
        mid = as_str(postback.get("mid")) or f"postback:{sender_id}:{int(at * 1000)}"
    elif isinstance(item.get("reaction"), dict):
        reaction = item["reaction"]
        target = as_str(reaction.get("mid"))
        if target:
            emoji = reaction.get("emoji") or reaction.get("reaction") or ""
            action = reaction.get("action")
            value = "" if action == "unreact" else str(emoji)
            out.events.append(Event("reaction", target, sender_id, value, at))
        return
    elif isinstance(item.get("delivery"), dict):
        for target in as_list(item["delivery"].get("mids"), f"{kind} delivery.mids"):
            if (pmid := as_str(target)) is not None:
                out.events.append(Event("status", pmid, sender_id, "delivered", at))
        return
    elif isinstance(item.get("read"), dict):
        read = item["read"]
        target = as_str(read.get("mid"))
        watermark = timestamp(read.get("watermark"), at)
        out.events.append(
            Event("status", target or f"watermark:{sender_id}", sender_id, "read", watermark)
        )
        return
    else:
        out.ignored += 1
        return
    if mid is None or text is None or not text.strip():
        out.ignored += 1
        return
    out.messages.append(
        InboundMessage(
            merchant_id=merchant_id,
            channel_id=channel_id,
            channel_kind=kind,
            customer_id=sender_id,
            message_id=mid,
            text=clip(text),
            received_at=received_at,
        )
    )


def _attachment_text(attachments: Any) -> str | None:
    """Images may carry no text on Messenger; a location attachment carries coordinates."""
    if not isinstance(attachments, list):
        return None
    for attachment in attachments:
        if not isinstance(attachment, dict):
            continue
        payload = attachment.get("payload")
        if attachment.get("type") == "location" and isinstance(payload, dict):
            coords = payload.get("coordinates")
            if isinstance(coords, dict):
                return location_text(
                    {"latitude": coords.get("lat"), "longitude": coords.get("long")}
                )
        title = attachment.get("title")
        if isinstance(title, str) and title.strip():
            return title
    return None


# --------------------------------------------------------------------------------------------
# Graph API answers
# --------------------------------------------------------------------------------------------

# Codes that mean "slow down / try later" (Graph API throttling, WhatsApp throughput and pair
# limits, temporary service errors). 131056 = pair rate limit, 130429 = throughput limit.
RETRY_CODES: Final = frozenset(
    {1, 2, 4, 17, 32, 341, 613, 80007, 130429, 131000, 131016, 131048, 131056, 133004, 1200}
)
# Codes that will fail the same way again: token, permissions, recipient, window.
TOKEN_CODES: Final = frozenset({190, 102, 463, 467})
WINDOW_CODES: Final = frozenset({131047, 2018278})
UNREACHABLE_CODES: Final = frozenset({131026, 551, 131051, 2018108, 1545041})


def graph_error(body: bytes) -> tuple[int | None, int | None, str]:
    """``(code, error_subcode, message)`` of a Graph error envelope (all optional)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None, ""
    if not isinstance(data, dict) or not isinstance(data.get("error"), dict):
        return None, None, ""
    error = data["error"]
    code = error.get("code")
    sub = error.get("error_subcode")
    message = error.get("message")
    return (
        code if isinstance(code, int) else None,
        sub if isinstance(sub, int) else None,
        str(message)[:MAX_REASON_LEN] if isinstance(message, str) else "",
    )


def interpret_response(
    status: int, body: bytes, retry_after_header: str | None, *, product: str
) -> SendOutcome:
    """Map one Graph API answer onto Delivered / RetryLater / PermanentFailure.

    WhatsApp answers ``{"messages": [{"id": "wamid..."}]}``; Messenger and Instagram
    ``{"recipient_id", "message_id"}``. Errors keep Meta's code in the reason so an operator
    reading the dead letters sees ``131047`` rather than a bare 400; the remote's message text
    is never repeated (fixed reasons: a channel aimed elsewhere cannot read that host back).
    """
    if 200 <= status < 300:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return RetryLater(f"{product} answered {status} with an unreadable body")
        if isinstance(data, dict):
            messages = data.get("messages")
            if isinstance(messages, list) and messages and isinstance(messages[0], dict):
                return Delivered(str(messages[0].get("id") or ""))
            if isinstance(data.get("message_id"), str):
                return Delivered(data["message_id"])
        return Delivered("")
    code, sub, _ = graph_error(body)
    reason = f"{product} {status}"
    if code is not None:
        reason += f" code {code}" + (f"/{sub}" if sub is not None else "")
    after = _retry_after(retry_after_header)
    if code in TOKEN_CODES or status == 401:
        return PermanentFailure(f"invalid token ({reason})")
    if code in WINDOW_CODES or sub in WINDOW_CODES:
        return PermanentFailure(f"outside the messaging window ({reason})")
    if code in UNREACHABLE_CODES or sub in UNREACHABLE_CODES:
        return PermanentFailure(reason, unreachable=True)
    if status == 429 or code in RETRY_CODES or status >= 500 or status in (408, 425):
        if code == 131056 and after is None:
            after = 6.0  # pair limit: one message per ~6 s to the same user
        return RetryLater(reason, after_s=after)
    if code is None and not 400 <= status < 500:
        return RetryLater(reason)
    return PermanentFailure(reason)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 3600 else None


# --------------------------------------------------------------------------------------------
# What the three products share as channel kinds
# --------------------------------------------------------------------------------------------

# Free-form replies are allowed within 24 h of the customer's last message; Messenger and
# Instagram allow a human agent's reply (HUMAN_AGENT tag) up to 7 days.
WINDOW_S: Final = 24 * 3600
HUMAN_AGENT_WINDOW_S: Final = 7 * 24 * 3600
API_VERSION: Final = r"^v[0-9]{1,3}\.[0-9]{1,2}$"


def is_human_agent_reply(reply: OutboundReply) -> bool:
    """Replies typed by a person (the agents' console writes ``trace.author = "human"``)."""
    return reply.trace.get("author") == "human" or reply.intent == "human_agent"


class MetaConnectIn(ConnectIn):
    """The app's secrets every Meta product needs: the signature key and the verify token."""

    app_secret: str = Field(min_length=1, max_length=256)
    verify_token: str = Field(min_length=1, max_length=256)
    api_version: str | None = Field(default=None, pattern=API_VERSION)


class MetaKind(ChannelKind):
    """The webhook contract the Meta products share: ``X-Hub-Signature-256`` on every POST,
    the ``hub.challenge`` handshake, ``EVENT_RECEIVED``, one Graph error envelope."""

    webhook_span: ClassVar[str] = "webhook.meta"
    api_hosts: ClassVar[tuple[str, ...]] = ("graph.facebook.com",)

    def verify(self, channel: Channel, headers: Mapping[str, str], body: bytes) -> bool:
        return verify_signature(channel.app_secret, body, headers.get(SIGNATURE_HEADER))

    def handshake(self, channel: Channel, query: Mapping[str, str]) -> str | None:
        return verify_challenge(
            channel.verify_token,
            query.get("hub.mode"),
            query.get("hub.verify_token"),
            query.get("hub.challenge"),
        )

    def answer(self, inbound: Inbound, accepted: frozenset[str]) -> WebhookAnswer:
        return WebhookAnswer(text="EVENT_RECEIVED")

    def interpret(self, status: int, body: bytes, headers: Mapping[str, str]) -> SendOutcome:
        return interpret_response(status, body, headers.get("Retry-After"), product=self.kind)

    def send_rules(self, limits: SendLimits) -> tuple[SendRule, ...]:
        return (SendRule("channel", limits.meta_per_page, limits.meta_per_page),)
