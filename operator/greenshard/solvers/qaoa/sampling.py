"""Reading answers out of a QAOA state: shots drawn from |psi|^2, the best feasible sample, the
probability of the optimal placements, and the local-search polish from the best samples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from greenshard import hamiltonian, model
from greenshard.solvers.local_search import local_search, placement_scores

SAMPLE_BLOCK = 1 << 16  # basis states per block when sampling
POLISH_STARTS = 4  # local searches from the lowest-cost distinct samples


def sample_indices(
    state: npt.NDArray[np.complex64], shots: int, rng: np.random.Generator
) -> npt.NDArray[np.int64]:
    """``shots`` basis indices drawn from |state|^2: a block by multinomial, then an index inside
    it, so no full-size probability or CDF array is ever built."""
    flat = state.view(np.float32)
    starts = np.arange(0, state.size, SAMPLE_BLOCK)
    weights = np.array(
        [
            float(
                np.dot(
                    flat[2 * lo : 2 * (lo + SAMPLE_BLOCK)], flat[2 * lo : 2 * (lo + SAMPLE_BLOCK)]
                )
            )
            for lo in starts
        ]
    )
    counts = rng.multinomial(shots, weights / weights.sum())
    picks = []
    for lo, count in zip(starts.tolist(), counts.tolist(), strict=True):
        if count:
            block = flat[2 * lo : 2 * (lo + SAMPLE_BLOCK)].astype(np.float64)
            cdf = np.cumsum(block[0::2] ** 2 + block[1::2] ** 2)
            inside = np.searchsorted(cdf, rng.random(count) * cdf[-1], side="right")
            picks.append(lo + np.minimum(inside, cdf.size - 1))
    return np.concatenate(picks).astype(np.int64) if picks else np.zeros(0, dtype=np.int64)


def optimal_indices(
    problem: model.Problem,
    ham: hamiltonian.CostHamiltonian,
    cost: npt.NDArray[np.float32],
    optimum: float,
    offset: float | None = None,
    scale: float | None = None,
) -> npt.NDArray[np.int64]:
    """Basis indices of every optimal placement (ties included): the states whose float32 cost
    is within rounding of the optimum's, checked with the formula."""
    offset = ham.lower_bound if offset is None else offset
    scale = ham.scale() if scale is None else scale
    level = (optimum - offset) / scale
    near = np.flatnonzero(cost <= np.float32(level + 1e-5 * max(abs(level), 1.0)))
    keep = []
    for index in near.tolist():
        placement = ham.decode(hamiltonian.index_to_bits(index, ham.num_qubits))
        if (
            placement is not None
            and model.feasible(problem, placement)
            and ties(problem, placement, optimum)
        ):
            keep.append(index)
    return np.array(keep, dtype=np.int64)


def probability_of_indices(
    state: npt.NDArray[np.complex64], indices: npt.NDArray[np.int64]
) -> float:
    """sum |<x|psi>|^2 over the given basis states x."""
    amplitudes = state[indices].astype(np.complex128)
    return float(np.sum(amplitudes.real**2 + amplitudes.imag**2))


def best_sampled(
    problem: model.Problem,
    ham: hamiltonian.CostHamiltonian,
    cost: npt.NDArray[np.float32],
    samples: npt.NDArray[np.int64],
) -> tuple[int, ...] | None:
    """The least-emissions feasible placement among the samples (ties: lexicographically first),
    or None. Infeasible states cost more than any feasible one, so only the samples whose float32
    cost is within rounding of the least can be it; those are checked with the formula."""
    unique = np.unique(samples)
    if unique.size == 0:
        return None
    values = cost[unique].astype(np.float64)
    low = float(values.min())
    near = unique[values <= low + 1e-5 * max(low, 1.0)]
    best: tuple[int, ...] | None = None
    best_e = np.inf
    for index in near.tolist():  # ascending index: lexicographic placement order
        placement = ham.decode(hamiltonian.index_to_bits(index, ham.num_qubits))
        if placement is None or not model.feasible(problem, placement):
            continue
        e = model.emissions(problem, placement)
        if best is None or e < best_e - model.TIE_RTOL * abs(best_e):
            best, best_e = placement, e
    return best


def ties(problem: model.Problem, placement: Sequence[int], optimum: float) -> bool:
    return model.is_tie(model.emissions(problem, placement), optimum)


def better(problem: model.Problem, a: Sequence[int], b: Sequence[int]) -> bool:
    """Whether feasible placement a emits strictly less than b (beyond the tie tolerance)."""
    ea, eb = model.emissions(problem, a), model.emissions(problem, b)
    return ea < eb and not model.is_tie(ea, eb)


def polish(
    problem: model.Problem,
    ham: hamiltonian.CostHamiltonian,
    cost: npt.NDArray[np.float32],
    samples: npt.NDArray[np.int64],
) -> tuple[int, ...]:
    """Local search (single and pair moves) from each of the lowest-cost distinct samples (unused
    codes clamped to the last pool); the best result, ties to the lexicographically first."""
    unique = np.unique(samples)
    starts = unique[np.argsort(cost[unique], kind="stable")[:POLISH_STARTS]].tolist() or [0]
    results = set()
    for index in starts:
        codes = ham.codes_of(hamiltonian.index_to_bits(int(index), ham.num_qubits))
        start = tuple(min(k, ham.num_pools - 1) for k in codes)
        results.add(local_search(problem, start, pairs=True))
    ranked = sorted(results)
    scores = placement_scores(problem, np.array(ranked, dtype=np.int64), ham.penalty)
    low = float(scores.min())
    return next(
        r
        for r, v in zip(ranked, scores.tolist(), strict=True)
        if v <= low + model.TIE_RTOL * abs(low)
    )
