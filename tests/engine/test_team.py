"""The team use case on the real SQLite repositories, with a recording Sessions port."""

from __future__ import annotations

import pytest

from engine.domain.identity import hash_api_key, invite_hash, may_grant
from engine.services.identity import LastOwner, NotAllowed, Team
from engine.services.ports import Document
from engine.services.repositories import Repositories

M = "m_team"


class Ended:
    def __init__(self) -> None:
        self.users: list[str] = []
        self.keys: list[tuple[str, str]] = []

    async def end_user(self, merchant_id: str, user_id: str) -> None:
        self.users.append(user_id)

    async def end_key(self, merchant_id: str, key_id: str, key_hash: str) -> None:
        self.keys.append((key_id, key_hash))


@pytest.fixture
def repos(sqlite_repos: Repositories) -> Repositories:
    return sqlite_repos


async def _owner(repos: Repositories) -> Document:
    doc: Document = {"_id": "u_owner", "merchant_id": M, "email": "o@x", "role": "owner"}
    await repos.users.create({**doc, "password_hash": "h", "created_at": 1.0})
    return doc


def test_granting_stays_within_ones_rank() -> None:
    assert may_grant("owner", "owner") and may_grant("admin", "admin")
    assert not may_grant("admin", "owner") and not may_grant("agent", "admin")
    assert may_grant("agent", "viewer") and not may_grant("viewer", "agent")


async def test_an_invitation_is_stored_as_a_hash_and_shown_once(repos: Repositories) -> None:
    team = Team(repos, Ended())
    doc, token = await team.invite(M, "admin", email="A@Shop.example", role="agent", by="u1", now=5)
    stored = await repos.users.get(M, str(doc["_id"]))
    assert stored is not None and stored["email"] == "a@shop.example"
    assert stored["invite_hash"] == invite_hash(token) and token not in str(stored)
    with pytest.raises(NotAllowed):
        await team.invite(M, "admin", email="b@shop.example", role="owner", by="u1", now=5)


async def test_a_role_change_ends_the_users_sessions_and_keeps_an_owner(
    repos: Repositories,
) -> None:
    ended = Ended()
    team = Team(repos, ended)
    owner = await _owner(repos)
    with pytest.raises(LastOwner):
        await team.change_role(M, "owner", owner, "admin")
    with pytest.raises(LastOwner):
        await team.remove(M, "owner", owner)
    agent, _ = await team.invite(M, "owner", email="g@x", role="agent", by="u", now=1)
    with pytest.raises(NotAllowed):
        await team.change_role(M, "agent", agent, "admin")
    changed = await team.change_role(M, "admin", agent, "viewer")
    assert changed["role"] == "viewer"
    stored = await repos.users.get(M, str(agent["_id"]))
    assert stored is not None and stored["role"] == "viewer"
    await team.remove(M, "admin", changed)
    assert await repos.users.get(M, str(agent["_id"])) is None
    assert ended.users == [agent["_id"], agent["_id"]]


async def test_a_revoked_key_is_forgotten_at_once(repos: Repositories) -> None:
    ended = Ended()
    team = Team(repos, ended)
    doc, key = await team.create_key(M, "admin", name="shop", role="agent", now=1)
    assert doc["key_hash"] == hash_api_key(key) and key not in str(doc)
    assert await team.revoke_key(M, str(doc["_id"]), 2) is not None
    assert ended.keys == [(doc["_id"], hash_api_key(key))]
    with pytest.raises(NotAllowed):
        await team.create_key(M, "agent", name="x", role="admin", now=1)
