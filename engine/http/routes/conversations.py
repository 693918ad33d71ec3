"""The agents' inbox: conversations, their messages, assignment, labels, notes, agent replies.

An agent reply goes out exactly like the bot's: an ``OutboundReply`` appended to the channel's
outbox stream, so the delivery workers (rate limits, retries, dead letters) handle it the same.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from engine.http import live
from engine.http import schemas as s
from engine.http.context import Api, found
from engine.http.paging import keyset, listing
from engine.http.problems import ProblemError
from engine.http.routing import Ctx, Reply
from engine.services.ports import Document
from engine.services.repositories import ConversationFilter

MAX_NOTES = 200


def conversation_out(doc: Document) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "channel_id": doc.get("channel_id", ""),
        "customer_id": doc.get("customer_id", ""),
        "status": doc.get("status") or "open",
        "assignee": doc.get("assignee"),
        "labels": list(doc.get("labels") or []),
        "paused": bool(doc.get("paused")),
        "last_message_at": doc.get("last_message_at"),
        "last_text": doc.get("last_text"),
        "message_count": int(doc.get("message_count") or 0),
        "created_at": doc.get("created_at"),
    }


async def _conversation(ctx: Ctx) -> Document:
    conv = await ctx.api.repos.conversations.get(ctx.merchant_id, ctx.path["conversation_id"])
    return found(conv, "conversation")


async def conversation_exists(ctx: Ctx) -> bool:
    return await ctx.api.repos.conversations.exists(ctx.merchant_id, ctx.path["conversation_id"])


async def list_conversations(ctx: Ctx) -> dict[str, Any]:
    q: s.ConversationQuery = ctx.query
    filters = ConversationFilter(
        channel_id=q.channel, status=q.status, assignee=q.assignee, label=q.label, text=q.q
    )
    conversations = await ctx.api.repos.conversations.page(
        ctx.merchant_id, filters, limit=q.limit, after=keyset(q.cursor)
    )
    return listing(conversations, conversation_out)


async def get_conversation(ctx: Ctx) -> dict[str, Any]:
    return conversation_out(await _conversation(ctx))


async def list_messages(ctx: Ctx) -> dict[str, Any]:
    q: s.PageQuery = ctx.query
    conv = await _conversation(ctx)
    messages = await ctx.api.repos.messages.page(
        ctx.merchant_id, str(conv["conversation_key"]), limit=q.limit, after=keyset(q.cursor)
    )
    return listing(
        messages,
        lambda d: {
            "id": d["_id"],
            "direction": d.get("direction", "in"),
            "text": d.get("text", ""),
            "at": d.get("at", 0.0),
            "intent": d.get("intent"),
            "author": d.get("author"),
            "handoff": d.get("handoff"),
            "answered": d.get("answered", True) if d.get("direction", "in") == "in" else None,
            "products": d.get("products") or None,
        },
    )


async def patch_conversation(ctx: Ctx) -> dict[str, Any]:
    body: s.ConversationPatchIn = ctx.body
    sets: Document = {**body.model_dump(exclude_unset=True), "updated_at": time.time()}
    if "labels" in sets and sets["labels"] is not None:
        sets["labels"] = sorted(set(sets["labels"]))
    doc = await ctx.api.repos.conversations.update(
        ctx.merchant_id, ctx.path["conversation_id"], sets
    )
    out = conversation_out(found(doc, "conversation"))
    await live.publish(ctx.api, ctx.merchant_id, "conversation.updated", out)
    return out


async def _set(ctx: Ctx, sets: Document) -> dict[str, Any]:
    doc = await ctx.api.repos.conversations.update(
        ctx.merchant_id, ctx.path["conversation_id"], {**sets, "updated_at": time.time()}
    )
    out = conversation_out(found(doc, "conversation"))
    await live.publish(ctx.api, ctx.merchant_id, "conversation.updated", out)
    return out


async def channel_kind(api: Api, merchant_id: str, channel_id: str) -> str:
    kind = await api.records.channel_kind(merchant_id, channel_id)
    if kind is None:
        raise ProblemError(409, "Channel gone", "the conversation's channel no longer exists")
    return kind


async def _pause_bot(ctx: Ctx, conv: Document, paused: bool) -> None:
    api = ctx.api
    kind = await channel_kind(api, ctx.merchant_id, str(conv.get("channel_id") or ""))
    await api.staff.pause(ctx.merchant_id, conv, kind, paused)


async def takeover(ctx: Ctx) -> dict[str, Any]:
    """An agent takes the conversation: assigned to them; the bot stops answering."""
    conv = await _conversation(ctx)
    await _pause_bot(ctx, conv, True)
    return await _set(ctx, {"paused": True, "assignee": ctx.actor, "status": "pending"})


async def hand_back(ctx: Ctx) -> dict[str, Any]:
    conv = await _conversation(ctx)
    await _pause_bot(ctx, conv, False)
    return await _set(ctx, {"paused": False, "status": "open"})


async def resolve(ctx: Ctx) -> dict[str, Any]:
    conv = await _conversation(ctx)
    if conv.get("paused"):
        await _pause_bot(ctx, conv, False)
    return await _set(ctx, {"paused": False, "status": "resolved"})


async def agent_reply(ctx: Ctx) -> Reply:
    api = ctx.api
    body: s.AgentReplyIn = ctx.body
    conv = await _conversation(ctx)
    kind = await channel_kind(api, ctx.merchant_id, str(conv.get("channel_id") or ""))
    message = await api.staff.reply(ctx.merchant_id, conv, kind, body.text, ctx.actor)
    out = {k: message[k] for k in ("direction", "text", "at", "intent", "author", "handoff")}
    created = {"id": message["_id"], **out}
    await live.publish(
        api, ctx.merchant_id, "message.created", {"conversation_id": conv["_id"], **created}
    )
    return Reply(201, created)


async def add_note(ctx: Ctx) -> Reply:
    body: s.NoteIn = ctx.body
    await _conversation(ctx)
    note = {
        "_id": f"note_{int(time.time() * 1000):013d}_{secrets.token_hex(4)}",
        "merchant_id": ctx.merchant_id,
        "conversation_id": ctx.path["conversation_id"],
        "author": ctx.actor,
        "text": body.text,
        "at": time.time(),
    }
    await ctx.api.repos.notes.add(dict(note))
    out = {k: note[k] for k in ("author", "text", "at")} | {"id": note["_id"]}
    await live.publish(
        ctx.api,
        ctx.merchant_id,
        "note.created",
        {"conversation_id": note["conversation_id"], **out},
    )
    return Reply(201, out)


async def list_notes(ctx: Ctx) -> dict[str, Any]:
    await _conversation(ctx)
    docs = await ctx.api.repos.notes.for_conversation(
        ctx.merchant_id, ctx.path["conversation_id"], limit=MAX_NOTES
    )
    return {
        "items": [
            {"id": d["_id"], "author": d["author"], "text": d["text"], "at": d["at"]} for d in docs
        ]
    }


C = "/api/v1/conversations"
CI = C + "/{conversation_id}"
EX = conversation_exists
