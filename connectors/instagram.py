"""Instagram messaging output: the Messenger Send API shape with Instagram's limits.

Instagram caps a text message at 1,000 bytes of UTF-8 (not characters): an Arabic answer of
600 letters is already over, so texts are split by encoded size.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final, Literal

from pydantic import Field, model_validator

from connectors import messenger
from connectors.base import DIGITS, ConnectIn, ProviderCall
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


class InstagramConnectIn(messenger.PageConnectIn):
    """The Instagram account id (``ig_user_id``) or the page it is linked to (``page_id``)."""

    kind: Literal["instagram"]
    ig_user_id: str | None = Field(default=None, pattern=DIGITS)

    @model_validator(mode="before")
    @classmethod
    def _account_id(cls, data: Any) -> Any:
        """An ``ig_user_id`` alone stands in for ``page_id``; neither is "page_id required"."""
        if isinstance(data, dict) and data.get("ig_user_id") and "page_id" not in data:
            return {**data, "page_id": data["ig_user_id"]}
        return data

    def account(self) -> tuple[str, str]:
        if self.ig_user_id:
            return "ig_user_id", self.ig_user_id
        return super().account()


class Instagram(messenger.Messenger):
    kind: ClassVar[str] = CHANNEL_KIND
    connect: ClassVar[type[ConnectIn] | None] = InstagramConnectIn
    api_hosts: ClassVar[tuple[str, ...]] = ("graph.facebook.com", "graph.instagram.com")
    text_split: ClassVar[messenger.Splitter] = split_utf8


KIND: Final = Instagram()
