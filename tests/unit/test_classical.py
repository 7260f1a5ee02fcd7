"""Genetic and annealing solvers: deterministic by seed, checked against the oracle."""

from __future__ import annotations

import numpy as np
import pytest

from factories import random_problem
from greenshard import model, planner
from greenshard.errors import InfeasibleError
from greenshard.solvers import classical, exact
from greenshard.solvers.registry import SolverConfig, make_solver


@pytest.mark.parametrize("solver_cls", [classical.GeneticSolver, classical.AnnealSolver])
@pytest.mark.parametrize("seed", range(8))
def test_classical_solvers_reach_the_optimum_on_small_instances(
    solver_cls: type, seed: int
) -> None:
    rng = np.random.default_rng(100 + seed)
    problem = random_problem(rng, 6, 3, hops=2 if seed % 2 else None, tight=seed % 3 == 0)
    try:
        reference = exact.solve_exact(problem)
    except InfeasibleError:
        with pytest.raises(InfeasibleError, match="no feasible placement"):
            planner.verify(problem, solver_cls(seed=seed).solve(problem))
        return
    solution = planner.verify(problem, solver_cls(seed=seed).solve(problem))
    assert model.feasible(problem, solution.placement)
    assert solution.optimum == pytest.approx(reference.emissions)
    assert solution.gap == pytest.approx(
        (solution.emissions - reference.emissions) / reference.emissions, abs=1e-12
    )
    assert solution.gap == 0.0
    assert solution.placement == reference.placement


@pytest.mark.parametrize("algorithm", ["genetic", "anneal"])
def test_same_seed_same_answer(algorithm: str) -> None:
    problem = random_problem(np.random.default_rng(1), 8, 4, tight=True)
    a = make_solver(SolverConfig(algorithm=algorithm, seed=3)).solve(problem)
    b = make_solver(SolverConfig(algorithm=algorithm, seed=3)).solve(problem)
    assert a.placement == b.placement and a.evaluations == b.evaluations


def test_auto_goes_exact_beyond_max_qubits_and_says_why() -> None:
    problem = random_problem(np.random.default_rng(2), 8, 4)  # 16 qubits
    solution = planner.solve(problem, SolverConfig(algorithm="auto", max_qubits=10))
    assert solution.method.startswith("exact-")
    assert solution.qubits == 16  # log2 of 4**8 amplitudes
    assert solution.details["reason"] == (
        "placement table of 4**8 = 65536 placements exceeds maxQubits=10 (2^10 placements); "
        "solved exactly instead"
    )
    config = SolverConfig(algorithm="auto", ansatz="binary", max_qubits=10)
    solution = planner.solve(problem, config)
    assert solution.details["reason"] == (
        "16 qubits exceeds maxQubits=10 (2^10 amplitudes); solved exactly instead"
    )


def test_plan_reports_baseline_and_savings() -> None:
    problem = random_problem(np.random.default_rng(6), 5, 4)
    result = planner.plan(problem, SolverConfig(algorithm="exact"))
    unaware = exact.solve_exact(problem.with_unit_intensity())
    assert result.baseline.placement == unaware.placement
    assert result.baseline_emissions == pytest.approx(model.emissions(problem, unaware.placement))
    assert result.emissions <= result.baseline_emissions
    expected = 100 * (result.baseline_emissions - result.emissions) / result.baseline_emissions
    assert result.savings_percent == pytest.approx(expected)
    data = result.to_dict()
    assert data["pools"] == problem.pool_keys()
    assert [row["shard"] for row in data["placement"]] == list(range(5))
