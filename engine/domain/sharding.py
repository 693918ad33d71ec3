"""Where a conversation lives: conversation key → inbox partition → host actor.

Jump consistent hashing (Lamping & Veach, 2014) maps a key to one of N partitions with
minimal movement when N changes, using no memory. Partitions, not conversations, are what
host actors own, so a conversation always lands on the same host and its turns stay ordered.
"""

from __future__ import annotations

import hashlib


def _key_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big")


def jump_hash(key: str, buckets: int) -> int:
    """Bucket in [0, buckets) for ``key``; stable across processes and Python versions."""
    if buckets <= 0:
        raise ValueError("buckets must be positive")
    k = _key_hash(key)
    b, j = -1, 0
    while j < buckets:
        b = j
        k = (k * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        j = int((b + 1) * ((1 << 31) / ((k >> 33) + 1)))
    return b


def partition_of(conversation_key: str, partitions: int) -> int:
    return jump_hash(conversation_key, partitions)


def partitions_of_host(host_index: int, hosts: int, partitions: int) -> list[int]:
    """Partitions a host consumes; every partition has exactly one host."""
    if not 0 <= host_index < hosts:
        raise ValueError(f"host_index {host_index} out of range for {hosts} hosts")
    return [p for p in range(partitions) if p % hosts == host_index]
