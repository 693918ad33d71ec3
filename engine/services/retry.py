"""The three retry policies, by name, and the one loop that applies them.

Every policy waits with full jitter (a uniform draw in ``[0, base · 2^n]``) so clients that
failed together do not retry together. A call is retried only when its caller says the failure
is transient AND repeating it is safe: a payment creation whose provider takes no idempotency
key is attempted once, whatever the answer, because a timeout there may hide a charge.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeVar

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    name: str
    retries: int  # attempts after the first
    base_s: float

    def delay(self, retry: int, draw: Callable[[], float] = random.random) -> float:
        """How long to wait before retry number ``retry`` (0-based): full jitter."""
        return float(draw() * self.base_s * (2**retry))


DATABASE: Final = RetryPolicy("database", retries=5, base_s=0.5)
EXTERNAL_API: Final = RetryPolicy("external_api", retries=3, base_s=2.0)
PAYMENT: Final = RetryPolicy("payment", retries=2, base_s=3.0)
ONCE: Final = RetryPolicy("once", retries=0, base_s=0.0)


def for_payment_call(idempotent: bool) -> RetryPolicy:
    """A provider call that repeats safely gets the payment policy; any other gets one try."""
    return PAYMENT if idempotent else ONCE


async def retrying(
    policy: RetryPolicy,
    attempt: Callable[[], Awaitable[T]],
    transient: Callable[[T], bool],
    *,
    sleep: Sleep = asyncio.sleep,
    draw: Callable[[], float] = random.random,
) -> T:
    """``attempt()`` until ``transient`` says its outcome is final, at most ``1 + retries``
    times; the last outcome is returned either way (callers read failures as values)."""
    outcome = await attempt()
    for retry in range(policy.retries):
        if not transient(outcome):
            return outcome
        await sleep(policy.delay(retry, draw))
        outcome = await attempt()
    return outcome
