"""Solving off the event loop: the time and memory bounds fall back to the exact solver."""

from __future__ import annotations

import asyncio

import pytest

from greenshard import instances, planner
from greenshard.k8s import resources, solving
from greenshard.solvers import SolverConfig


def test_a_plan_in_the_child_matches_planning_inline() -> None:
    problem = instances.synthetic_problem(8, seed=3)
    config = SolverConfig(algorithm="qaoa", seed=1)
    runner = solving.SolverRunner(timeout_seconds=120)
    try:
        remote = asyncio.run(runner.plan(problem, config))
    finally:
        runner.close()
    local = planner.plan(problem, config)
    assert remote.solution.placement == local.solution.placement
    assert remote.solution.method == local.solution.method
    assert "fallbackReason" not in remote.solution.details


def test_past_the_time_bound_the_exact_solver_answers_and_says_why() -> None:
    problem = instances.synthetic_problem(16, seed=3)
    runner = solving.SolverRunner(timeout_seconds=0.05)  # the child cannot even start in time
    try:
        plan = asyncio.run(runner.plan(problem, SolverConfig(algorithm="qaoa")))
    finally:
        runner.close()
    assert plan.solution.method.startswith("exact-")
    assert plan.solution.gap == 0.0
    reason = plan.solution.details["fallbackReason"]
    assert "ran past the 0.05 s solver time bound" in reason
    condition = resources.optimized_condition(plan)
    assert condition.reason == "ExactFallback"
    assert "ran past" in condition.message
    status = resources.plan_status(plan, [f"x-{i}" for i in range(problem.num_shards)], "t")
    assert status["solver"]["fallbackReason"] == reason


def test_qaoa_over_the_memory_bound_is_not_tried() -> None:
    problem = instances.synthetic_problem(20, seed=1)
    runner = solving.SolverRunner(memory_bytes=1 << 20)
    assert "over the solver memory bound" in runner.qaoa_fits(
        problem, SolverConfig(algorithm="qaoa")
    )
    plan = asyncio.run(runner.plan(problem, SolverConfig(algorithm="qaoa")))
    assert runner._proc is None  # no child was started
    assert plan.solution.method.startswith("exact-")
    assert "GiB" in plan.solution.details["fallbackReason"]
    # auto beyond maxQubits goes exact by design, which is not a fallback
    assert runner.qaoa_fits(problem, SolverConfig(algorithm="auto", max_qubits=10)) == ""


def test_infeasible_problems_raise_the_domain_error_across_the_process() -> None:
    from greenshard.errors import InfeasibleError
    from greenshard.model import Problem

    base = instances.synthetic_problem(8, seed=3)
    starved = Problem(**{**base.__dict__, "capacity_layers": base.capacity_layers * 0})
    runner = solving.SolverRunner(timeout_seconds=120)
    try:
        with pytest.raises(InfeasibleError, match="no feasible placement"):
            asyncio.run(runner.plan(starved, SolverConfig(algorithm="qaoa")))
    finally:
        runner.close()
