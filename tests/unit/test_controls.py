"""The classical controls at QAOA's budget: they spend no more than it, answer only feasible
placements' emissions, and find the optimum exactly when their best ties it."""

from __future__ import annotations

import itertools

import pytest

from greenshard import instances, model, subspace
from greenshard.solvers import controls, exact

HELD_OUT = instances.HELD_OUT_SEEDS.start


def _feasible_emissions(problem: model.Problem) -> list[float]:
    return [
        model.emissions(problem, p)
        for p in itertools.product(range(problem.num_pools), repeat=problem.num_shards)
        if model.feasible(problem, p)
    ]


def test_each_control_spends_at_most_its_budget_and_reports_a_feasible_placement() -> None:
    problem = instances.family_problem("heldout-spread-tight", 6, 3, HELD_OUT + 1)
    feasible = _feasible_emissions(problem)
    optimum = min(feasible)
    for budget in (40, 300, 2048):
        runs = controls.at_budget(problem, budget, HELD_OUT, optimum)
        assert [c.name for c in runs] == list(controls.CONTROLS)
        for c in runs:
            assert 0 < c.evaluations <= budget, (c.name, budget, c.evaluations)
            if c.best is not None:
                assert any(model.is_tie(c.best, e) for e in feasible), c
                assert c.best >= optimum * (1 - 1e-12)
                assert c.found == model.is_tie(c.best, optimum)
                gap = c.gap(optimum)
                assert gap is not None and (gap == 0.0) == c.found


def test_a_budget_that_covers_the_space_finds_the_optimum() -> None:
    problem = instances.family_problem("heldout-close-hops", 4, 3, HELD_OUT + 2)
    optimum = exact.solve_exact(problem).emissions
    # 81 placements, 3000 draws: a miss has probability (80/81)**3000 < 1e-16
    runs = {c.name: c for c in controls.at_budget(problem, 3000, HELD_OUT, optimum)}
    assert runs["uniform"].found and runs["uniform"].gap(optimum) == 0.0
    assert runs["local-search"].found


def test_a_small_budget_on_a_tight_instance_misses_and_says_how_far() -> None:
    problem = instances.family_problem("heldout-spread-tight", 8, 5, HELD_OUT)
    optimum = exact.solve_exact(problem).emissions
    feasible_fraction = subspace.PlacementSpace(problem).stats.count / 5**8
    assert feasible_fraction < 0.05
    runs = {c.name: c for c in controls.at_budget(problem, 64, HELD_OUT, optimum)}
    uniform = runs["uniform"]
    assert not uniform.found
    # 64 draws see a feasible placement with probability about 0.14; either way, no optimum
    assert uniform.best is None or uniform.gap(optimum) > 0.0


def test_controls_are_deterministic_by_seed() -> None:
    problem = instances.family_problem("heldout-spread-tight", 6, 4, HELD_OUT + 3)
    optimum = exact.solve_exact(problem).emissions
    first = controls.at_budget(problem, 500, HELD_OUT + 7, optimum)
    assert first == controls.at_budget(problem, 500, HELD_OUT + 7, optimum)


def test_a_budget_below_one_is_refused() -> None:
    problem = instances.family_problem("heldout-spread-tight", 4, 3, HELD_OUT)
    with pytest.raises(ValueError, match="at least one evaluation"):
        controls.at_budget(problem, 0, HELD_OUT, 1.0)


def test_uniform_sampling_spends_a_budget_larger_than_one_block() -> None:
    """Draws come in blocks of 65,536; a budget beyond one is spent whole."""
    problem = instances.family_problem("heldout-spread-tight", 6, 3, HELD_OUT + 1)
    optimum = min(_feasible_emissions(problem))
    run = controls.at_budget(problem, 70_000, HELD_OUT, optimum)[0]
    assert run.name == "uniform" and run.evaluations == 70_000 and run.found
