"""What every ``kaleem`` admin command shares: settings from the flags, the operator token and
one HTTP call to a running engine, with errors as clear one-line CLI errors."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import aiohttp

from engine.config import Settings


class CliError(Exception):
    pass


def settings_from(args: argparse.Namespace) -> Settings:
    s = Settings.from_env()
    overrides: dict[str, Any] = {}
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["port"] = args.port
    if getattr(args, "role", None):
        overrides["role"] = args.role
    if getattr(args, "data_dir", None):
        data_dir = Path(args.data_dir).expanduser()
        overrides["data_dir"] = data_dir
        if s.models_dir == Path(".kaleem/models"):
            overrides["models_dir"] = data_dir / "models"
    return s.with_overrides(**overrides) if overrides else s


def operator_token(settings: Settings) -> str:
    if settings.admin_token:
        return settings.admin_token
    path = settings.data_dir / "admin.token"
    if path.exists():
        return path.read_text().strip()
    raise CliError("no operator token: set KALEEM_ADMIN_TOKEN (or run `kaleem serve` first)")


async def request(
    method: str,
    url: str,
    token: str,
    *,
    json_body: Any = None,
    data: bytes | None = None,
    content_type: str | None = None,
    merchant: str | None = None,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    if merchant:
        headers["X-Kaleem-Merchant"] = merchant
    if content_type:
        headers["Content-Type"] = content_type
    async with aiohttp.ClientSession() as session:
        try:
            async with session.request(
                method, url, json=json_body, data=data, headers=headers
            ) as resp:
                body = await resp.json(content_type=None)
                if resp.status >= 400:
                    detail = (
                        body.get("detail") or body.get("title") if isinstance(body, dict) else body
                    )
                    raise CliError(f"{method} {url} → {resp.status}: {detail}")
                return dict(body)
        except aiohttp.ClientConnectionError as exc:
            raise CliError(f"cannot reach the engine at {url}: {exc}") from exc
