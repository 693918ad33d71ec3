"""A host's turn records share commits: conversations side by side, each in commit order.

One turn is four record writes (message, summary, reply, summary), each awaited before the
next. Recorded one turn at a time, a host committed (and fsynced) four times a turn, on the
disk the inbox's fsyncs share. Written through the real record store (SQLite) the way the
conversation hosts write: a backlog of turns of many conversations commits in a handful of
transactions, and every conversation still reads in its own order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from engine.adapters.records import Records
from engine.adapters.repositories import SCHEMA, build_repositories
from engine.adapters.secrets import SecretBox
from engine.adapters.sqlite import SqliteTables
from engine.domain.conversation import ConversationState, TurnResult, conversation_id
from engine.domain.messages import InboundMessage, OutboundReply
from engine.services.hosting import CommittedTurn
from engine.services.projections import TurnProjector

CONVERSATIONS, TURNS = 12, 3


class Live:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    async def publish(self, merchant_id: str, kind: str, data: dict[str, Any]) -> bool:
        self.events.append((merchant_id, kind, data))
        return True


def _turn(customer: str, n: int) -> CommittedTurn:
    at = 1_800_000_000.0 + n
    heard = InboundMessage(
        "m_a", "ch_1", "telegram", customer, f"{customer}-{n}", f"question {n}", at
    )
    reply = OutboundReply(
        f"r-{customer}-{n}",
        "m_a",
        "ch_1",
        "telegram",
        customer,
        f"answer {n} to {customer}",
        "faq",
        False,
        (heard.message_id,),
        at,
    )
    state = ConversationState("m_a", "ch_1", customer)
    return CommittedTurn(heard, TurnResult(state, reply, heard=(heard,)), [], 0.01, at + 0.5)


async def test_a_backlog_of_turns_commits_together_and_in_order(tmp_path: Path) -> None:
    tables = SqliteTables(tmp_path / "records.sqlite3", SCHEMA)
    repos = build_repositories(tables)
    records = Records(repos, SecretBox(Fernet.generate_key().decode()))
    await records.ensure_indexes()
    live = Live()
    projector = TurnProjector(records, live)
    customers = [f"c{i}" for i in range(CONVERSATIONS)]
    try:
        for n in range(TURNS):  # the host committed these while the writer was behind
            for customer in customers:
                await projector(_turn(customer, n))
        before = tables.commits
        projector.start()
        await projector.stop(timeout_s=30)
        commits = tables.commits - before
        turns = CONVERSATIONS * TURNS
        # One turn at a time this was 4 commits a turn (144 here); together it is a few per
        # step of the longest conversation (the writer may start on a step's first write
        # before the rest arrive): fewer commits than turns.
        assert 0 < commits < turns, commits
        for customer in customers:
            key = f"m_a:ch_1:{customer}"
            page = await repos.messages.page("m_a", key, limit=50, after=None)
            texts = sorted((d["at"], d["direction"], d["text"]) for d in page.items)
            assert [t[2] for t in texts] == [
                text
                for n in range(TURNS)
                for text in (f"question {n}", f"answer {n} to {customer}")
            ]
            summary = await repos.conversations.get("m_a", conversation_id(key))
            assert summary is not None
            assert summary["message_count"] == 2 * TURNS
            assert summary["last_text"] == f"answer {TURNS - 1} to {customer}"
        created = [e for e in live.events if e[1] == "message.created"]
        assert len(created) == 2 * turns
    finally:
        await repos.close()
