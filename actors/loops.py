"""The long-running loops of actors, kept running through the failures they cannot handle."""

from __future__ import annotations

import asyncio
import gc
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


def settle_heap() -> None:
    """Put what start-up allocated (modules, the object graph, tokenizers, indexes) out of the
    cycle collector's reach; call once a process is ready to serve.

    A full collection walks every tracked object: in the gateway under the abuse benchmark's
    load that was 160-200 ms with the event loop stopped (every webhook and socket waiting), and
    nearly all of those objects live as long as the process. Frozen, the next full collection
    walks only what came later: 26 ms there (measured with ``gc.callbacks``). Objects frozen here
    are still freed by reference counting; only cycles among them would stay.
    """
    gc.collect()
    gc.freeze()
