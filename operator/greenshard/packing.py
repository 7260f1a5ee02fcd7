"""Exact bin packing: can these replicas go onto these nodes without over-booking one?

A replica is never split across nodes, so whether a pool can hold a set of shard replicas is bin
packing (docs/cost-model.md, "Feasibility (v2)"). It is NP-hard in general but tiny here
(replicas x shards of one pool onto that pool's nodes), so it is solved exactly:

* items are tried largest first; a node whose free capacity equals that of a node already tried
  for the same item is skipped (the two are interchangeable), and
* failures are memoised on (next item, multiset of free capacities): the remaining items only
  care how much room is left, not on which node.

Sizes and capacities are integers (GPUs, or bytes on CPU nodes). A node may also have a number
of pod *slots* (``status.allocatable.pods`` less the pods bound there): every item is one pod and
takes one slot, so no node receives more items than it has slots. Standard library only.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

#: Memoised failures kept per packer before the memo is cleared (a bound on memory).
MEMO_LIMIT = 200_000


def pack(
    sizes: Sequence[int], capacities: Sequence[int], slots: Sequence[int] | None = None
) -> tuple[int, ...] | None:
    """Node index per item such that no node receives more than its capacity, nor more items
    than its ``slots`` (None: no limit on the count), or None.

    Deterministic: first fit decreasing when it succeeds; else an exact search that places items
    largest first (ties by item index) onto the lowest node index that leads to a packing."""
    n = len(sizes)
    if n == 0:
        return ()
    if slots is None:
        slots = [n] * len(capacities)
    if len(slots) != len(capacities):
        raise ValueError("one slot count per node")
    if any(s < 0 for s in sizes) or any(c < 0 for c in capacities) or any(x < 0 for x in slots):
        raise ValueError("sizes, capacities and slots must be >= 0")
    order = sorted(range(n), key=lambda i: (-sizes[i], i))
    ordered = [int(sizes[i]) for i in order]
    open_caps = [int(c) for c, x in zip(capacities, slots, strict=True) if x > 0]
    if (
        sum(ordered) > sum(open_caps)
        or ordered[0] > max(open_caps, default=-1)
        or n > sum(min(int(x), n) for x in slots)
    ):
        return None
    greedy = _first_fit_decreasing(order, ordered, capacities, slots)
    if greedy is not None:
        return greedy
    if ordered[0] == ordered[-1]:
        return None  # equal sizes: first fit is exact, so nothing packs
    suffix = [0] * (n + 1)
    for i in range(n - 1, -1, -1):
        suffix[i] = suffix[i + 1] + ordered[i]
    # room[j] = (free capacity, free slots); a node's slots never need to exceed the item count
    room = [(int(c), min(int(x), n)) for c, x in zip(capacities, slots, strict=True)]
    failed: set[tuple[int, tuple[tuple[int, int], ...]]] = set()
    chosen = [0] * n

    def usable(smallest: int) -> tuple[int, int]:
        """Capacity and slots of the nodes that can still take the smallest item."""
        cap = count = 0
        for free, left in room:
            if free >= smallest and left > 0:
                cap += free
                count += left
        return cap, count

    def visit(i: int) -> bool:
        if i == n:
            return True
        # Only nodes that can take the smallest remaining item count as room for the rest.
        cap, count = usable(ordered[n - 1])
        if cap < suffix[i] or count < n - i:
            return False
        key = (i, tuple(sorted(room)))
        if key in failed:
            return False
        size = ordered[i]
        tried: set[tuple[int, int]] = set()
        for j, (free, left) in enumerate(room):
            if free < size or left == 0 or (free, left) in tried:
                continue
            tried.add((free, left))
            room[j] = (free - size, left - 1)
            chosen[i] = j
            if visit(i + 1):
                return True
            room[j] = (free, left)
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
    order: Sequence[int], ordered: Sequence[int], capacities: Sequence[int], slots: Sequence[int]
) -> tuple[int, ...] | None:
    """Largest first, each onto the lowest-index node with room and a slot: found packings are
    valid, and a failure only sends the search on to the exact method."""
    room = [int(c) for c in capacities]
    left = [int(x) for x in slots]
    out = [0] * len(ordered)
    for position, size in enumerate(ordered):
        for j, free in enumerate(room):
            if free >= size and left[j] > 0:
                room[j] = free - size
                left[j] -= 1
                out[order[position]] = j
                break
        else:
            return None
    return tuple(out)


def fits(
    sizes: Sequence[int], capacities: Sequence[int], slots: Sequence[int] | None = None
) -> bool:
    """Whether the items pack onto the nodes (see :func:`pack`)."""
    return _fits_sorted(
        tuple(sorted(int(s) for s in sizes)),
        tuple(int(c) for c in capacities),
        None if slots is None else tuple(int(x) for x in slots),
    )


@lru_cache(maxsize=65536)
def _fits_sorted(
    sizes: tuple[int, ...], capacities: tuple[int, ...], slots: tuple[int, ...] | None
) -> bool:
    return pack(sizes, capacities, slots) is not None
