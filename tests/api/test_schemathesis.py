"""Schemathesis against the served OpenAPI document: no 5xx, responses match their schemas.

Bounded (a few examples per operation) so the suite stays fast. Schemathesis calls are
synchronous (``requests``): they run in a thread so the engine's event loop keeps serving.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.api.test_admin_api import call, make_tenant
from tests.conftest import Engine

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 6
SKIP = {("POST", "/api/v1/auth/logout")}  # would end the session the run itself uses


def _run(spec: dict[str, Any], base_url: str, token: str) -> tuple[list[str], int]:
    import hypothesis
    import schemathesis
    from hypothesis import HealthCheck

    schema = schemathesis.openapi.from_dict(spec)
    failures: list[str] = []
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIP:
            continue

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            phases=[hypothesis.Phase.generate],
        )
        def check(case: Any) -> None:
            nonlocal calls
            calls += 1
            # positive_data_acceptance is a heuristic that expects every schema-valid request
            # to succeed; a schema cannot say "cursor must come from a previous page" or
            # "Idempotency-Key must be a UUID *v4*", which are honest 400s.
            case.call_and_validate(
                base_url=base_url,
                headers={"Authorization": f"Bearer {token}"},
                excluded_checks=[schemathesis.checks.positive_data_acceptance],
                timeout=30,
            )

        try:
            check()
        except Exception as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:2000])
    return failures, calls


async def test_schemathesis_no_server_errors_and_conforming_responses(engine: Engine) -> None:
    tenant = await make_tenant(engine, "Fuzz shop")
    status, spec, _ = await call(engine, "GET", "/api/v1/openapi.json")
    assert status == 200
    failures, calls = await asyncio.to_thread(_run, spec, engine.base_url, tenant.tokens["owner"])
    assert not failures, "\n\n".join(failures)
    operations = sum(len(ops) for ops in spec["paths"].values())
    assert calls >= 2 * operations  # it really exercised every operation
