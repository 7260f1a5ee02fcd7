"""planner.verify: solvers only solve; the planner checks each answer against the exact optimum once
(the fallback, the tie rule, the gap, and what the solver needs the optimum for)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from importlinter import cli as importlinter

from factories import random_problem, starved
from greenshard import instances, model, planner
from greenshard.errors import InfeasibleError
from greenshard.solvers import base, exact
from greenshard.solvers.registry import SolverConfig

ROOT = Path(__file__).resolve().parents[2]


def tied_problem() -> model.Problem:
    """Pools 1 and 2 alike in every cost: (1, 1, 1, 1) is the optimum, (2, 2, 2, 2) its twin."""
    problem = random_problem(np.random.default_rng(7), 4, 3)
    compute = problem.compute.copy()
    compute[:, 2] = compute[:, 1] = compute[:, 1:].min(axis=1)
    compute[:, 0] += 1000.0
    link = np.full_like(problem.link, 0.5)
    np.fill_diagonal(link, 0.1)
    return model.Problem(**{**problem.__dict__, "compute": compute, "link": link})


def test_no_solver_imports_the_exact_solver_and_the_planner_no_solver_internals() -> None:
    """The import-linter contracts (pyproject.toml) that keep verification in the planner."""
    code = importlinter.lint_imports(
        config_filename=str(ROOT / "pyproject.toml"),
        limit_to_contracts=("solvers-only-solve", "planner-knows-no-solver"),
        no_cache=True,
        no_logo=True,
    )
    assert code == 0


def test_an_answer_without_a_feasible_placement_falls_back_to_the_optimum_and_says_why() -> None:
    problem = random_problem(np.random.default_rng(3), 5, 3, tight=True)
    reference = exact.solve_exact(problem)
    infeasible = next(
        p
        for p in itertools.product(range(problem.num_pools), repeat=problem.num_shards)
        if not model.feasible(problem, p)
    )
    for placement, reason in ((None, "toy sampled nothing"), (infeasible, "")):
        answer = base.Answer(placement, "toy", "toy", no_answer=reason, evaluations=7)
        solution = planner.verify(problem, answer)
        assert solution.method == "exact-fallback"
        assert solution.placement == reference.placement
        assert solution.details["fallbackReason"] == (reason or "toy found no feasible placement")
        assert solution.gap == 0.0 and solution.is_optimal
        assert (solution.solver, solution.evaluations) == ("toy", 7)


def test_an_answer_that_ties_the_optimum_is_reported_as_the_optimum_under_its_tie_rule() -> None:
    problem = tied_problem()
    twin = (2, 2, 2, 2)
    assert exact.solve_exact(problem).placement == (1, 1, 1, 1)
    assert model.feasible(problem, twin)
    assert model.is_tie(model.emissions(problem, twin), model.emissions(problem, (1, 1, 1, 1)))
    ruled = planner.verify(problem, base.Answer(twin, "qaoa-sample", "qaoa", tie_rule=True))
    assert ruled.placement == (1, 1, 1, 1) and ruled.method == "qaoa-sample"
    assert ruled.details["tieRule"].startswith("[2, 2, 2, 2] ties the optimum")
    assert ruled.is_optimal and ruled.gap == 0.0
    kept = planner.verify(problem, base.Answer(twin, "genetic", "genetic"))
    assert kept.placement == twin and "tieRule" not in kept.details
    assert kept.gap == 0.0 and not kept.is_optimal


def test_the_solver_reads_its_figures_against_the_optimum_once() -> None:
    problem = random_problem(np.random.default_rng(4), 5, 3)
    reference = exact.solve_exact(problem)
    calls: list[tuple[float, tuple[int, ...]]] = []

    def against(optimum: float, placement: tuple[int, ...]) -> dict[str, Any]:
        calls.append((optimum, placement))
        return {"probabilityOfOptimum": 0.25}

    answer = base.Answer(
        reference.placement, "qaoa-sample", "qaoa", details={"shots": 3}, against=against
    )
    solution = planner.verify(problem, answer)
    assert calls == [(reference.emissions, reference.placement)]
    assert solution.details == {"shots": 3, "probabilityOfOptimum": 0.25}
    assert solution.optimum == reference.emissions and solution.is_optimal


def test_an_exact_solution_is_its_own_proof() -> None:
    problem = random_problem(np.random.default_rng(5), 4, 3)
    solution = exact.solve_exact(problem)
    assert planner.verify(problem, solution) is solution


def test_an_infeasible_problem_raises_the_exact_solvers_error() -> None:
    problem = starved(instances.synthetic_problem(8, seed=3))
    with pytest.raises(InfeasibleError, match="no feasible placement"):
        planner.verify(problem, base.Answer(None, "qaoa-sample", "qaoa"))


def test_a_bounded_plan_solves_exactly_once_for_the_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fallback sent first is the reference the QAOA answer is checked against; the other
    exact solve is the carbon-unaware baseline."""
    problem = instances.synthetic_problem(8, seed=3)
    solved: list[model.Problem] = []
    original = exact.ExactSolver.solve

    def counting(self: exact.ExactSolver, problem: model.Problem) -> base.Solution:
        solved.append(problem)
        return original(self, problem)

    monkeypatch.setattr(exact.ExactSolver, "solve", counting)
    sent: list[Any] = []
    config = SolverConfig(algorithm="qaoa", depth=5, shots=64, seed=1)
    planner.solve_within(problem, config, time.monotonic() + 600, sent.append)
    assert [m[0] for m in sent] == ["incumbent", "fallback", "solution", "ok"]
    assert [p is problem for p in solved] == [True, False]  # the reference, then the baseline
    fallback, solution = sent[1][1], sent[2][1]
    assert solution.optimum == fallback.emissions
    assert solution.optimum_placement == fallback.placement
    inline = planner.solve(problem, config)
    assert (solution.placement, solution.method, solution.gap) == (
        inline.placement,
        inline.method,
        inline.gap,
    )
    assert solution.details.keys() == inline.details.keys()
