"""The long-running loops of actors, kept running through the failures they cannot handle."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def keep_running(
    run: Callable[[], Awaitable[None]], what: str, *, pause_s: float = 1.0
) -> None:
    """``run()`` until it returns (a stop); started again, after a pause, if it fails.

    A consumer loop's set-up needs Redis; an actor (re)started while the embedded Redis is
    being restarted would otherwise keep a dead loop and never turn ready again.
    """
    while True:
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s loop failed; starting it again", what)
            await asyncio.sleep(pause_s)
