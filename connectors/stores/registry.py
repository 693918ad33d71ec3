"""The store platforms the engine syncs from: the ONE list of them (the integrations routes,
the store webhooks, the sync loop and its metrics read it)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from connectors.stores import salla, shopify, zid
from connectors.stores.base import StoreKind

KINDS: Final[Mapping[str, StoreKind]] = MappingProxyType(
    {k.kind: k for k in (salla.KIND, zid.KIND, shopify.KIND)}
)


def get(kind: str) -> StoreKind | None:
    return KINDS.get(kind)
