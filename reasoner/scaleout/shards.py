"""Deterministic sharding: consecutive slices of a job's items, fixed by the items alone.

Shards never decide a result: seeds are keyed by problem id and sample index, so a shard only says
which worker computes what and in which order the driver writes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from reasoner.types import ReasonerError

T = TypeVar("T")


def shard(items: Sequence[T], size: int) -> list[list[T]]:
    """`items` cut into consecutive slices of `size` (the last may be shorter), in order."""
    if size < 1:
        raise ReasonerError(f"a shard holds at least one item, got a shard size of {size}")
    return [list(items[i : i + size]) for i in range(0, len(items), size)]
