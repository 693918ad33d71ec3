"""Who may do what in a merchant's account: roles, the granting rule, credential shapes.

Pure: the rules the API, the console and the tests share. A role ranks above the ones it may
grant; only an owner makes owners, and an account always keeps one owner.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final, Literal

Role = Literal["owner", "admin", "agent", "viewer"]
ROLES: Final[tuple[Role, ...]] = ("owner", "admin", "agent", "viewer")
RANK: Final[dict[str, int]] = {"viewer": 0, "agent": 1, "admin": 2, "owner": 3}
INVITE_TTL_S: Final = 7 * 24 * 3600


def may_grant(granter: str, role: str) -> bool:
    """A caller may hand out (or take away) ``role`` only up to its own rank; owners only
    by an owner (an admin could otherwise promote itself through a second account)."""
    if role == "owner":
        return granter == "owner"
    return RANK.get(role, 99) <= RANK.get(granter, -1)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def new_api_key() -> str:
    return "kal_" + secrets.token_urlsafe(32)


def hash_api_key(api_key: str) -> str:
    """API keys are stored only as hashes; a leaked database does not leak keys."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def masked_key(api_key: str) -> str:
    """What a listing shows of a key: enough to tell keys apart, never enough to use one."""
    return api_key[:8] + "…" + api_key[-4:]


def new_invite() -> tuple[str, str]:
    """An invitation token (shown once, to the inviter) and the hash that is stored."""
    token = "inv_" + secrets.token_urlsafe(32)
    return token, invite_hash(token)


def invite_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
