"""Every ``/api/v1`` route, as one table: a new admin route is a ``Route`` in one of these
modules (auth, RBAC, validation and its OpenAPI entry declared together), listed here."""

from __future__ import annotations

from engine.http.routes import (
    analytics,
    carts,
    catalog,
    channels,
    conversations,
    docs,
    identity,
    imports,
    merchants,
    orders,
    playground,
)
from engine.http.routing import Route

ALL_ROUTES: list[Route] = [
    *merchants.ROUTES,
    *identity.ROUTES,
    *catalog.ROUTES,
    *imports.ROUTES,
    *orders.ROUTES,
    *conversations.ROUTES,
    *carts.ROUTES,
    *channels.ROUTES,
    *playground.ROUTES,
    *analytics.ROUTES,
    *docs.ROUTES,
]

__all__ = ["ALL_ROUTES"]
