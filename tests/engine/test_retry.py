"""The three named retry policies: attempts, base delays with full jitter, and the rule that a
provider call without an idempotency key is attempted once."""

from __future__ import annotations

import pytest

from engine.services import retry
from engine.services.retry import DATABASE, EXTERNAL_API, PAYMENT, RetryPolicy, retrying


def test_the_policies_are_the_seeds_numbers() -> None:
    assert (DATABASE.retries, DATABASE.base_s) == (5, 0.5)
    assert (EXTERNAL_API.retries, EXTERNAL_API.base_s) == (3, 2.0)
    assert (PAYMENT.retries, PAYMENT.base_s) == (2, 3.0)


def test_full_jitter_draws_up_to_the_exponential_cap() -> None:
    assert PAYMENT.delay(0, lambda: 1.0) == 3.0
    assert PAYMENT.delay(1, lambda: 1.0) == 6.0
    assert DATABASE.delay(4, lambda: 1.0) == 8.0
    assert EXTERNAL_API.delay(2, lambda: 0.5) == 4.0
    assert PAYMENT.delay(1, lambda: 0.0) == 0.0


class Flaky:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        return "fail" if self.calls <= self.failures else "ok"


@pytest.mark.parametrize("policy", [DATABASE, EXTERNAL_API, PAYMENT])
async def test_a_policy_makes_one_plus_retries_attempts_then_gives_the_last_outcome(
    policy: RetryPolicy,
) -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    op = Flaky(failures=100)
    out = await retrying(policy, op, lambda r: r == "fail", sleep=sleep, draw=lambda: 1.0)
    assert out == "fail" and op.calls == policy.retries + 1
    assert slept == [policy.base_s * 2**n for n in range(policy.retries)]


async def test_a_final_outcome_stops_retrying() -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    op = Flaky(failures=1)
    assert await retrying(PAYMENT, op, lambda r: r == "fail", sleep=sleep) == "ok"
    assert op.calls == 2 and len(slept) == 1


async def test_a_payment_call_without_an_idempotency_key_is_attempted_once() -> None:
    async def sleep(s: float) -> None:
        raise AssertionError("must not wait")

    op = Flaky(failures=5)
    policy = retry.for_payment_call(idempotent=False)
    assert await retrying(policy, op, lambda r: r == "fail", sleep=sleep) == "fail"
    assert op.calls == 1
    assert retry.for_payment_call(idempotent=True) is PAYMENT
