"""The classical comparisons: a genetic algorithm (the preprint's) and simulated annealing.

Both search placements directly and score them by emissions plus a penalty per violation, so
they need no encoding; both are seeded and deterministic. Each answers its best placement; the
planner verifies it against the exact optimum (:func:`greenshard.planner.verify`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from greenshard import hamiltonian, model
from greenshard.solvers import base, local_search


def _scorer(problem: model.Problem) -> Callable[[tuple[int, ...]], float]:
    """Emissions plus the Hamiltonian's penalty per violation."""
    penalty = hamiltonian.CostHamiltonian(problem).penalty

    def score(placement: tuple[int, ...]) -> float:
        return model.emissions(problem, placement) + penalty * len(
            model.violations(problem, placement)
        )

    return score


def _finish(
    best: tuple[int, ...],
    method: str,
    name: str,
    evaluations: int,
    start: float,
    **details: object,
) -> base.Answer:
    """The best placement seen (possibly infeasible: the planner then falls back to the exact
    optimum and says so)."""
    return base.Answer(
        best,
        method,
        name,
        no_answer=f"{name} found no feasible placement",
        evaluations=evaluations,
        wall_seconds=time.perf_counter() - start,
        details=details,
    )


@dataclass
class GeneticSolver:
    """Tournament selection, one-point crossover, per-gene mutation, elitism."""

    seed: int = 0
    population: int = 64
    generations: int = 200
    mutation: float = 0.1
    name: str = "genetic"

    def solve(self, problem: model.Problem) -> base.Answer:
        start = time.perf_counter()
        rng = np.random.default_rng(self.seed)
        score = _scorer(problem)
        s_count, k_count = problem.num_shards, problem.num_pools
        pop = [
            tuple(int(k) for k in rng.integers(0, k_count, s_count)) for _ in range(self.population)
        ]
        cache: dict[tuple[int, ...], float] = {}

        def fitness(ind: tuple[int, ...]) -> float:
            if ind not in cache:
                cache[ind] = score(ind)
            return cache[ind]

        for _ in range(self.generations):
            ranked = sorted(pop, key=lambda ind: (fitness(ind), ind))
            nxt = ranked[:2]  # elitism
            while len(nxt) < self.population:
                parents = []
                for _ in range(2):
                    a, b = rng.integers(0, len(ranked), 2)
                    parents.append(ranked[min(a, b)])
                cut = int(rng.integers(1, s_count)) if s_count > 1 else 0
                child = list(parents[0][:cut] + parents[1][cut:])
                for s in range(s_count):
                    if rng.random() < self.mutation:
                        child[s] = int(rng.integers(0, k_count))
                nxt.append(tuple(child))
            pop = nxt
        best = min(pop, key=lambda ind: (fitness(ind), ind))
        return _finish(
            best,
            "genetic",
            self.name,
            len(cache),
            start,
            generations=self.generations,
            population=self.population,
        )


@dataclass
class AnnealSolver:
    """Simulated annealing with restarts: single-shard moves and swaps of two shards' pools
    (which cross memory walls that single moves cannot), geometric cooling from above the
    penalty, then a local search from the best placement seen."""

    seed: int = 0
    sweeps: int = 300
    restarts: int = 4
    polish: bool = True  # a local search from the best placement seen (evaluations uncounted)
    name: str = "anneal"

    def solve(self, problem: model.Problem) -> base.Answer:
        start = time.perf_counter()
        rng = np.random.default_rng(self.seed)
        score = _scorer(problem)
        penalty = hamiltonian.CostHamiltonian(problem).penalty
        s_count, k_count = problem.num_shards, problem.num_pools
        best: tuple[int, ...] | None = None
        best_e = math.inf
        evaluations = 0
        t_cold = max(float(np.ptp(problem.compute)), 1e-12) * 1e-4
        t_hot = max(penalty, t_cold * 10)
        steps = max(1, self.sweeps * s_count)
        for _ in range(self.restarts):
            current = tuple(int(k) for k in rng.integers(0, k_count, s_count))
            current_e = score(current)
            evaluations += 1
            for step in range(steps):
                temp = t_hot * (t_cold / t_hot) ** (step / steps)
                cand = list(current)
                if s_count > 1 and rng.random() < 0.5:
                    a, b = (int(x) for x in rng.choice(s_count, 2, replace=False))
                    cand[a], cand[b] = cand[b], cand[a]
                else:
                    cand[int(rng.integers(0, s_count))] = int(rng.integers(0, k_count))
                candidate = tuple(cand)
                if candidate == current:
                    continue
                e = score(candidate)
                evaluations += 1
                if e <= current_e or rng.random() < math.exp(-(e - current_e) / temp):
                    current, current_e = candidate, e
                    if best is None or e < best_e or (model.is_tie(e, best_e) and candidate < best):
                        best, best_e = candidate, e
        assert best is not None
        if self.polish:
            best = local_search.local_search(problem, best)
        return _finish(
            best,
            "anneal",
            self.name,
            evaluations,
            start,
            sweeps=self.sweeps,
            restarts=self.restarts,
        )
