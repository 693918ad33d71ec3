"""Outbound calls a merchant can aim: only at public addresses, never following redirects.

A merchant sets a channel's ``api_base``; without a guard any merchant (signup is public)
could aim the engine's provider calls, with tokens in them, at Prometheus' ``/-/quit``,
Qdrant, the Ray dashboard or a cloud metadata IP, and read the answers back as a port
scanner. Three locks, each needed:

* the connect form accepts only the kind's production hosts (``ChannelKind.api_hosts``) plus
  the operator's ``KALEEM_PROVIDER_HOSTS``, over https (:func:`check_api_base`);
* at connect time every resolved address is checked (:class:`PublicResolver`), so a name that
  resolves to a private address (DNS rebinding included) is refused after the form passed, and
  an IP literal in the URL is checked before the call (aiohttp does not resolve literals);
* redirects are never followed: a 307 would keep the POST and its body for another host.

``KALEEM_ALLOW_PRIVATE_API_BASE=1`` turns the first two off for tests and local development
(fakes on loopback). Refusals carry fixed reasons, never the remote's words.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

BLOCKED: Final = "blocked: the provider address is not public"


class BlockedAddress(OSError):
    """The provider's address is loopback, private, link-local, multicast or reserved."""


def is_public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def literal_ip(host: str) -> str | None:
    """The host when it is an IP literal (``[::1]`` unwrapped), else None."""
    bare = host.strip("[]")
    try:
        ipaddress.ip_address(bare.split("%", 1)[0])
    except ValueError:
        return None
    return bare


def check_api_base(url: str, allowed_hosts: Iterable[str], *, allow_private: bool) -> str | None:
    """Why a merchant may not use this ``api_base`` (a message for the 422), or None."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host or parts.username or parts.password:
        return "a URL with a host and no credentials"
    if allow_private:
        return None
    if parts.scheme != "https":
        return "an https URL"
    if host not in {h.lower() for h in allowed_hosts}:
        return "one of the platform's own API hosts"
    return None


class PublicResolver(AbstractResolver):
    """Resolves names like the default resolver, then drops every non-public address."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        public = [r for r in results if is_public(str(r["host"]))]
        if not public:
            raise BlockedAddress(BLOCKED)
        return public

    async def close(self) -> None:
        await self._inner.close()


def session(*, allow_private: bool, **kwargs: Any) -> aiohttp.ClientSession:
    """The HTTP session every provider call goes through (connection pool bounded)."""
    resolver: AbstractResolver = DefaultResolver() if allow_private else PublicResolver()
    connector = aiohttp.TCPConnector(resolver=resolver, limit=256, limit_per_host=64)
    return aiohttp.ClientSession(connector=connector, trust_env=False, **kwargs)


def refused_target(url: str, *, allow_private: bool) -> bool:
    """An IP-literal target that is not public (the resolver never sees literals)."""
    if allow_private:
        return False
    ip = literal_ip(urlsplit(url).hostname or "")
    return ip is not None and not is_public(ip)
