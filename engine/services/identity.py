"""A merchant's team: inviting users, changing and removing them, API keys.

Every change of who holds which role ends what the old grant allowed at once: the user's
sessions (refresh tokens and the live sockets that rode on them) or the key's cache entry and
sockets, through the :class:`Sessions` port. Granting follows ``engine.domain.identity``:
never above one's own rank, owners only by an owner, and an account keeps one owner.
"""

from __future__ import annotations

from typing import Protocol

from engine.domain.identity import (
    INVITE_TTL_S,
    hash_api_key,
    masked_key,
    may_grant,
    new_api_key,
    new_id,
    new_invite,
)
from engine.services.ports import Document
from engine.services.repositories import Repositories


class NotAllowed(Exception):
    """The caller's role may not grant (or take away) this role."""

    def __init__(self, granter: str, role: str) -> None:
        super().__init__(f"a {granter} cannot grant the {role} role")


class LastOwner(Exception):
    """The change would leave the merchant without an owner."""


class Sessions(Protocol):
    async def end_user(self, merchant_id: str, user_id: str) -> None:
        """End the user's sessions and live sockets (its role or account changed)."""
        ...

    async def end_key(self, merchant_id: str, key_id: str, key_hash: str) -> None:
        """Stop honouring an API key at once (caches, live sockets)."""
        ...


class Team:
    def __init__(self, repos: Repositories, sessions: Sessions) -> None:
        self._repos = repos
        self._sessions = sessions

    async def invite(
        self, merchant_id: str, granter: str, *, email: str, role: str, by: str, now: float
    ) -> tuple[Document, str]:
        """The invited user (no password yet) and the invitation token, shown once.
        Raises ``DuplicateKey`` when the e-mail has an account."""
        _check_grant(granter, role)
        token, token_hash = new_invite()
        doc: Document = {
            "_id": new_id("u"),
            "merchant_id": merchant_id,
            "email": email.lower(),
            "password_hash": None,
            "role": role,
            "invite_hash": token_hash,
            "invite_expires": now + INVITE_TTL_S,
            "invited_by": by,
            "created_at": now,
        }
        await self._repos.users.create(doc)
        return doc, token

    async def change_role(
        self, merchant_id: str, granter: str, user: Document, role: str
    ) -> Document:
        _check_grant(granter, role)
        _check_grant(granter, str(user["role"]))
        if user["role"] == "owner" and role != "owner":
            await self._keep_an_owner(merchant_id)
        await self._repos.users.set_role(merchant_id, str(user["_id"]), role)
        await self._sessions.end_user(merchant_id, str(user["_id"]))
        return {**user, "role": role}

    async def remove(self, merchant_id: str, granter: str, user: Document) -> None:
        _check_grant(granter, str(user["role"]))
        if user["role"] == "owner":
            await self._keep_an_owner(merchant_id)
        await self._repos.users.delete(merchant_id, str(user["_id"]))
        await self._sessions.end_user(merchant_id, str(user["_id"]))

    async def create_key(
        self, merchant_id: str, granter: str, *, name: str, role: str, now: float
    ) -> tuple[Document, str]:
        """The key's record and the key itself, shown once (only its hash is stored)."""
        _check_grant(granter, role)
        key = new_api_key()
        doc: Document = {
            "_id": new_id("key"),
            "merchant_id": merchant_id,
            "name": name,
            "role": role,
            "key_hash": hash_api_key(key),
            "masked": masked_key(key),
            "created_at": now,
            "revoked_at": None,
        }
        await self._repos.api_keys.create(doc)
        return doc, key

    async def revoke_key(self, merchant_id: str, key_id: str, now: float) -> Document | None:
        doc = await self._repos.api_keys.revoke(merchant_id, key_id, now)
        if doc is not None:
            await self._sessions.end_key(merchant_id, str(doc["_id"]), str(doc["key_hash"]))
        return doc

    async def _keep_an_owner(self, merchant_id: str) -> None:
        if await self._repos.users.count_owners(merchant_id) <= 1:
            raise LastOwner("a merchant keeps at least one owner")


def _check_grant(granter: str, role: str) -> None:
    if not may_grant(granter, role):
        raise NotAllowed(granter, role)
