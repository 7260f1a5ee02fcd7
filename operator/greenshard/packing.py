"""Exact bin packing: can these replicas go onto these nodes without over-booking one?

A replica is never split across nodes, so whether a pool can hold a set of shard replicas is bin
packing (docs/cost-model.md, "Feasibility (v2)"). It is NP-hard in general but tiny here
(replicas x shards of one pool onto that pool's nodes), so it is solved exactly:

* items are tried largest first; a node whose free capacity equals that of a node already tried
  for the same item is skipped (the two are interchangeable), and
* failures are memoised on (next item, multiset of free capacities): the remaining items only
  care how much room is left, not on which node.

Sizes and capacities are integers (GPUs, or bytes on CPU nodes). Standard library only.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

#: Memoised failures kept per packer before the memo is cleared (a bound on memory).
MEMO_LIMIT = 200_000


def pack(sizes: Sequence[int], capacities: Sequence[int]) -> tuple[int, ...] | None:
    """Node index per item such that no node receives more than its capacity, or None.

    Deterministic: first fit decreasing when it succeeds; else an exact search that places items
    largest first (ties by item index) onto the lowest node index that leads to a packing."""
    n = len(sizes)
    if n == 0:
        return ()
    if any(s < 0 for s in sizes) or any(c < 0 for c in capacities):
        raise ValueError("sizes and capacities must be >= 0")
    order = sorted(range(n), key=lambda i: (-sizes[i], i))
    ordered = [int(sizes[i]) for i in order]
    if sum(ordered) > sum(int(c) for c in capacities) or (
        ordered[0] > max((int(c) for c in capacities), default=-1)
    ):
        return None
    greedy = _first_fit_decreasing(order, ordered, capacities)
    if greedy is not None:
        return greedy
    if ordered[0] == ordered[-1]:
        return None  # equal sizes: first fit is exact, so nothing packs
    suffix = [0] * (n + 1)
    for i in range(n - 1, -1, -1):
        suffix[i] = suffix[i + 1] + ordered[i]
    room = [int(c) for c in capacities]
    failed: set[tuple[int, tuple[int, ...]]] = set()
    chosen = [0] * n

    def usable(smallest: int) -> int:
        return sum(r for r in room if r >= smallest)

    def visit(i: int) -> bool:
        if i == n:
            return True
        # Only nodes that can take the smallest remaining item count as room for the rest.
        if usable(ordered[n - 1]) < suffix[i]:
            return False
        key = (i, tuple(sorted(room)))
        if key in failed:
            return False
        size = ordered[i]
        tried: set[int] = set()
        for j, free in enumerate(room):
            if free < size or free in tried:
                continue
            tried.add(free)
            room[j] = free - size
            chosen[i] = j
            if visit(i + 1):
                return True
            room[j] = free
        if len(failed) < MEMO_LIMIT:
            failed.add(key)
        return False

    if not visit(0):
        return None
    out = [0] * n
    for position, item in enumerate(order):
        out[item] = chosen[position]
    return tuple(out)


def _first_fit_decreasing(
    order: Sequence[int], ordered: Sequence[int], capacities: Sequence[int]
) -> tuple[int, ...] | None:
    """Largest first, each onto the lowest-index node with room: found packings are valid, and
    a failure only sends the search on to the exact method."""
    room = [int(c) for c in capacities]
    out = [0] * len(ordered)
    for position, size in enumerate(ordered):
        for j, free in enumerate(room):
            if free >= size:
                room[j] = free - size
                out[order[position]] = j
                break
        else:
            return None
    return tuple(out)


def fits(sizes: Sequence[int], capacities: Sequence[int]) -> bool:
    """Whether the items pack onto the nodes (see :func:`pack`)."""
    return _fits_sorted(tuple(sorted(int(s) for s in sizes)), tuple(int(c) for c in capacities))


@lru_cache(maxsize=65536)
def _fits_sorted(sizes: tuple[int, ...], capacities: tuple[int, ...]) -> bool:
    return pack(sizes, capacities) is not None
