"""The classical controls a QAOA result is reported beside, at the same budget.

A QAOA answer is the best of its ``shots`` samples; each sample is one evaluation of the cost
model. The controls get that many evaluations (``budget``) and answer their best feasible
placement:

* ``uniform``: ``budget`` placements drawn uniformly from all K**S (what sampling a state that
  learned nothing gives);
* ``local-search``: random-restart steepest descent over single-shard moves (each neighbourhood
  costs S*(K-1) evaluations), restarting from a uniform placement whenever it stops;
* ``genetic``: :class:`~greenshard.solvers.classical.GeneticSolver` with a population of 32 and as
  many generations as the budget pays for;
* ``anneal``: :class:`~greenshard.solvers.classical.AnnealSolver` with 4 restarts, sweeps to fit
  the budget and no local-search polish (which it would not pay for).

Each counts its evaluations (distinct placements scored, for the genetic algorithm), and
``found`` says whether its best feasible placement ties ``optimum`` (the exact one, passed in:
solvers never import the exact solver).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from greenshard import hamiltonian, model
from greenshard.solvers import classical, local_search

CONTROLS = ("uniform", "local-search", "genetic", "anneal")
GENETIC_POPULATION = 32
ANNEAL_RESTARTS = 4


@dataclass(frozen=True)
class Control:
    name: str
    budget: int
    evaluations: int
    best: float | None  # emissions of the best feasible placement seen (None: none feasible)
    found: bool  # best ties the optimum

    def gap(self, optimum: float) -> float | None:
        if self.best is None:
            return None
        return 0.0 if self.found else (self.best - optimum) / abs(optimum)


def at_budget(problem: model.Problem, budget: int, seed: int, optimum: float) -> list[Control]:
    """Every control of :data:`CONTROLS` at ``budget`` cost evaluations, seeded."""
    if budget < 1:
        raise ValueError("the budget is at least one evaluation")
    penalty = hamiltonian.CostHamiltonian(problem).penalty
    runs = (
        ("uniform", _uniform(problem, budget, seed, penalty)),
        ("local-search", _local_search(problem, budget, seed, penalty)),
        ("genetic", _genetic(problem, budget, seed)),
        ("anneal", _anneal(problem, budget, seed)),
    )
    return [
        Control(name, budget, used, best, best is not None and model.is_tie(best, optimum))
        for name, (best, used) in runs
    ]


def _best_feasible(
    problem: model.Problem, placements: npt.NDArray[np.int64], penalty: float
) -> tuple[float | None, npt.NDArray[np.float64]]:
    """The least emissions among the feasible rows (None: none), and every row's score
    (emissions + penalty per violation, what the descent compares)."""
    emissions, violations = local_search.placement_terms(problem, placements)
    feasible = violations == 0
    best = float(emissions[feasible].min()) if feasible.any() else None
    return best, emissions + penalty * violations


def _lower(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def _uniform(
    problem: model.Problem, budget: int, seed: int, penalty: float
) -> tuple[float | None, int]:
    rng = np.random.default_rng(seed)
    best: float | None = None
    for lo in range(0, budget, 65536):
        n = min(65536, budget - lo)
        draws = rng.integers(0, problem.num_pools, (n, problem.num_shards), dtype=np.int64)
        best = _lower(best, _best_feasible(problem, draws, penalty)[0])
    return best, budget


def _local_search(
    problem: model.Problem, budget: int, seed: int, penalty: float
) -> tuple[float | None, int]:
    rng = np.random.default_rng(seed)
    s_count, k_count = problem.num_shards, problem.num_pools
    best: float | None = None
    used = 0
    while used < budget:
        current = rng.integers(0, k_count, (1, s_count), dtype=np.int64)
        found, scores = _best_feasible(problem, current, penalty)
        best, score, used = _lower(best, found), float(scores[0]), used + 1
        while used < budget:
            moves = local_search.neighbours(current[0], k_count)[: budget - used]
            if not len(moves):
                break
            found, scores = _best_feasible(problem, moves, penalty)
            best, used = _lower(best, found), used + len(moves)
            i = int(np.argmin(scores))
            if scores[i] >= score:
                break
            current, score = moves[i : i + 1], float(scores[i])
    return best, used


def _feasible_emissions(problem: model.Problem, placement: tuple[int, ...]) -> float | None:
    if model.violations(problem, placement):
        return None
    return model.emissions(problem, placement)


def _genetic(problem: model.Problem, budget: int, seed: int) -> tuple[float | None, int]:
    population = min(GENETIC_POPULATION, budget)
    # every generation scores at most population - 2 new children (2 elites carry over)
    generations = max(0, (budget - population) // max(1, population - 2))
    solver = classical.GeneticSolver(seed=seed, population=population, generations=generations)
    answer = solver.solve(problem)
    assert answer.placement is not None
    return _feasible_emissions(problem, answer.placement), answer.evaluations


def _anneal(problem: model.Problem, budget: int, seed: int) -> tuple[float | None, int]:
    s_count = problem.num_shards
    restarts = max(1, min(ANNEAL_RESTARTS, budget // (1 + s_count)))
    sweeps = max(1, math.floor((budget / restarts - 1) / s_count))
    solver = classical.AnnealSolver(seed=seed, restarts=restarts, sweeps=sweeps, polish=False)
    answer = solver.solve(problem)
    assert answer.placement is not None
    return _feasible_emissions(problem, answer.placement), answer.evaluations
