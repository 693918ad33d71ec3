"""Conversation analytics over a window: reply speed, coverage, handoffs, conversion, questions.

Computed on read from the records (bounded scans: at most ``MAX_SCAN`` documents per kind), so
there is no second write path to keep consistent; a production deployment with millions of
messages would pre-aggregate per day instead (see README).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

from engine.domain.dialogue import intents
from engine.http import schemas as s
from engine.http.context import API
from engine.http.routing import Ctx

MAX_SCAN = 100_000


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


class _Bucket:
    def __init__(self) -> None:
        self.conversations = 0
        self.messages_in = 0
        self.replies: list[float] = []
        self.bot_out = 0
        self.answered = 0
        self.handoffs = 0
        self.orders = 0
        self.converted = 0

    def out(self) -> dict[str, Any]:
        c = self.conversations
        return {
            "conversations": c,
            "messages_in": self.messages_in,
            "first_reply_p50_s": _pct(self.replies, 0.5),
            "first_reply_p95_s": _pct(self.replies, 0.95),
            "answer_coverage": round(self.answered / self.bot_out, 4) if self.bot_out else None,
            "handoff_rate": round(self.handoffs / c, 4) if c else None,
            "orders": self.orders,
            "conversion": round(self.converted / c, 4) if c else None,
        }


async def analytics(ctx: Ctx) -> dict[str, Any]:
    api = ctx.request.app[API]
    q: s.AnalyticsQuery = ctx.query
    since = time.time() - q.days * 86400
    m, repos = ctx.merchant_id, api.repos
    convs = await repos.conversations.active_since(
        m, since, channel_id=q.channel or None, limit=MAX_SCAN
    )
    msgs = await repos.messages.since(m, since, limit=MAX_SCAN)
    orders = await repos.orders.since(m, since, limit=MAX_SCAN)
    total = _Bucket()
    per_channel: dict[str, _Bucket] = defaultdict(_Bucket)
    per_day: dict[str, _Bucket] = defaultdict(_Bucket)
    conv_channel: dict[str, str] = {}
    ordered_keys = {str(o.get("conversation_key")) for o in orders if o.get("conversation_key")}
    for c in convs:
        key = str(c.get("conversation_key"))
        channel = str(c.get("channel_id") or "")
        conv_channel[key] = channel
        day = _day(float(c.get("created_at") or c.get("last_message_at") or since))
        for b in (total, per_channel[channel], per_day[day]):
            b.conversations += 1
            if c.get("first_in_at") is not None and c.get("first_reply_at") is not None:
                b.replies.append(max(0.0, float(c["first_reply_at"]) - float(c["first_in_at"])))
            if c.get("handoff"):
                b.handoffs += 1
            if key in ordered_keys:
                b.converted += 1
    questions: Counter[str] = Counter()
    for msg in msgs:
        key = str(msg.get("conversation_key"))
        if q.channel and conv_channel.get(key) != q.channel:
            continue
        buckets = (total, per_channel[conv_channel.get(key, "")], per_day[_day(float(msg["at"]))])
        if msg.get("direction") == "in":
            text = " ".join(str(msg.get("text") or "").lower().split())[:120]
            if text:
                questions[text] += 1
            for b in buckets:
                b.messages_in += 1
        elif msg.get("intent") != intents.AGENT:
            good = bool(msg.get("products")) or msg.get("intent") in intents.ANSWERED
            good = good and not msg.get("handoff")
            for b in buckets:
                b.bot_out += 1
                b.answered += int(good)
    for o in orders:
        total.orders += 1
        per_day[_day(float(o["created_at"]))].orders += 1
        order_channel = conv_channel.get(str(o.get("conversation_key")))
        if order_channel is not None:
            per_channel[order_channel].orders += 1
    return {
        "since": since,
        "total": total.out(),
        "per_channel": {k: v.out() for k, v in sorted(per_channel.items())},
        "per_day": {k: v.out() for k, v in sorted(per_day.items())},
        "top_questions": [{"text": t, "count": n} for t, n in questions.most_common(10)],
    }


async def list_gaps(ctx: Ctx) -> dict[str, Any]:
    """The questions the bot could not answer, most asked first."""
    q: s.GapsQuery = ctx.query
    api = ctx.request.app[API]
    return {"items": await api.gaps.list(ctx.merchant_id, q.limit), "limit": q.limit}
