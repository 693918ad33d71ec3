"""Channel secrets are encrypted at rest with a key from the environment (Fernet: AES + HMAC).

The embedded default generates a key once and keeps it in the data directory (mode 0600), so a
local restart can still read its own channels; production sets ``KALEEM_SECRET_KEY``.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from engine.domain.identity import hash_api_key, new_api_key

__all__ = [
    "SecretBox",
    "constant_time_equal",
    "hash_api_key",
    "load_or_create_key",
    "mask",
    "new_api_key",
]


class SecretBox:
    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode() if isinstance(key, str) else key)

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("secret cannot be decrypted with the configured key") from exc


def load_or_create_key(configured: str, data_dir: Path) -> str:
    if configured:
        return configured
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def mask(secret: str) -> str:
    """Enough to tell two secrets apart, never enough to guess one: the last 4 characters of
    a long secret (20+), nothing of a short one (6 of a 9-character secret was most of it)."""
    return ("…" + secret[-4:]) if len(secret) >= 20 else "…"
