"""Webchat session tokens: the server, not the browser, decides who a webchat customer is.

A browser used to name its own customer id on the socket, so anyone who learnt an id could read
that customer's replies. Now ``POST /webchat/{merchant_id}/session`` issues a signed token that
holds the customer id and the merchant, and the socket accepts nothing else. The token is a JWT
(HS256, PyJWT) under a key derived from the engine's at-rest secret with its own label, so it
can never pass as an admin access token (different key, audience and type), and one merchant's
token is refused on another merchant's socket (the merchant is a signed claim).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import jwt

from engine.config import Settings

AUDIENCE = "kaleem-webchat"
TOKEN_TYPE = "webchat"
MAX_TOKEN_CHARS = 1024


def webchat_secret(settings: Settings) -> bytes:
    """Derived from the at-rest key with a label of its own (never the key itself)."""
    base = settings.jwt_secret or settings.secret_key
    return hmac.new(base.encode(), b"kaleem-webchat-session-v1", hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class WebchatSession:
    merchant_id: str
    customer_id: str
    expires_at: int
    token: str


class InvalidSession(Exception):
    """The token is missing, forged, expired or for another merchant: the caller gets 401."""


class WebchatTokens:
    def __init__(self, secret: bytes, ttl_s: int) -> None:
        self._secret = secret
        self._ttl = ttl_s

    def issue(self, merchant_id: str, customer_id: str | None = None) -> WebchatSession:
        """A fresh session; ``customer_id`` is kept when renewing a valid token."""
        customer = customer_id or "w" + secrets.token_hex(12)
        now = int(time.time())
        exp = now + self._ttl
        claims = {
            "sub": customer,
            "mid": merchant_id,
            "aud": AUDIENCE,
            "typ": TOKEN_TYPE,
            "iat": now,
            "exp": exp,
        }
        token = jwt.encode(claims, self._secret, algorithm="HS256")
        return WebchatSession(merchant_id, customer, exp, token)

    def verify(self, token: str, merchant_id: str) -> WebchatSession:
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise InvalidSession("a webchat session token is required")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                audience=AUDIENCE,
                options={"require": ["sub", "mid", "exp", "typ"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidSession("the session expired; ask for a new one") from exc
        except jwt.PyJWTError as exc:
            raise InvalidSession("invalid session token") from exc
        if claims.get("typ") != TOKEN_TYPE or not hmac.compare_digest(
            str(claims.get("mid")), merchant_id
        ):
            raise InvalidSession("invalid session token")
        return WebchatSession(merchant_id, str(claims["sub"]), int(claims["exp"]), token)
