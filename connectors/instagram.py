"""Instagram messaging output: the Messenger Send API shape with Instagram's limits.

Instagram caps a text message at 1,000 bytes of UTF-8 (not characters): an Arabic answer of
600 letters is already over, so texts are split by encoded size.
"""

from __future__ import annotations

from typing import Final

from connectors import messenger
from connectors.base import ProviderCall
from connectors.telegram import split_text
from engine.domain.messages import OutboundReply

CHANNEL_KIND: Final = "instagram"
MAX_TEXT_BYTES: Final = 1000


def split_utf8(text: str, max_bytes: int = MAX_TEXT_BYTES) -> list[str]:
    """Chunks of at most ``max_bytes`` UTF-8 bytes, cut at the same boundaries as Telegram's."""
    limit = max_bytes
    while True:
        chunks = split_text(text, limit)
        if all(len(c.encode("utf-8")) <= max_bytes for c in chunks) or limit <= 8:
            return chunks
        limit = max(8, int(limit * 0.7))


def build_messages(
    api_base: str,
    api_version: str,
    ig_user_id: str,
    page_access_token: str,
    reply: OutboundReply,
    *,
    tag: str | None = None,
) -> list[ProviderCall]:
    return messenger.build_messages(
        api_base, api_version, ig_user_id, page_access_token, reply, tag=tag, split=split_utf8
    )
