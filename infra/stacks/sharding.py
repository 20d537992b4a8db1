"""Stable assignment of catalogue services to stacks."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import TypeVar

# Fixed forever: changing it would move services between stacks (for a registry that means a
# deleted repository). Eight shards hold well over 600 services inside CloudFormation's limits.
SHARDS = 8

T = TypeVar("T")


def shard_of(service: str) -> int:
    """Depends on the name only, so adding or removing a service never moves another one."""
    return zlib.crc32(service.encode("utf-8")) % SHARDS


def by_shard(names: Sequence[str], items: Sequence[T]) -> dict[int, list[T]]:
    """Items grouped by the shard of their name; only non-empty shards, in shard order."""
    groups: dict[int, list[T]] = {}
    for name, item in zip(names, items, strict=True):
        groups.setdefault(shard_of(name), []).append(item)
    return dict(sorted(groups.items()))
