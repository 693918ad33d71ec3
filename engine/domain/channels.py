"""A connected channel: the record every channel kind's input and output halves read.

Kinds differ in which of these they use (``connectors/registry.py`` is the list of kinds); the
record is one flat shape so it crosses processes and the repositories unchanged. Secrets are
decrypted only in process memory and never printed (``repr=False``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Channel:
    """``account_id`` is the platform-side id the channel sends as: the WhatsApp phone number
    id, the Facebook page id or the Instagram account id (empty for Telegram)."""

    id: str
    merchant_id: str
    kind: str
    api_base: str
    bot_token: str = field(default="", repr=False)
    secret_token: str = field(default="", repr=False)
    access_token: str = field(default="", repr=False)
    app_secret: str = field(default="", repr=False)
    verify_token: str = field(default="", repr=False)
    account_id: str = ""
    api_version: str = ""
    template_name: str = ""
    template_language: str = ""
