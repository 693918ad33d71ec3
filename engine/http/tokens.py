"""Access JWTs (15 min), rotating refresh tokens (7 days) and the logout blacklist, on Redis.

Why Redis: every replica must see a logout or a revoked family at once, and every record here
expires on its own (TTL = the token's remaining life), so nothing needs sweeping.

Refresh tokens are opaque random strings stored only as hashes. Each login starts a *family*;
``rotate`` consumes a token exactly once (SET NX inside one Lua script) and issues the next in
the same family. Presenting an already-rotated token means it leaked: the whole family is
revoked, which also invalidates every access token minted from it.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import jwt
import orjson
import redis.asyncio as aioredis

from engine.adapters.redis import keys
from engine.http.auth import Caller
from engine.http.problems import ProblemError

ACCESS_TTL_S = 15 * 60
REFRESH_TTL_S = 7 * 24 * 3600
ISSUER = "kaleem"

_ROTATE_LUA = """
local rec = redis.call('GET', KEYS[1])
if not rec then return 'missing' end
local fam = cjson.decode(rec)['fam']
local famkey = ARGV[1] .. fam
if redis.call('GET', famkey) ~= 'ok' then return 'revoked' end
if redis.call('SET', KEYS[1] .. ':used', '1', 'NX', 'EX', ARGV[2]) then return rec end
redis.call('SET', famkey, 'revoked', 'EX', ARGV[2])
return 'reuse'
"""


def _h(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def family_key(family: str) -> str:
    return keys.token_family(family)


def blacklist_key(jti: str) -> str:
    return keys.token_blacklist(jti)


def epoch_key(user_id: str) -> str:
    """Tokens issued before this time are void (role change, user removed)."""
    return keys.token_epoch(user_id)


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int = ACCESS_TTL_S


class TokenService:
    def __init__(self, redis: aioredis.Redis, secret: str) -> None:
        self._redis = redis
        self._secret = secret
        self._rotate = redis.register_script(_ROTATE_LUA)

    # -- access tokens ------------------------------------------------------------------------
    def _access(self, user_id: str, merchant_id: str, role: str, family: str) -> str:
        issued = time.time()  # sub-second iat: a token minted right after a role change counts
        now = int(issued)
        claims = {
            "iss": ISSUER,
            "sub": user_id,
            "mid": merchant_id,
            "role": role,
            "fam": family,
            "jti": secrets.token_hex(12),
            "iat": issued,
            "exp": now + ACCESS_TTL_S,
            "typ": "access",
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def looks_like(self, token: str) -> bool:
        return token.count(".") == 2 and token.startswith("eyJ")

    async def verify(self, token: str) -> Caller:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "mid", "role", "jti", "fam"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise ProblemError(401, "Unauthorized", "the access token has expired") from exc
        except jwt.PyJWTError as exc:
            raise ProblemError(401, "Unauthorized", "invalid access token") from exc
        if claims.get("typ") != "access":
            raise ProblemError(401, "Unauthorized", "not an access token")
        banned, family, epoch = await self._redis.mget(
            blacklist_key(claims["jti"]), family_key(claims["fam"]), epoch_key(claims["sub"])
        )
        fam_ok = family is not None and (family == b"ok" or family == "ok")
        if banned is not None or not fam_ok:
            raise ProblemError(401, "Unauthorized", "the session has ended")
        if epoch is not None and float(claims["iat"]) < float(epoch):
            raise ProblemError(401, "Unauthorized", "the session has ended")
        return Caller(
            str(claims["mid"]),
            role=str(claims["role"]),
            user_id=str(claims["sub"]),
            token_id=str(claims["jti"]),
            token_exp=float(claims["exp"]),
        )

    # -- sessions -----------------------------------------------------------------------------
    async def start(self, user_id: str, merchant_id: str, role: str) -> TokenPair:
        family = secrets.token_hex(12)
        await self._redis.set(family_key(family), "ok", ex=REFRESH_TTL_S)
        return await self._issue(user_id, merchant_id, role, family)

    async def _issue(self, user_id: str, merchant_id: str, role: str, family: str) -> TokenPair:
        refresh = "rt_" + secrets.token_urlsafe(32)
        record = orjson.dumps({"uid": user_id, "mid": merchant_id, "fam": family})
        await self._redis.set(keys.refresh_token(_h(refresh)), record, ex=REFRESH_TTL_S)
        return TokenPair(self._access(user_id, merchant_id, role, family), refresh)

    async def rotate(self, refresh_token: str) -> tuple[str, str, str]:
        """Consume a refresh token: ``(user_id, merchant_id, family)`` or 401."""
        result = await self._rotate(
            keys=[keys.refresh_token(_h(refresh_token))],
            args=[keys.token_family(""), REFRESH_TTL_S],
        )
        text = result.decode() if isinstance(result, bytes) else str(result)
        if text == "reuse":
            raise ProblemError(
                401, "Unauthorized", "refresh token reused: every session of this login ended"
            )
        if text in {"missing", "revoked"}:
            raise ProblemError(401, "Unauthorized", "invalid or expired refresh token")
        data = orjson.loads(text)
        return str(data["uid"]), str(data["mid"]), str(data["fam"])

    async def continue_family(
        self, user_id: str, merchant_id: str, role: str, family: str
    ) -> TokenPair:
        return await self._issue(user_id, merchant_id, role, family)

    async def end(self, caller: Caller, family: str | None = None) -> None:
        """Logout: blacklist this access token until it would expire anyway."""
        if caller.token_id:
            ttl = max(1, int(caller.token_exp - time.time()) + 1)
            await self._redis.set(blacklist_key(caller.token_id), "1", ex=ttl)
        if family:
            await self._redis.set(family_key(family), "revoked", ex=REFRESH_TTL_S)

    async def void_user(self, user_id: str) -> None:
        """Role changed or user removed: tokens issued before now stop working."""
        await self._redis.set(epoch_key(user_id), str(time.time()), ex=REFRESH_TTL_S)


def family_of(token: str) -> str | None:
    """The family claim of an access token already verified by ``TokenService.verify``."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    fam = claims.get("fam")
    return str(fam) if fam else None
