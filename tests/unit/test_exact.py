"""The oracle agrees with plain enumeration, obeys the tie rule, and reports infeasibility."""

from __future__ import annotations

import numpy as np
import pytest

from factories import brute_force_reference, random_problem, starved
from greenshard import model
from greenshard.errors import InfeasibleError
from greenshard.solvers import exact

METHODS = ["bruteforce", "branch-and-bound", "milp"]


@pytest.mark.parametrize("seed", range(40))
def test_every_method_matches_enumeration(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shards, pools = int(rng.integers(1, 6)), int(rng.integers(1, 5))
    hops = None if seed % 2 else int(rng.integers(0, 3))
    problem = random_problem(
        rng, shards, pools, regions=int(rng.integers(1, 4)), hops=hops, tight=seed % 3 == 0
    )
    reference = brute_force_reference(problem)
    for method in METHODS:
        if reference is None:
            with pytest.raises(InfeasibleError, match="no feasible placement"):
                exact.ExactSolver(method=method).solve(problem)
            continue
        solution = exact.ExactSolver(method=method).solve(problem)
        assert solution.placement == reference[1], method
        assert solution.emissions == pytest.approx(reference[0], rel=1e-12)
        assert solution.gap == 0.0
        assert solution.is_optimal
        assert solution.method == f"exact-{method}"


def test_ties_go_to_the_lexicographically_smallest_placement() -> None:
    rng = np.random.default_rng(7)
    problem = random_problem(rng, 4, 3)
    # Make pools 1 and 2 identical in every cost: every placement has a twin.
    compute = problem.compute.copy()
    compute[:, 2] = compute[:, 1] = compute[:, 1:].min(axis=1)
    compute[:, 0] += 1000.0
    link = np.full_like(problem.link, 0.5)
    np.fill_diagonal(link, 0.1)
    tied = model.Problem(**{**problem.__dict__, "compute": compute, "link": link})
    for method in METHODS:
        assert exact.ExactSolver(method=method).solve(tied).placement == (1, 1, 1, 1), method


def test_branch_and_bound_hands_over_to_the_milp_past_its_budget() -> None:
    rng = np.random.default_rng(3)
    problem = random_problem(rng, 6, 4, tight=True)
    reference = exact.ExactSolver(method="bruteforce").solve(problem)
    tiny = exact.ExactSolver(method="branch-and-bound", node_budget=3).solve(problem)
    assert tiny.method == "exact-milp"
    assert tiny.placement == reference.placement


def test_large_instance_is_solved_without_enumeration() -> None:
    rng = np.random.default_rng(11)
    problem = random_problem(rng, 16, 8, hops=3)  # 8**16 placements
    solution = exact.solve_exact(problem)
    assert solution.method in ("exact-branch-and-bound", "exact-milp")
    assert model.feasible(problem, solution.placement)
    milp = exact.ExactSolver(method="milp").solve(problem)
    assert milp.placement == solution.placement


def test_infeasible_message_says_what_to_do() -> None:
    rng = np.random.default_rng(5)
    problem = random_problem(rng, 4, 2, tight=True)
    with pytest.raises(InfeasibleError) as err:
        exact.solve_exact(starved(problem))
    text = str(err.value)
    assert "fits no pool" in text and "shard 0" in text and "free: 0 GPUs" in text
    assert "Free GPUs (add nodes" in text
