"""``kaleem outbox dlq list|replay``: the operator's view of dead letters, over the admin API.

Like the other admin commands it talks HTTP to a running engine with the operator token, so it
works the same against a local engine and a remote deployment; ``--merchant`` narrows to one
merchant (otherwise the operator sees every merchant's dead letters).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from typing import Any

from engine.cli.common import operator_token, request, settings_from


def register(sub: Any, admin: Callable[[argparse.ArgumentParser], None]) -> None:
    outbox = sub.add_parser("outbox", help="outbound delivery").add_subparsers(
        dest="area", required=True
    )
    dlq = outbox.add_parser("dlq", help="dead letters").add_subparsers(dest="action", required=True)
    listing = dlq.add_parser("list", help="newest dead letters first")
    listing.add_argument("--merchant")
    listing.add_argument("--limit", type=int, default=50)
    admin(listing)
    listing.set_defaults(func=cmd_list)
    replay = dlq.add_parser("replay", help="put dead letters back on the outbox")
    replay.add_argument("ids", nargs="+", help="dead-letter ids from `dlq list`")
    replay.add_argument("--merchant")
    admin(replay)
    replay.set_defaults(func=cmd_replay)


def _target(args: argparse.Namespace) -> tuple[str, str]:
    s = settings_from(args)
    return (args.url or s.base_url).rstrip("/"), operator_token(s)


def cmd_list(args: argparse.Namespace) -> int:
    url, token = _target(args)
    out: dict[str, Any] = asyncio.run(
        request(
            "GET",
            f"{url}/api/v1/outbox/dead-letters?limit={int(args.limit)}",
            token,
            merchant=args.merchant,
        )
    )
    for item in out.get("dead_letters", []):
        print(json.dumps(item, ensure_ascii=False))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    url, token = _target(args)
    for entry_id in args.ids:
        out = asyncio.run(
            request(
                "POST",
                f"{url}/api/v1/outbox/dead-letters/{entry_id}/replay",
                token,
                merchant=args.merchant,
            )
        )
        print(json.dumps(out, ensure_ascii=False))
    return 0
