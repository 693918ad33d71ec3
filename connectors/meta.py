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
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from connectors.base import Delivered, MalformedPayload, PermanentFailure, RetryLater, SendOutcome
from engine.domain.messages import InboundMessage

SIGNATURE_HEADER: Final = "X-Hub-Signature-256"
MAX_INBOUND_TEXT_LEN: Final = 4096
_MAX_REASON_LEN: Final = 300
META_KINDS: Final = frozenset({"whatsapp", "messenger", "instagram"})
_OBJECTS: Final = {
    "whatsapp": "whatsapp_business_account",
    "messenger": "page",
    "instagram": "instagram",
}
PRODUCT_PREFIX: Final = "product:"
STATUS_VALUES: Final = frozenset({"sent", "delivered", "read", "failed", "deleted"})


@dataclass(frozen=True, slots=True)
class Event:
    """Something to record on a message we already know by its provider id, not to answer.

    ``kind`` is ``status`` (sent/delivered/read/failed), ``reaction`` or ``echo``.
    """

    kind: str
    provider_message_id: str
    customer_id: str
    value: str
    at: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Parsed:
    messages: list[InboundMessage] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    ignored: int = 0


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


def _load(body: bytes, kind: str) -> dict[str, Any]:
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


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedPayload(f"{where} is not an object")
    return value


def _str(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _ts(value: Any, default: float) -> float:
    """Meta timestamps: WhatsApp sends seconds as a string, Messenger milliseconds as an int."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    if number != number or number <= 0:  # NaN or nonsense
        return default
    return number / 1000.0 if number > 1e11 else number


def _clip(text: str) -> str:
    return text[:MAX_INBOUND_TEXT_LEN]


def parse_whatsapp(
    body: bytes,
    *,
    merchant_id: str,
    channel_id: str,
    phone_number_id: str,
    received_at: float,
) -> Parsed:
    """Every message and status of every change of every entry.

    Changes for another phone number (one Meta app can serve several) are skipped: they belong
    to another channel's URL. Message types we cannot answer in text (stickers, audio, unknown)
    are counted as ignored and their ids still deduped by the caller.
    """
    data = _load(body, "whatsapp")
    out = Parsed()
    for entry in data["entry"]:
        entry = _obj(entry, "whatsapp entry")
        changes = entry.get("changes")
        if not isinstance(changes, list):
            raise MalformedPayload("whatsapp entry has no changes array")
        for change in changes:
            change = _obj(change, "whatsapp change")
            value = change.get("value")
            if change.get("field") != "messages" or not isinstance(value, dict):
                out.ignored += 1
                continue
            metadata = value.get("metadata")
            number = _str(metadata.get("phone_number_id")) if isinstance(metadata, dict) else None
            if phone_number_id and number is not None and number != phone_number_id:
                out.ignored += 1
                continue
            names = _contact_names(value.get("contacts"))
            for message in _list(value.get("messages"), "whatsapp messages"):
                _wa_message(
                    _obj(message, "whatsapp message"),
                    names,
                    out,
                    merchant_id=merchant_id,
                    channel_id=channel_id,
                    received_at=received_at,
                )
            for status in _list(value.get("statuses"), "whatsapp statuses"):
                status = _obj(status, "whatsapp status")
                pmid = _str(status.get("id"))
                value_s = status.get("status")
                if pmid is None or value_s not in STATUS_VALUES:
                    raise MalformedPayload("whatsapp status needs an id and a known status")
                detail: dict[str, Any] = {}
                errors = status.get("errors")
                if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                    code = errors[0].get("code")
                    detail["error_code"] = code if isinstance(code, int) else None
                    title = errors[0].get("title") or errors[0].get("message")
                    detail["error"] = str(title)[:_MAX_REASON_LEN] if title else ""
                out.events.append(
                    Event(
                        "status",
                        pmid,
                        _str(status.get("recipient_id")) or "",
                        str(value_s),
                        _ts(status.get("timestamp"), received_at),
                        detail,
                    )
                )
    return out


def _product_text(value: Any) -> str | None:
    """A tap on one of our product buttons stands for the product's full title."""
    if not isinstance(value, str) or not value.startswith(PRODUCT_PREFIX):
        return None
    body = value[len(PRODUCT_PREFIX) :]
    if "#" in body:  # WhatsApp ids end in "#<sku>" to stay unique within one message
        body = body.rsplit("#", 1)[0]
    return body or None


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedPayload(f"{where} is not an array")
    return value


def _contact_names(contacts: Any) -> dict[str, str]:
    names: dict[str, str] = {}
    if not isinstance(contacts, list):
        return names
    for contact in contacts:
        if not isinstance(contact, dict):
            continue
        wa_id = _str(contact.get("wa_id"))
        profile = contact.get("profile")
        name = profile.get("name") if isinstance(profile, dict) else None
        if wa_id and isinstance(name, str) and name.strip():
            names[wa_id] = name.strip()[:64]
    return names


def _wa_message(
    message: dict[str, Any],
    names: dict[str, str],
    out: Parsed,
    *,
    merchant_id: str,
    channel_id: str,
    received_at: float,
) -> None:
    wamid = _str(message.get("id"))
    sender = _str(message.get("from"))
    kind = message.get("type")
    if wamid is None or sender is None or not isinstance(kind, str):
        raise MalformedPayload("whatsapp message needs id, from and type")
    at = _ts(message.get("timestamp"), received_at)
    text: str | None = None
    if kind == "text":
        text = _nested_str(message, "text", "body")
    elif kind == "interactive":
        inter = message.get("interactive")
        if isinstance(inter, dict):
            reply = inter.get("button_reply") or inter.get("list_reply")
            if isinstance(reply, dict):
                text = _product_text(reply.get("id")) or _str(reply.get("title"))
    elif kind == "button":  # a template's quick-reply button
        button = message.get("button")
        if isinstance(button, dict):
            text = _product_text(button.get("payload")) or _str(button.get("text"))
    elif kind in ("image", "video", "document"):
        text = _nested_str(message, kind, "caption")
    elif kind == "location":
        text = _location_text(message.get("location"))
    elif kind == "reaction":
        reaction = message.get("reaction")
        if isinstance(reaction, dict) and (target := _str(reaction.get("message_id"))):
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
            text=_clip(text),
            received_at=received_at,
            customer_name=names.get(sender),
            trace={"wa_type": kind},
        )
    )


def _nested_str(message: dict[str, Any], key: str, inner: str) -> str | None:
    value = message.get(key)
    if isinstance(value, dict):
        text = value.get(inner)
        if isinstance(text, str):
            return text
    return None


def _location_text(location: Any) -> str | None:
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
) -> Parsed:
    """Messenger (``object: page``) and Instagram (``object: instagram``) webhooks.

    ``account_id`` is the page id (or Instagram account id): items from other accounts are
    skipped, echoes of what we sent are events, and ``delivery``/``read`` watermarks become
    status events.
    """
    data = _load(body, kind)
    out = Parsed()
    for entry in data["entry"]:
        entry = _obj(entry, f"{kind} entry")
        entry_id = _str(entry.get("id"))
        if account_id and entry_id is not None and entry_id != account_id:
            out.ignored += 1
            continue
        items = entry.get("messaging")
        if items is None and isinstance(entry.get("standby"), list):
            out.ignored += 1  # another app owns the thread (handover protocol)
            continue
        for item in _list(items, f"{kind} messaging"):
            _messaging_item(
                _obj(item, f"{kind} messaging item"),
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
    out: Parsed,
    *,
    merchant_id: str,
    channel_id: str,
    received_at: float,
) -> None:
    sender = item.get("sender")
    recipient = item.get("recipient")
    sender_id = _str(sender.get("id")) if isinstance(sender, dict) else None
    recipient_id = _str(recipient.get("id")) if isinstance(recipient, dict) else None
    if sender_id is None:
        raise MalformedPayload(f"{kind} messaging item has no sender.id")
    at = _ts(item.get("timestamp"), received_at)
    text: str | None = None
    mid: str | None = None
    message = item.get("message")
    if isinstance(message, dict):
        mid = _str(message.get("mid"))
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
            text = _product_text(quick.get("payload")) or text
        if text is None:
            text = _attachment_text(message.get("attachments"))
    elif isinstance(item.get("postback"), dict):
        postback = item["postback"]
        text = _product_text(postback.get("payload")) or _str(postback.get("title"))
        mid = _str(postback.get("mid")) or f"postback:{sender_id}:{int(at * 1000)}"
    elif isinstance(item.get("reaction"), dict):
        reaction = item["reaction"]
        target = _str(reaction.get("mid"))
        if target:
            emoji = reaction.get("emoji") or reaction.get("reaction") or ""
            action = reaction.get("action")
            value = "" if action == "unreact" else str(emoji)
            out.events.append(Event("reaction", target, sender_id, value, at))
        return
    elif isinstance(item.get("delivery"), dict):
        for target in _list(item["delivery"].get("mids"), f"{kind} delivery.mids"):
            if (pmid := _str(target)) is not None:
                out.events.append(Event("status", pmid, sender_id, "delivered", at))
        return
    elif isinstance(item.get("read"), dict):
        read = item["read"]
        target = _str(read.get("mid"))
        watermark = _ts(read.get("watermark"), at)
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
            text=_clip(text),
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
                return _location_text(
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
        str(message)[:_MAX_REASON_LEN] if isinstance(message, str) else "",
    )


def interpret_response(
    status: int, body: bytes, retry_after_header: str | None, *, product: str
) -> SendOutcome:
    """Map one Graph API answer onto Delivered / RetryLater / PermanentFailure.

    WhatsApp answers ``{"messages": [{"id": "wamid..."}]}``; Messenger and Instagram
    ``{"recipient_id", "message_id"}``. Errors keep Meta's code in the reason so an operator
    reading the dead letters sees ``131047`` rather than a bare 400.
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
    code, sub, message = graph_error(body)
    reason = f"{product} {status}"
    if code is not None:
        reason += f" code {code}" + (f"/{sub}" if sub is not None else "")
    if message:
        reason += f": {message}"
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
