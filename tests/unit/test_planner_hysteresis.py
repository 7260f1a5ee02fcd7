"""planner.hysteresis: the operator's move rule, shared with the dynamic experiment."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from factories import random_problem
from greenshard import model, planner


@pytest.mark.parametrize("seed", range(10))
def test_keeps_exactly_below_the_threshold(seed: int) -> None:
    rng = np.random.default_rng(seed)
    problem = random_problem(rng, 3, 3, regions=2, hops=1, tight=False)
    placements = list(itertools.product(range(problem.num_pools), repeat=problem.num_shards))
    feasible = [p for p in placements if model.feasible(problem, p)]
    if len(feasible) < 2:
        pytest.skip("fewer than two feasible placements")
    fresh = min(feasible, key=lambda p: (model.emissions(problem, p), p))
    fresh_e = model.emissions(problem, fresh)
    for previous in feasible:
        current = model.emissions(problem, previous)
        saving = 100.0 * (current - fresh_e) / current
        for threshold in (0.0, 5.0, 50.0):
            keep, got_current, got_saving = planner.hysteresis(
                problem, previous, fresh, fresh_e, threshold
            )
            if previous == fresh:
                assert (keep, got_current, got_saving) == (False, 0.0, 0.0)
                continue
            assert got_current == pytest.approx(current)
            assert got_saving == pytest.approx(saving)
            assert keep == (saving < threshold)
    for previous in placements:  # an infeasible current placement always moves
        if not model.feasible(problem, previous):
            assert not planner.hysteresis(problem, previous, fresh, fresh_e, 100.0)[0]
    assert planner.hysteresis(problem, None, fresh, fresh_e, 100.0) == (False, 0.0, 0.0)
