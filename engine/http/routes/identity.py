"""Accounts: signup, login, token rotation, logout, users and roles, API keys, audit, profile."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from engine.adapters.records import new_id
from engine.adapters.redis import invalidation
from engine.domain.identity import invite_hash
from engine.http import live
from engine.http import schemas as s
from engine.http.auth import ROOT_KEY_ID, bearer
from engine.http.context import Api, client_ip, found
from engine.http.paging import keyset, listing
from engine.http.passwords import hash_password, needs_rehash, verify_password
from engine.http.problems import ProblemError
from engine.http.routing import Ctx, Reply
from engine.http.tokens import family_of
from engine.services.identity import LastOwner, NotAllowed
from engine.services.ports import Document, DuplicateKey
from engine.services.settlement import timezone_name


def _user_out(doc: Document) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "email": doc["email"],
        "role": doc["role"],
        "status": "invited" if doc.get("password_hash") is None else "active",
        "created_at": doc.get("created_at", 0.0),
    }


def _tokens(pair: Any) -> dict[str, Any]:
    return {
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
    }


# -- auth ---------------------------------------------------------------------------------
async def signup(ctx: Ctx) -> Reply:
    api = ctx.api
    body: s.SignupIn = ctx.body
    email = body.email.lower()
    if await api.repos.users.by_email(email) is not None:
        raise ProblemError(409, "Conflict", "an account with this email exists; log in instead")
    password_hash = await hash_password(body.password, who=client_ip(ctx.request))
    merchant_id, _ = await api.records.create_merchant(body.merchant_name, body.default_language)
    user_id = new_id("u")
    try:
        await api.repos.users.create(
            {
                "_id": user_id,
                "merchant_id": merchant_id,
                "email": email,
                "password_hash": password_hash,
                "role": "owner",
                "created_at": time.time(),
            }
        )
    except DuplicateKey as exc:  # a concurrent signup with the same email won
        await api.repos.merchants.delete(merchant_id)
        raise ProblemError(409, "Conflict", "an account with this email exists") from exc
    pair = await api.tokens.start(user_id, merchant_id, "owner")
    await api.audit(merchant_id, user_id, "signup", user_id, client_ip(ctx.request))
    return Reply(201, {"merchant_id": merchant_id, "user_id": user_id, **_tokens(pair)})


async def login(ctx: Ctx) -> dict[str, Any]:
    api = ctx.api
    body: s.LoginIn = ctx.body
    email, ip = body.email.lower(), client_ip(ctx.request)
    wait = await api.throttle.check(email, ip)
    if wait:
        raise ProblemError(
            429, "Too many login attempts", f"try again in {wait} s", retry_after=wait
        )
    user = await api.repos.users.by_email(email)
    ok = await verify_password(
        None if user is None else user.get("password_hash"), body.password, who=ip
    )
    if user is None or not ok:
        await api.throttle.failed(email, ip)
        raise ProblemError(401, "Unauthorized", "wrong email or password")
    await api.throttle.succeeded(email, ip)
    await _upgrade_hash(api, user, body.password)
    pair = await api.tokens.start(str(user["_id"]), str(user["merchant_id"]), str(user["role"]))
    await api.audit(str(user["merchant_id"]), str(user["_id"]), "login", None, ip)
    return _tokens(pair)


async def _upgrade_hash(api: Api, user: dict[str, Any], password: str) -> None:
    """Re-make a hash with older parameters while the password is at hand; a busy hasher
    only postpones it to a later login."""
    old = str(user["password_hash"])
    if not needs_rehash(old):
        return
    try:
        new = await hash_password(password)
    except ProblemError:
        return
    await api.repos.users.replace_password_hash(
        str(user["merchant_id"]), str(user["_id"]), old, new
    )


async def refresh(ctx: Ctx) -> dict[str, Any]:
    api = ctx.api
    body: s.RefreshIn = ctx.body
    user_id, merchant_id, family = await api.tokens.rotate(body.refresh_token)
    user = await api.repos.users.get(merchant_id, user_id)
    if user is None or user.get("password_hash") is None:
        raise ProblemError(401, "Unauthorized", "the user no longer exists")
    pair = await api.tokens.continue_family(user_id, merchant_id, str(user["role"]), family)
    return _tokens(pair)


async def logout(ctx: Ctx) -> Reply:
    api = ctx.api
    assert ctx.caller is not None
    if ctx.caller.token_id is None:
        raise ProblemError(400, "Not a user session", "logout needs a user access token")
    await api.tokens.end(ctx.caller, family_of(bearer(ctx.request)))
    await live.revoke(api, ctx.merchant_id, token_id=ctx.caller.token_id)
    return Reply(204, None)


async def accept_invite(ctx: Ctx) -> dict[str, Any]:
    api = ctx.api
    body: s.AcceptInviteIn = ctx.body
    token_hash = invite_hash(body.invite_token)
    user = await api.repos.users.by_invite_hash(token_hash)
    if user is None or float(user.get("invite_expires", 0)) < time.time():
        raise ProblemError(401, "Unauthorized", "invalid or expired invitation")
    password_hash = await hash_password(body.password, who=client_ip(ctx.request))
    if not await api.repos.users.accept_invite(str(user["_id"]), token_hash, password_hash):
        raise ProblemError(401, "Unauthorized", "invalid or expired invitation")
    pair = await api.tokens.start(str(user["_id"]), str(user["merchant_id"]), str(user["role"]))
    return _tokens(pair)


async def me(ctx: Ctx) -> dict[str, Any]:
    assert ctx.caller is not None
    if ctx.caller.user_id is None:
        raise ProblemError(404, "Not found", "API keys and operators have no user profile")
    user = await ctx.api.repos.users.get(ctx.merchant_id, ctx.caller.user_id)
    return _user_out(found(user, "user"))


# -- users ----------------------------------------------------------------------------------
async def _user(ctx: Ctx) -> Document:
    return found(await ctx.api.repos.users.get(ctx.merchant_id, ctx.path["user_id"]), "user")


async def user_exists(ctx: Ctx) -> bool:
    return await ctx.api.repos.users.exists(ctx.merchant_id, ctx.path["user_id"])


@contextlib.contextmanager
def _team_rules() -> Iterator[None]:
    """The team's rules as the API's answers: 403 beyond one's rank, 409 for the last owner."""
    try:
        yield
    except NotAllowed as exc:
        raise ProblemError(403, "Forbidden", str(exc)) from exc
    except LastOwner as exc:
        raise ProblemError(409, "Conflict", str(exc)) from exc


def _role(ctx: Ctx) -> str:
    assert ctx.caller is not None
    return ctx.caller.role


async def list_users(ctx: Ctx) -> dict[str, Any]:
    q: s.PageQuery = ctx.query
    users = await ctx.api.repos.users.page(ctx.merchant_id, limit=q.limit, after=keyset(q.cursor))
    return listing(users, _user_out)


async def invite_user(ctx: Ctx) -> Reply:
    body: s.UserInviteIn = ctx.body
    try:
        with _team_rules():
            doc, token = await ctx.api.team.invite(
                ctx.merchant_id,
                _role(ctx),
                email=body.email,
                role=body.role,
                by=ctx.actor,
                now=time.time(),
            )
    except DuplicateKey as exc:
        raise ProblemError(409, "Conflict", "a user with this email exists") from exc
    await _audit(ctx, "user.invite", str(doc["_id"]))
    return Reply(201, {**_user_out(doc), "invite_token": token})


async def get_user(ctx: Ctx) -> dict[str, Any]:
    return _user_out(await _user(ctx))


async def patch_user(ctx: Ctx) -> dict[str, Any]:
    body: s.UserPatchIn = ctx.body
    with _team_rules():
        user = await ctx.api.team.change_role(
            ctx.merchant_id, _role(ctx), await _user(ctx), body.role
        )
    await _audit(ctx, f"user.role:{body.role}", str(user["_id"]))
    return _user_out(user)


async def delete_user(ctx: Ctx) -> Reply:
    user = await _user(ctx)
    with _team_rules():
        await ctx.api.team.remove(ctx.merchant_id, _role(ctx), user)
    await _audit(ctx, "user.remove", str(user["_id"]))
    return Reply(204, None)


async def _audit(ctx: Ctx, action: str, target: str) -> None:
    await ctx.api.audit(ctx.merchant_id, ctx.actor, action, target, client_ip(ctx.request))


# -- API keys -------------------------------------------------------------------------------
def _key_out(doc: Document) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "name": doc["name"],
        "role": doc["role"],
        "masked": doc["masked"],
        "created_at": doc["created_at"],
        "revoked": bool(doc.get("revoked_at")),
    }


async def create_key(ctx: Ctx) -> Reply:
    body: s.ApiKeyIn = ctx.body
    with _team_rules():
        doc, key = await ctx.api.team.create_key(
            ctx.merchant_id, _role(ctx), name=body.name, role=body.role, now=time.time()
        )
    await _audit(ctx, "api_key.create", str(doc["_id"]))
    return Reply(201, {**_key_out(doc), "api_key": key})


async def list_keys(ctx: Ctx) -> dict[str, Any]:
    q: s.PageQuery = ctx.query
    keys = await ctx.api.repos.api_keys.page(ctx.merchant_id, limit=q.limit, after=keyset(q.cursor))
    return listing(keys, _key_out)


async def key_exists(ctx: Ctx) -> bool:
    return await ctx.api.repos.api_keys.exists(ctx.merchant_id, ctx.path["key_id"])


async def revoke_key(ctx: Ctx) -> Reply:
    doc = await ctx.api.team.revoke_key(ctx.merchant_id, ctx.path["key_id"], time.time())
    await _audit(ctx, "api_key.revoke", str(found(doc, "API key")["_id"]))
    return Reply(204, None)


async def rotate_root_key(ctx: Ctx) -> dict[str, Any]:
    """Owner-only: the root key acts as an admin for every server integration, so a leaked one
    must be replaceable, and the old one must stop working in the same step."""
    api = ctx.api
    rotated = await api.records.rotate_api_key(ctx.merchant_id)
    if rotated is None:
        raise ProblemError(409, "Conflict", "the root key changed meanwhile; try again")
    key, old_hash = rotated
    await api.sessions.end_key(ctx.merchant_id, ROOT_KEY_ID, old_hash)
    await api.audit(
        ctx.merchant_id, ctx.actor, "api_key.rotate_root", ROOT_KEY_ID, client_ip(ctx.request)
    )
    return {"api_key": key, "masked": key[:8] + "…" + key[-4:], "rotated_at": time.time()}


# -- audit and merchant profile -----------------------------------------------------------------
async def list_audit(ctx: Ctx) -> dict[str, Any]:
    q: s.PageQuery = ctx.query
    entries = await ctx.api.repos.audit.page(ctx.merchant_id, limit=q.limit, after=keyset(q.cursor))
    return listing(
        entries,
        lambda d: {
            "id": d["_id"],
            "actor": d["actor"],
            "action": d["action"],
            "target": d.get("target"),
            "at": d["at"],
            "ip": d.get("ip"),
        },
    )


def _merchant_out(doc: Document) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "name": doc["name"],
        "default_language": doc.get("default_language", "ar"),
        "languages": doc.get("languages") or [doc.get("default_language", "ar")],
        "business_hours": doc.get("business_hours"),
        "handoff": doc.get("handoff"),
        "widget_color": doc.get("widget_color"),
        "widget_greeting": doc.get("widget_greeting"),
        "allowed_origins": list(doc.get("allowed_origins") or []),
        "created_at": doc.get("created_at"),
        "timezone": timezone_name(doc),
    }


async def get_merchant(ctx: Ctx) -> dict[str, Any]:
    doc = await ctx.api.records.merchant(ctx.merchant_id)
    if doc is None:
        raise ProblemError(404, "Not found", "no such merchant")
    return _merchant_out(doc)


async def patch_merchant(ctx: Ctx) -> dict[str, Any]:
    api = ctx.api
    body: s.MerchantPatchIn = ctx.body
    sets = body.model_dump(mode="json", exclude_unset=True, exclude_none=True)
    if "allowed_origins" in sets:
        sets["allowed_origins"] = sorted({o.lower().rstrip("/") for o in sets["allowed_origins"]})
    if sets:
        sets["updated_at"] = time.time()
        await api.repos.merchants.update_profile(ctx.merchant_id, sets)
        await invalidation.merchant_changed(api.deps.redis, ctx.merchant_id)
        await api.audit(
            ctx.merchant_id,
            ctx.actor,
            "merchant.update",
            ",".join(sorted(sets)),
            client_ip(ctx.request),
        )
    return await get_merchant(ctx)
