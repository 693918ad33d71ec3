"""``kaleem serve --demo``: a bilingual demo store created through the public admin API."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from engine.demo import demo_catalog_bytes, demo_knowledge_bytes


async def seed_demo(base_url: str, admin_token: str, data_dir: Path) -> dict[str, Any]:
    """Idempotent: the demo merchant is created once and remembered in the data dir."""
    state_file = data_dir / "demo.json"
    key_file = data_dir / "demo.api_key"
    console_file = data_dir / "demo.console"
    if state_file.exists() and key_file.exists():
        state = orjson.loads(state_file.read_bytes())
        return {
            "merchant_id": state["merchant_id"],
            "key_file": str(key_file),
            "console_file": str(console_file) if console_file.exists() else None,
        }
    async with aiohttp.ClientSession() as session:
        merchant = await demo_merchant(
            session, base_url, admin_token, "Kaleem Demo Store / متجر كليم"
        )
        auth = {"Authorization": f"Bearer {merchant['api_key']}"}
        login = await _console_user(session, base_url, auth, merchant["id"])
    _private_file(key_file, merchant["api_key"])
    if login is not None:
        _private_file(console_file, "\n".join(login) + "\n")
    state_file.write_bytes(orjson.dumps({"merchant_id": merchant["id"]}))
    return {
        "merchant_id": merchant["id"],
        "key_file": str(key_file),
        "console_file": str(console_file) if login is not None else None,
    }


async def demo_merchant(
    session: aiohttp.ClientSession, base_url: str, admin_token: str, name: str
) -> dict[str, Any]:
    """A merchant (as the operator creates one) with the demo catalog and policies imported
    and indexed; the API's answer, with its ``api_key``."""
    async with session.post(
        f"{base_url}/api/v1/merchants",
        json={"name": name, "default_language": "ar"},
        headers={"Authorization": f"Bearer {admin_token}"},
    ) as resp:
        resp.raise_for_status()
        merchant: dict[str, Any] = await resp.json()
    auth = {"Authorization": f"Bearer {merchant['api_key']}"}
    ndjson = {**auth, "Content-Type": "application/x-ndjson"}
    jobs = []
    for route, data in (
        ("/api/v1/catalog/import", demo_catalog_bytes()),
        ("/api/v1/knowledge/import", demo_knowledge_bytes()),
    ):
        async with session.post(f"{base_url}{route}", data=data, headers=ndjson) as resp:
            resp.raise_for_status()
            jobs.append((await resp.json())["job_id"])
    for job_id in jobs:
        while True:
            async with session.get(f"{base_url}/api/v1/jobs/{job_id}", headers=auth) as resp:
                job = await resp.json()
            if job["status"] != "running":
                break
            await asyncio.sleep(0.3)
    return merchant


async def _console_user(
    session: aiohttp.ClientSession, base_url: str, auth: dict[str, str], merchant_id: str
) -> tuple[str, str] | None:
    """An admin of the demo store for the console (invited and accepted through the API);
    None when the address is taken (a data dir reused with another demo store)."""
    email = f"demo-{merchant_id[2:10]}@kaleem.example"
    password = secrets.token_urlsafe(12)
    async with session.post(
        f"{base_url}/api/v1/users", json={"email": email, "role": "admin"}, headers=auth
    ) as resp:
        if resp.status != 201:
            return None
        invite = (await resp.json())["invite_token"]
    async with session.post(
        f"{base_url}/api/v1/auth/accept-invite",
        json={"invite_token": invite, "password": password},
    ) as resp:
        if resp.status != 200:
            return None
    return email, password


def _private_file(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
