"""The one-hot XY-mixer simulator against a dense reference, and its measurements."""

from __future__ import annotations

import math

import numpy as np
import pytest

from factories import random_problem
from greenshard import instances, model, planner, subspace
from greenshard.errors import InfeasibleError
from greenshard.solvers import base, exact, onehot


@pytest.mark.parametrize("mixer", onehot.MIXERS)
@pytest.mark.parametrize("pools", [2, 3, 4, 5, 6])
def test_mixer_is_a_unitary_trotter_step_of_the_graph_hamiltonian(mixer: str, pools: int) -> None:
    u = onehot.mixer_unitary(pools, 0.37, mixer)
    np.testing.assert_allclose(u.conj().T @ u, np.eye(pools), atol=1e-12)
    assert not np.allclose(np.abs(u), np.eye(pools))  # it mixes
    edges = onehot.xy_edges(pools, mixer)
    expected = pools * (pools - 1) // 2 if mixer == "complete" else (1 if pools == 2 else pools)
    assert len(edges) == expected
    assert len(set(edges)) == len(edges)
    adjacency = np.zeros((pools, pools))
    for i, j in edges:
        adjacency[i, j] = adjacency[j, i] = 1
    for beta in (1e-2, 1e-3):  # U(beta) = exp(-i beta A) + O(beta^2)
        w, v = np.linalg.eigh(adjacency)
        exact = (v * np.exp(-1j * beta * w)) @ v.conj().T
        assert np.abs(onehot.mixer_unitary(pools, beta, mixer) - exact).max() < 2 * beta**2 * pools


def test_unknown_mixer_names_the_choices() -> None:
    with pytest.raises(ValueError, match="complete, ring"):
        onehot.xy_edges(3, "star")


def _constrained_space(
    rng: np.random.Generator, shards: int, pools: int
) -> subspace.PlacementSpace:
    """The first draw that has feasible and infeasible placements (deterministic for rng)."""
    while True:
        problem = random_problem(rng, shards, pools, tight=True, hops=shards - 2)
        space = subspace.PlacementSpace(problem, tail_max=pools**2)
        if 0 < space.stats.count < space.size:
            return space


def _dense_reference(
    sim: onehot.SubspaceSimulator, gammas: list[float], betas: list[float]
) -> np.ndarray:
    space = sim.space
    every = np.arange(space.size)
    cost = (space.emissions_of(every) - sim.offset) / sim.scale + sim.penalty * ~space.feasible_of(
        every
    )
    psi = np.full(space.size, 1 / math.sqrt(space.size), dtype=complex)
    for gamma, beta in zip(gammas, betas, strict=True):
        psi = psi * np.exp(-1j * gamma * cost)
        u = onehot.mixer_unitary(space.num_pools, beta, sim.mixer)
        t = psi.reshape((space.num_pools,) * space.num_shards)
        for axis in range(space.num_shards):
            t = np.moveaxis(np.tensordot(u, t, axes=([1], [axis])), 0, axis)
        psi = t.ravel()
    return psi


@pytest.mark.parametrize(("shards", "pools", "seed"), [(5, 4, 0), (4, 5, 1), (6, 3, 2), (3, 2, 3)])
@pytest.mark.parametrize("mixer", onehot.MIXERS)
@pytest.mark.parametrize("cached", [True, False])
def test_state_matches_a_dense_simulation(
    shards: int, pools: int, seed: int, mixer: str, cached: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not cached:
        monkeypatch.setattr(onehot, "CACHE_COST_MAX", 0)
        monkeypatch.setattr(onehot, "CHUNK", 8)  # many blocks, both mixer paths
    rng = np.random.default_rng(2000 + seed)
    space = _constrained_space(rng, shards, pools)
    sim = onehot.SubspaceSimulator(space, mixer=mixer, penalty=0.7, threads=2)
    gammas, betas = list(rng.uniform(0, 3, 3)), list(rng.uniform(-1.5, 1.5, 3))
    state = sim.state(gammas, betas)
    reference = _dense_reference(sim, gammas, betas)
    assert np.abs(state - reference).max() < 2e-6
    probs = np.abs(reference) ** 2
    every = np.arange(space.size)
    cost = (space.emissions_of(every) - sim.offset) / sim.scale + sim.penalty * ~space.feasible_of(
        every
    )
    assert sim.expectation(state) == pytest.approx(float(probs @ cost), rel=1e-5)
    assert sim.feasible_probability(state) == pytest.approx(
        float(probs[space.feasible_of(every)].sum()), abs=1e-6
    )
    assert sim.optimum_probability(state) == pytest.approx(
        float(probs[space.stats.optimal].sum()), abs=1e-6
    )


def test_cost_unit_puts_feasible_costs_in_0_1_and_infeasible_above_the_penalty() -> None:
    problem = random_problem(np.random.default_rng(2100), 5, 4, tight=True, hops=2)
    space = subspace.PlacementSpace(problem)
    sim = onehot.SubspaceSimulator(space, penalty=0.5)
    cost = sim.cost()
    feasible = space.feasible_of(np.arange(space.size))
    assert cost[feasible].min() == pytest.approx(0.0, abs=1e-6)
    assert cost[feasible].max() == pytest.approx(1.0, abs=1e-6)
    assert cost[~feasible].min() >= 0.5 - 1e-6


def test_sampling_follows_the_distribution() -> None:
    rng = np.random.default_rng(2200)
    state = (rng.normal(size=300) + 1j * rng.normal(size=300)).astype(np.complex64)
    state[::3] = 0
    state /= np.linalg.norm(state)
    samples = onehot.sample(state, 200_000, np.random.default_rng(2201))
    counts = np.bincount(samples, minlength=300) / 200_000
    assert counts[::3].sum() == 0
    np.testing.assert_allclose(counts, np.abs(state) ** 2, atol=4e-3)


def test_a_problem_with_no_feasible_placement_is_refused() -> None:
    rng = np.random.default_rng(2300)
    space = subspace.PlacementSpace(random_problem(rng, 4, 3, tight=True, hops=0))
    while space.stats.count:
        space = subspace.PlacementSpace(random_problem(rng, 4, 3, tight=True, hops=0))
    with pytest.raises(ValueError, match="no feasible placement"):
        onehot.SubspaceSimulator(space)


@pytest.mark.parametrize("family", sorted(instances.HELD_OUT_FAMILIES))
def test_solver_answers_from_its_samples_and_is_checked_against_the_exact_optimum(
    family: str,
) -> None:
    problem = instances.family_problem(family, 6, 3, instances.HELD_OUT_SEEDS[40])
    reference = exact.solve_exact(problem)
    options = onehot.OneHotOptions(depth=30, shots=512, seed=3, threads=1)
    solution = planner.verify(problem, onehot.OneHotQAOASolver(options).solve(problem))
    assert solution.optimum == pytest.approx(reference.emissions, rel=1e-12)
    assert solution.optimum_placement == reference.placement
    assert model.feasible(problem, solution.placement)
    details = solution.details
    assert details["ansatz"] == "onehot-xy-complete"
    space = subspace.PlacementSpace(problem)
    assert details["feasiblePlacements"] == space.stats.count
    assert 0 < details["probabilityOfOptimum"] <= details["probabilityFeasible"] <= 1 + 1e-6
    n_opt = details["optimalPlacements"]
    assert details["feasibleSetRatio"] == pytest.approx(
        details["probabilityOfOptimum"] * space.stats.count / n_opt
    )
    assert details["uniformRatio"] == pytest.approx(details["probabilityOfOptimum"] * 3**6 / n_opt)
    sampled = details["sampledPlacement"]
    assert sampled is not None and model.feasible(problem, sampled)
    found = model.is_tie(model.emissions(problem, sampled), reference.emissions)
    assert details["samplingFoundOptimum"] == found
    assert solution.method == "qaoa-sample"
    assert solution.is_optimal == found


def test_solver_state_probability_matches_a_fresh_simulation() -> None:
    problem = instances.family_problem("heldout-close-hops", 6, 3, instances.HELD_OUT_SEEDS[41])
    options = onehot.OneHotOptions(depth=20, shots=64, seed=1, threads=1, mixer="ring")
    solution = onehot.OneHotQAOASolver(options).solve(problem)
    sim = onehot.SubspaceSimulator(subspace.PlacementSpace(problem), mixer="ring")
    state = sim.state(*onehot.linear_ramp(20, options.ramp_gamma, options.ramp_beta))
    assert solution.details["probabilityOfOptimum"] == pytest.approx(
        sim.optimum_probability(state), rel=1e-6
    )
    assert solution.details["ansatz"] == "onehot-xy-ring"


def test_solver_falls_back_and_says_so_when_no_sample_is_feasible() -> None:
    problem = instances.family_problem("heldout-spread-tight", 8, 4, instances.HELD_OUT_SEEDS[42])
    options = onehot.OneHotOptions(depth=1, shots=1, seed=0, threads=1, ramp_gamma=0.0)
    solutions = [
        planner.verify(
            problem,
            onehot.OneHotQAOASolver(onehot.OneHotOptions(**{**options.__dict__, "seed": s})).solve(
                problem
            ),
        )
        for s in range(5)
    ]
    fallbacks = [s for s in solutions if s.method == "exact-fallback"]
    assert fallbacks  # one uniform shot over 4**8 placements, < 5% feasible
    for s in fallbacks:
        assert s.details["fallbackReason"] == "QAOA sampled no feasible placement"
        assert s.is_optimal


def test_infeasible_problem_raises_the_exact_solvers_error() -> None:
    rng = np.random.default_rng(2400)
    problem = random_problem(rng, 4, 3, tight=True, hops=0)
    while subspace.PlacementSpace(problem).stats.count:
        problem = random_problem(rng, 4, 3, tight=True, hops=0)
    answer = onehot.OneHotQAOASolver().solve(problem)  # nothing to simulate, nothing found
    assert answer.placement is None
    with pytest.raises(InfeasibleError, match="no feasible placement"):
        planner.verify(problem, answer)


def test_tts99() -> None:
    assert base.tts99(0.0) == math.inf
    assert base.tts99(0.995) == 1.0
    p = 0.01
    shots = base.tts99(p)
    assert 1 - (1 - p) ** shots == pytest.approx(0.99)
