"""Start-up check that an external Redis (``REDIS_URL``) fsyncs what it acknowledges.

Intake acknowledges a webhook once Redis answered its append; that is only "on disk" when the
server runs ``appendonly yes`` with ``appendfsync always`` (Redis writes and fsyncs the AOF in
the event-loop pass that executed the command, before it sends any reply). With ``everysec``
an answered write can sit in the page cache for a second or more (an outside review lost 3 of
151 acknowledged Telegram updates that way). ``WAITAOF`` (Redis >= 7.2) is not a way around
it for this engine: under ``everysec`` it would hold each acknowledgement until the next
once-a-second fsync.

Policy (``KALEEM_REDIS_DURABILITY``): ``require`` (default) refuses to start with a clear error
naming the setting to change; ``warn`` logs the same text and starts. A server that hides
``CONFIG`` (some managed services) cannot be verified: ``require`` refuses that too, ``warn``
trusts the operator.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis

from engine.config import ConfigError

log = logging.getLogger(__name__)

__all__ = ["Durability", "check_durability", "probe_durability"]


@dataclass(frozen=True, slots=True)
class Durability:
    appendonly: str | None  # None: the server would not say (CONFIG disabled or renamed)
    appendfsync: str | None
    version: str

    @property
    def durable(self) -> bool:
        return self.appendonly == "yes" and self.appendfsync == "always"

    @property
    def known(self) -> bool:
        return self.appendonly is not None and self.appendfsync is not None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def probe_durability(url: str, timeout_s: float = 5.0) -> Durability:
    """Ask the server (synchronously: called at start-up, before any event loop serves)."""
    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        info = client.info("server")
        version = _text(info.get("redis_version", "?")) if isinstance(info, dict) else "?"
        settings: dict[str, str | None] = {"appendonly": None, "appendfsync": None}
        for name in settings:
            try:
                answer: Any = client.config_get(name)
            except redis.ResponseError:
                continue
            for key, value in dict(answer or {}).items():
                if _text(key) == name:
                    settings[name] = _text(value).lower()
        return Durability(settings["appendonly"], settings["appendfsync"], version)
    finally:
        client.close()


def check_durability(url: str, policy: str) -> Durability:
    """Probe ``url`` and apply ``policy`` ("require" or "warn"); see the module doc."""
    try:
        found = probe_durability(url)
    except redis.RedisError as exc:
        raise ConfigError(f"cannot reach the Redis at REDIS_URL: {exc}") from exc
    if found.durable:
        log.info("redis %s persists with appendonly yes, appendfsync always", found.version)
        return found
    if found.known:
        problem = (
            f"the Redis at REDIS_URL (version {found.version}) runs appendonly "
            f"{found.appendonly}, appendfsync {found.appendfsync}: an acknowledged webhook "
            "could be lost in a crash; configure it with 'appendonly yes' and "
            "'appendfsync always'"
        )
    else:
        problem = (
            f"the Redis at REDIS_URL (version {found.version}) does not show its persistence "
            "settings (CONFIG GET refused), so fsynced acknowledgements cannot be verified"
        )
    if policy == "require":
        raise ConfigError(
            f"{problem} (or set KALEEM_REDIS_DURABILITY=warn to start anyway, accepting the loss)"
        )
    log.warning("%s; starting anyway because KALEEM_REDIS_DURABILITY=warn", problem)
    return found
