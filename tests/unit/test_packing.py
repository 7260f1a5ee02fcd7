"""Exact bin packing, checked against brute force on random small cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from greenshard import packing


def brute_force_fits(sizes: list[int], caps: list[int]) -> bool:
    for assignment in itertools.product(range(len(caps)), repeat=len(sizes)):
        load = [0] * len(caps)
        for item, node in enumerate(assignment):
            load[node] += sizes[item]
        if all(load[j] <= caps[j] for j in range(len(caps))):
            return True
    return False


@pytest.mark.parametrize("seed", [101, 202, 303])
def test_pack_agrees_with_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    answers = {True: 0, False: 0}
    for _ in range(300):
        n_items = int(rng.integers(1, 7))
        n_nodes = int(rng.integers(1, 4))
        sizes = [int(x) for x in rng.integers(1, 6, n_items)]
        caps = [int(x) for x in rng.integers(0, 10, n_nodes)]
        expected = brute_force_fits(sizes, caps)
        got = packing.pack(sizes, caps)
        assert (got is not None) == expected, (sizes, caps)
        assert packing.fits(sizes, caps) == expected
        answers[expected] += 1
        if got is not None:
            load = [0] * n_nodes
            for item, node in enumerate(got):
                load[node] += sizes[item]
            assert all(load[j] <= caps[j] for j in range(n_nodes))
    # both answers occur, so the comparison means something
    assert answers[True] > 30 and answers[False] > 30


def test_sum_fits_but_packing_does_not() -> None:
    # 12 GPUs free in all, 4 replicas of 3 GPUs: 8 -> 2 replicas (2 left), 4 -> 1 (1 left)
    assert packing.pack([3, 3, 3, 3], [8, 4]) is None
    assert packing.pack([3, 3, 3], [8, 4]) == (0, 0, 1)


def test_packing_is_deterministic_and_largest_first() -> None:
    assert packing.pack([1, 2, 1], [2, 2]) == (1, 0, 1)
    assert packing.pack([], [1]) == ()
    assert packing.pack([1], []) is None
    with pytest.raises(ValueError):
        packing.pack([-1], [1])


def test_many_identical_replicas_are_fast() -> None:
    # 8 shards x 4 replicas of 2 GPUs onto 8 nodes of 8 GPUs: symmetry pruning keeps it tiny
    assert packing.pack([2] * 32, [8] * 8) is not None
    assert packing.pack([2] * 33, [8] * 8) is None
    assert packing.pack([3] * 16 + [2] * 8, [8] * 8) is not None  # 3 + 3 + 2 on every node
    # 63 of 64 GPUs, but a node holds at most two 3-GPU replicas: 17 of them need 9 nodes
    assert packing.pack([3] * 17 + [2] * 6, [8] * 8) is None


def brute_force_fits_slots(sizes: list[int], caps: list[int], slots: list[int]) -> bool:
    for assignment in itertools.product(range(len(caps)), repeat=len(sizes)):
        load, count = [0] * len(caps), [0] * len(caps)
        for item, node in enumerate(assignment):
            load[node] += sizes[item]
            count[node] += 1
        if all(load[j] <= caps[j] and count[j] <= slots[j] for j in range(len(caps))):
            return True
    return False


@pytest.mark.parametrize("seed", [404, 505])
def test_pack_with_pod_slots_agrees_with_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    answers = {True: 0, False: 0}
    limited = 0  # cases where the slots alone turn a fit into no fit
    for _ in range(300):
        n_items = int(rng.integers(1, 7))
        n_nodes = int(rng.integers(1, 4))
        sizes = [int(x) for x in rng.integers(1, 6, n_items)]
        caps = [int(x) for x in rng.integers(0, 14, n_nodes)]
        slots = [int(x) for x in rng.integers(0, 4, n_nodes)]
        expected = brute_force_fits_slots(sizes, caps, slots)
        got = packing.pack(sizes, caps, slots)
        assert (got is not None) == expected, (sizes, caps, slots)
        assert packing.fits(sizes, caps, slots) == expected
        answers[expected] += 1
        limited += int(brute_force_fits(sizes, caps) and not expected)
        if got is not None:
            for j in range(n_nodes):
                mine = [sizes[i] for i, node in enumerate(got) if node == j]
                assert sum(mine) <= caps[j] and len(mine) <= slots[j]
    assert answers[True] > 30 and answers[False] > 30 and limited > 30


def test_pod_slots_spread_replicas_that_memory_alone_would_stack() -> None:
    # one big node has the memory for all 8 replicas but 3 free pod slots
    assert packing.pack([1] * 8, [100, 10], [3, 110]) == (0, 0, 0, 1, 1, 1, 1, 1)
    assert packing.pack([1] * 8, [100, 10], [3, 4]) is None
    assert packing.pack([4, 1, 1], [5, 4], [1, 5]) == (0, 1, 1)
    with pytest.raises(ValueError):
        packing.pack([1], [1], [1, 1])
