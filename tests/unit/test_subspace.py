"""The one-hot placement table agrees with the cost model placement by placement."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from factories import random_problem
from greenshard import instances, model, subspace

CASES = [(3, 3, 0), (4, 4, 1), (5, 4, 2), (4, 5, 3), (6, 3, 4), (2, 5, 5), (7, 2, 6)]


def _reference(problem: model.Problem) -> tuple[np.ndarray, np.ndarray]:
    emissions, feasible = [], []
    for placement in itertools.product(range(problem.num_pools), repeat=problem.num_shards):
        emissions.append(model.emissions(problem, placement))
        feasible.append(model.feasible(problem, placement))
    return np.array(emissions), np.array(feasible)


@pytest.mark.parametrize(("shards", "pools", "seed"), CASES)
@pytest.mark.parametrize("tail_max", [4, 25, subspace.TAIL_MAX])
def test_table_matches_the_cost_model(shards: int, pools: int, seed: int, tail_max: int) -> None:
    rng = np.random.default_rng(1000 + seed)
    problem = random_problem(rng, shards, pools, tight=True, hops=int(rng.integers(0, shards)))
    space = subspace.PlacementSpace(problem, tail_max=tail_max)
    emissions, feasible = _reference(problem)
    blocks = list(space.row_blocks(elements=7))
    table = np.concatenate([space.emissions_rows(lo, hi).ravel() for lo, hi in blocks])
    mask = np.concatenate([space.feasible_rows(lo, hi).ravel() for lo, hi in blocks])
    np.testing.assert_allclose(table, emissions, rtol=1e-12)
    np.testing.assert_array_equal(mask, feasible)
    every = np.arange(space.size)
    np.testing.assert_array_equal(space.feasible_of(every), feasible)
    np.testing.assert_allclose(space.emissions_of(every), emissions, rtol=1e-12)
    stats = space.stats
    assert stats.count == int(feasible.sum())
    if stats.count:
        least = emissions[feasible].min()
        assert stats.least == pytest.approx(least, rel=1e-12)
        assert stats.greatest == pytest.approx(emissions[feasible].max(), rel=1e-12)
        assert stats.mean == pytest.approx(emissions[feasible].mean(), rel=1e-9)
        ties = np.flatnonzero(feasible & np.array([model.is_tie(e, least) for e in emissions]))
        np.testing.assert_array_equal(stats.optimal, ties)
    assert stats.least_any == pytest.approx(emissions.min(), rel=1e-12)


def test_index_and_placement_are_lexicographic() -> None:
    problem = random_problem(np.random.default_rng(1007), 4, 3)
    space = subspace.PlacementSpace(problem)
    for index, placement in enumerate(itertools.product(range(3), repeat=4)):
        assert space.index(placement) == index
        assert space.placement(index) == placement
    np.testing.assert_array_equal(
        space.placements([0, 5, 80]), [[0, 0, 0, 0], [0, 0, 1, 2], [2, 2, 2, 2]]
    )


def test_too_many_placements_is_refused_with_the_numbers() -> None:
    problem = random_problem(np.random.default_rng(1008), 13, 5)
    with pytest.raises(ValueError, match="5\\*\\*13"):
        subspace.PlacementSpace(problem)


@pytest.mark.parametrize(
    "name", sorted({**instances.TRAINING_FAMILIES, **instances.HELD_OUT_FAMILIES})
)
def test_families_are_heavily_constrained(name: str) -> None:
    for pools in (3, 4, 5):
        problem = instances.family_problem(name, 8, pools, instances.HELD_OUT_SEEDS[7])
        stats = subspace.PlacementSpace(problem).stats
        assert problem.num_shards == 8 and problem.num_pools == pools
        assert 0 < stats.count <= 0.05 * pools**8


def test_training_and_held_out_share_no_family_or_seed() -> None:
    assert not set(instances.TRAINING_FAMILIES) & set(instances.HELD_OUT_FAMILIES)
    assert not set(instances.FITTING_SEEDS) & set(instances.HELD_OUT_SEEDS)
    recipes = {
        (f.regions, f.accelerators, f.capacity, f.hops, f.intensity)
        for f in instances.TRAINING_FAMILIES.values()
    }
    for family in instances.HELD_OUT_FAMILIES.values():
        assert (
            family.regions,
            family.accelerators,
            family.capacity,
            family.hops,
            family.intensity,
        ) not in recipes
