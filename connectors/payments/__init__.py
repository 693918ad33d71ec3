"""Payment providers: pure builders of their requests, readers of their answers and webhooks.

Each provider module offers the same functions (``create_call``, ``read_created``,
``refund_call``, ``read_refunded``, ``verify``, ``parse``), so the payments use case runs
either without knowing whose wire format it is. Nothing here does I/O.
"""

from __future__ import annotations

from connectors.payments import moyasar, tap
from connectors.payments._json import MAX_BODY_BYTES, load_object

PROVIDERS = {"moyasar": moyasar, "tap": tap}


__all__ = ["MAX_BODY_BYTES", "PROVIDERS", "load_object", "moyasar", "tap"]
