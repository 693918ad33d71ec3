"""Two merchants' messages with the same platform message id are two records.

Message records share one table, and inbound ids were ``in:{channel}:{message}``: on a channel
id every merchant shares (the built-in webchat and playground channels), the same message id
from two merchants named one record, so the second merchant's message was refused as a
duplicate key and never reached its history. The projector here writes through the real
record store (SQLite) the way the conversation hosts do.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from connectors.webchat import CHANNEL_ID, history_frame
from engine.adapters.records import Records
from engine.adapters.repositories import sqlite_repositories
from engine.adapters.secrets import SecretBox
from engine.domain.conversation import ConversationState, TurnResult
from engine.domain.messages import InboundMessage
from engine.services.hosting import CommittedTurn
from engine.services.projections import TurnProjector


class NoLive:
    async def publish(self, merchant_id: str, kind: str, data: dict[str, Any]) -> bool:
        return True


def _turn(merchant_id: str, text: str) -> CommittedTurn:
    heard = InboundMessage(merchant_id, CHANNEL_ID, "webchat", "c1", "wc-c1-1", text, time.time())
    state = ConversationState(merchant_id, CHANNEL_ID, "c1")
    return CommittedTurn(heard, TurnResult(state, None, heard=(heard,)), [], 0.01, time.time())


async def test_the_same_message_id_in_two_merchants_is_two_records(tmp_path: Path) -> None:
    repos = sqlite_repositories(tmp_path / "records.sqlite3")
    records = Records(repos, SecretBox(Fernet.generate_key().decode()))
    await records.ensure_indexes()
    projector = TurnProjector(records, NoLive())
    try:
        a, b = _turn("m_a", "where is my order?"), _turn("m_b", "do you ship to Jeddah?")
        await projector.project(a)
        await projector.project(b)
        await projector.project(a)  # a replayed turn still overwrites its own record
        for turn, text in ((a, "where is my order?"), (b, "do you ship to Jeddah?")):
            m = turn.message
            page = await repos.messages.page(
                m.merchant_id, m.conversation_key, limit=10, after=None
            )
            assert [d["text"] for d in page.items] == [text]
            # The widget still gets back the id it chose for the message.
            assert [i["id"] for i in history_frame(page.items, False)["messages"]] == ["1"]
    finally:
        await repos.close()
