"""Threshold QAOA (Grover mixer, fixed-point schedule): the schedule's guarantee, the two-level
simulation against the whole vector, the marking scan against brute force, and the solver on
held-out instances."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from factories import random_problem
from greenshard import instances, planner, subspace
from greenshard.errors import InfeasibleError
from greenshard.solvers import exact, threshold


@pytest.mark.parametrize("delta", [0.5, 0.3, 0.1])
@pytest.mark.parametrize("size", [9, 27, 243, 6561, 390625])
def test_fixed_point_length_is_the_least_that_covers_one_marked_placement(
    size: int, delta: float
) -> None:
    length = threshold.fixed_point_length(size, delta)
    assert length % 2 == 1 and length >= 3
    assert threshold.fixed_point_width(length, delta) <= 1.0 / size
    if length > 3:
        assert threshold.fixed_point_width(length - 2, delta) > 1.0 / size
    # L ~ arccosh(1/delta) sqrt(N): the quadratic scaling
    assert length <= math.acosh(1.0 / delta) * math.sqrt(size) + 3


@pytest.mark.parametrize("delta", [0.5, 0.2])
def test_schedule_marks_with_probability_at_least_1_minus_delta_squared(delta: float) -> None:
    size = 3**5
    alphas, betas = threshold.fixed_point_angles(threshold.fixed_point_length(size, delta), delta)
    for marked in (1, 2, 3, 7, 20, 60, 121, 200, size):
        amplitudes = threshold.evolve_two_level(marked / size, alphas, betas)
        assert abs(amplitudes[0]) ** 2 >= 1 - delta**2 - 1e-9, marked
        assert float(np.sum(np.abs(amplitudes) ** 2)) == pytest.approx(1.0, abs=1e-12)


def test_a_shorter_schedule_loses_the_guarantee_for_one_marked_placement() -> None:
    size, delta = 3**6, 0.5
    length = threshold.fixed_point_length(size, delta)
    alphas, betas = threshold.fixed_point_angles(length - 4, delta)
    amplitudes = threshold.evolve_two_level(1 / size, alphas, betas)
    assert abs(amplitudes[0]) ** 2 < 1 - delta**2


def test_angles_are_the_yoder_low_chuang_schedule() -> None:
    alphas, betas = threshold.fixed_point_angles(7, 0.5)
    assert alphas.size == betas.size == 3
    np.testing.assert_allclose(betas, -alphas[::-1])
    g = 1 / math.cosh(math.acosh(2.0) / 7)
    j = np.arange(1, 4)
    np.testing.assert_allclose(
        1 / np.tan(alphas / 2), np.tan(2 * np.pi * j / 7) * math.sqrt(1 - g * g)
    )
    with pytest.raises(ValueError, match="odd"):
        threshold.fixed_point_angles(6, 0.5)
    with pytest.raises(ValueError, match="delta"):
        threshold.fixed_point_length(10, 1.5)


def _space(seed: int, shards: int = 5, pools: int = 3) -> subspace.PlacementSpace:
    rng = np.random.default_rng(seed)
    while True:
        problem = random_problem(rng, shards, pools, tight=True, hops=shards - 2)
        space = subspace.PlacementSpace(problem, tail_max=pools**2)
        if 2 < space.stats.count < space.size:
            return space


@pytest.mark.parametrize("seed", [instances.HELD_OUT_SEEDS[200 + i] for i in range(4)])
def test_two_level_evolution_is_the_whole_vector_evolution(seed: int) -> None:
    space = _space(seed)
    everything = np.arange(space.size)
    feasible = space.feasible_of(everything)
    emissions = space.emissions_of(everything)
    cut = float(np.median(emissions[feasible]))
    marks = threshold.Marked(space, block=space.cols * 2)
    mask = marks.mask(cut)
    np.testing.assert_array_equal(mask, feasible & (emissions < cut * (1 - 1e-12)))
    length = threshold.fixed_point_length(space.size, 0.5)
    alphas, betas = threshold.fixed_point_angles(length, 0.5)
    whole = threshold.evolve_vector(mask, alphas, betas)
    two = threshold.state_vector(mask, threshold.evolve_two_level(mask.mean(), alphas, betas))
    assert np.abs(whole - two).max() < 1e-12
    assert float(np.sum(np.abs(whole[mask]) ** 2)) >= 0.75 - 1e-9


@pytest.mark.parametrize("inclusive", [False, True])
def test_marked_count_and_pick_agree_with_brute_force(inclusive: bool) -> None:
    space = _space(instances.HELD_OUT_SEEDS[210], shards=6, pools=3)
    everything = np.arange(space.size)
    feasible = space.feasible_of(everything)
    emissions = space.emissions_of(everything)
    for cut in [*sorted(set(emissions[feasible].tolist()))[1:6], math.inf]:
        if math.isinf(cut):
            expected = feasible
        elif inclusive:
            expected = feasible & (emissions <= cut * (1 + 1e-12))
        else:
            expected = feasible & (emissions < cut * (1 - 1e-12))
        marks = threshold.Marked(space, block=space.cols * 3)  # several blocks
        assert marks.count(cut, inclusive) == int(expected.sum())
        indices = np.flatnonzero(expected)
        ranks = np.random.default_rng(1).integers(0, indices.size, 17)
        np.testing.assert_array_equal(marks.pick(cut, ranks, inclusive), indices[ranks])
        with pytest.raises(ValueError, match="beyond"):
            marks.pick(cut, np.array([indices.size]), inclusive)


@pytest.mark.parametrize("family", sorted(instances.HELD_OUT_FAMILIES))
@pytest.mark.parametrize("pools", [3, 4])
def test_solver_samples_the_exact_optimum_on_held_out_instances(family: str, pools: int) -> None:
    problem = instances.family_problem(family, 7, pools, instances.HELD_OUT_SEEDS[220])
    reference = exact.solve_exact(problem)
    answer = threshold.ThresholdQAOASolver(threshold.ThresholdOptions(seed=5)).solve(problem)
    solution = planner.verify(problem, answer)
    assert solution.method == "qaoa-sample"
    assert solution.gap == 0.0
    assert solution.placement == reference.placement
    details = solution.details
    assert details["ansatz"] == "threshold-grover"
    assert details["samplingFoundOptimum"] is True
    space = subspace.PlacementSpace(problem)
    assert details["feasiblePlacements"] == space.stats.count
    # the optimum is marked alone (or with its ties): P(opt) >= 1 - delta^2
    assert details["delta"] == threshold.DEFAULT_DELTA
    assert details["probabilityOfOptimum"] >= 1 - threshold.DEFAULT_DELTA**2 - 1e-9
    n_opt = details["optimalPlacements"]
    assert details["feasibleSetRatio"] == pytest.approx(
        details["probabilityOfOptimum"] * space.stats.count / n_opt
    )
    assert details["uniformRatio"] == pytest.approx(
        details["probabilityOfOptimum"] * space.size / n_opt
    )
    # thresholds descend strictly, the marked sets shrink, the last round found nothing
    cuts = [math.inf if t is None else t for t in details["thresholds"]]
    assert all(b < a for a, b in itertools.pairwise(cuts))
    marked = details["markedPerRound"]
    assert marked[0] == space.stats.count
    assert all(b < a for a, b in itertools.pairwise(marked))
    assert marked[-1] == 0 or details["rounds"] == threshold.DEFAULT_MAX_ROUNDS
    layers = (details["fixedPointLength"] - 1) // 2
    assert details["oracleQueries"] == layers * (
        details["rounds"] * details["roundShots"] + details["finalShots"]
    )
    assert answer.depth == layers


def test_reported_probability_is_the_whole_vector_state() -> None:
    problem = instances.family_problem("heldout-close-hops", 6, 3, instances.HELD_OUT_SEEDS[230])
    answer = threshold.ThresholdQAOASolver(threshold.ThresholdOptions(seed=2)).solve(problem)
    details = answer.details
    space = subspace.PlacementSpace(problem)
    last = [t for t in details["thresholds"] if t is not None][-1]
    mask = threshold.Marked(space).mask(last, inclusive=True)
    alphas, betas = threshold.fixed_point_angles(details["fixedPointLength"], details["delta"])
    state = threshold.evolve_vector(mask, alphas, betas)
    p_opt = float(np.sum(np.abs(state[space.stats.optimal]) ** 2))
    assert details["probabilityOfOptimum"] == pytest.approx(p_opt, rel=1e-9)
    assert details["probabilityMarked"] == pytest.approx(float(np.sum(np.abs(state[mask]) ** 2)))
    feasible = space.feasible_of(np.arange(space.size))
    assert details["probabilityFeasible"] == pytest.approx(
        float(np.sum(np.abs(state[feasible]) ** 2))
    )


def test_solver_is_deterministic_for_a_seed() -> None:
    problem = instances.family_problem("heldout-spread-tight", 7, 3, instances.HELD_OUT_SEEDS[231])
    run = [
        threshold.ThresholdQAOASolver(threshold.ThresholdOptions(seed=9)).solve(problem)
        for _ in range(2)
    ]
    keep = ("thresholds", "markedPerRound", "finalMarkedShots", "probabilityOfOptimum")
    first, second = ({k: r.details[k] for k in keep} for r in run)
    assert first == second


def test_infeasible_problem_is_refused_by_the_exact_check() -> None:
    rng = np.random.default_rng(2400)
    problem = random_problem(rng, 4, 3, tight=True, hops=0)
    while subspace.PlacementSpace(problem).stats.count:
        problem = random_problem(rng, 4, 3, tight=True, hops=0)
    answer = threshold.ThresholdQAOASolver().solve(problem)
    assert answer.placement is None
    with pytest.raises(InfeasibleError, match="no feasible placement"):
        planner.verify(problem, answer)
