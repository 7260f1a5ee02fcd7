"""Classical local search over placements: steepest descent on emissions plus a penalty per
violation, over single-shard, pair and run moves (ties to the lexicographically smallest)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from greenshard import hamiltonian, model


def local_search(
    problem: model.Problem, start: Sequence[int], pairs: bool = False
) -> tuple[int, ...]:
    """Steepest descent on emissions + a penalty per violation over single-shard moves and, with
    ``pairs``, moves of two shards at once or of a run of shards (memory limits and costly region
    changes often block every single move).

    Ties between moves go to the lexicographically smallest placement."""
    penalty = hamiltonian.CostHamiltonian(problem).penalty
    current = np.array([int(k) for k in start], dtype=np.int64)
    current_score = float(placement_scores(problem, current[None, :], penalty)[0])
    while True:
        moves = neighbours(current, problem.num_pools, pairs)
        if moves.size == 0:
            return tuple(int(k) for k in current)
        scores = placement_scores(problem, moves, penalty)
        low = float(scores.min())
        tied = moves[scores <= low + model.TIE_RTOL * abs(low)]
        best = tied[np.lexsort(tied.T[::-1])[0]]
        better = low < current_score - model.TIE_RTOL * abs(current_score)
        tie = model.is_tie(low, current_score) and tuple(best) < tuple(current)
        if not (better or tie):
            return tuple(int(k) for k in current)
        current, current_score = best, low


def placement_scores(
    problem: model.Problem, placements: npt.NDArray[np.int64], penalty: float
) -> npt.NDArray[np.float64]:
    """Emissions + penalty * number of violations (packing, hop and latency limits) per row."""
    emissions, violations = placement_terms(problem, placements)
    return np.asarray(emissions + penalty * violations, dtype=np.float64)


def placement_terms(
    problem: model.Problem, placements: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """(emissions, number of violations) per row."""
    shards = placements.shape[1]
    emissions = problem.compute[np.arange(shards), placements].sum(axis=1)
    emissions += problem.link[placements[:, :-1], placements[:, 1:]].sum(axis=1)
    violations = model.violation_counts(problem, placements)
    return np.asarray(emissions, dtype=np.float64), np.asarray(violations, dtype=np.int64)


def neighbours(
    current: npt.NDArray[np.int64], pools: int, pairs: bool = False
) -> npt.NDArray[np.int64]:
    """Every placement that differs from current in one shard; with ``pairs`` also in two, or
    by a run of consecutive shards moved to one pool (placements are mostly runs)."""
    shards = current.size
    changes: list[tuple[tuple[int, int], ...]] = [
        ((s, k),) for s in range(shards) for k in range(pools) if k != current[s]
    ]
    if pairs:
        changes += [
            ((s, k), (t, j))
            for s, t in itertools.combinations(range(shards), 2)
            for k in range(pools)
            if k != current[s]
            for j in range(pools)
            if j != current[t]
        ]
        changes += [
            tuple((s, k) for s in range(a, b + 1))
            for a, b in itertools.combinations(range(shards), 2)
            for k in range(pools)
        ]
    moves = np.repeat(current[None, :], len(changes), axis=0)
    for row, change in enumerate(changes):
        for s, k in change:
            moves[row, s] = k
    return moves
