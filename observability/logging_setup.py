"""JSON-lines logging (orjson), configured once in every process (gateway and each actor).

Each line carries ``trace_id``/``span_id`` of the current span (so Loki lines jump to Tempo
traces), ``merchant_id`` when the code runs on behalf of one merchant (set by
``observability.tracing.span(..., merchant_id=...)`` or passed with ``extra=``) and the
``service`` name. Structured fields come from ``extra=``; the engine never logs customer message
text at info level.

Redaction is the last line of defence, not the policy: the engine does not log secrets, but an
exception text or a third-party library might quote a URL (a Telegram URL contains the bot
token) or a header. Every formatted line passes through :func:`redact`, which masks
secret-shaped values: Telegram bot tokens, Kaleem API keys, bearer credentials, JWTs, Meta
access tokens and Fernet ciphertexts.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

import orjson

from observability.tracing import MERCHANT_ID, current_ids

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {
    "message",
    "asctime",
}

MASK = "[redacted]"
_SECRETS = re.compile(
    r"|".join(
        (
            r"\d{5,}:[A-Za-z0-9_-]{30,}",  # Telegram bot token (also inside /bot<token>/ URLs)
            r"kal_[A-Za-z0-9_-]{16,}",  # Kaleem merchant API key
            r"(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}",  # Authorization: Bearer …
            r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",  # JWT
            r"EAA[A-Za-z0-9]{20,}",  # Meta Graph access token
            r"gAAAAA[A-Za-z0-9_=-]{20,}",  # Fernet token (an encrypted secret)
        )
    )
)


def redact(text: str) -> str:
    """Mask secret-shaped values; cheap when there are none (one regex scan)."""
    return _SECRETS.sub(MASK, text)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str = "") -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self._service:
            data["service"] = self._service
        ids = current_ids()
        if ids is not None:
            data["trace_id"], data["span_id"] = ids
        merchant_id = MERCHANT_ID.get()
        if merchant_id is not None:
            data["merchant_id"] = merchant_id
        for k, v in record.__dict__.items():
            if k not in _STANDARD and not k.startswith("_"):
                data[k] = v
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exc"] = record.exc_text
        return redact(orjson.dumps(data, default=str).decode())


class TextFormatter(logging.Formatter):
    """Human-readable lines (``KALEEM_LOG_JSON=0``), redacted the same way."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        merchant_id = MERCHANT_ID.get()
        if merchant_id is not None:
            line += f" merchant_id={merchant_id}"
        ids = current_ids()
        if ids is not None:
            line += f" trace_id={ids[0]} span_id={ids[1]}"
        return redact(line)


def configure(level: str = "INFO", json_lines: bool = True, service: str = "") -> None:
    """Replace the root handlers with one stderr handler (Ray ships worker stderr to its log
    files and, with ``log_to_driver``, to the driver)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if json_lines else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiohttp.access",):
        logging.getLogger(noisy).setLevel(logging.WARNING)
