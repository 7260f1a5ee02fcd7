"""Threshold QAOA with a Grover mixer in the one-hot subspace, on the fixed-point schedule.

The ansatz
----------
The placements are the one-hot states of the S*K-qubit register (one of K per shard), as in
:mod:`greenshard.solvers.onehot`; the start is their uniform superposition ``|s>`` (a W state per
shard). A layer is

* the **threshold phase separator** ``S_t(beta) = exp(i beta P_th)``, with ``P_th`` the projector on
  the *marked* placements: feasible and with emissions below a threshold ``th`` (Th-QAOA, Golden,
  Baertschi, O'Malley, Eidenbenz 2021; the oracle is the cost-model check and one comparison,
  computed per basis state like any QAOA phase);
* the **Grover mixer** ``S_s(alpha) = I - (1 - exp(-i alpha)) |s><s|`` (Baertschi and Eidenbenz
  2020): the reflection about the start state, which never leaves the one-hot subspace, built as
  ``U_W (I - (1 - exp(-i alpha)) |0><0|) U_W^dagger`` from the W-state preparation.

Angles: the fixed-point schedule of Yoder, Low and Chuang (PRL 113, 210501, 2014):
``alpha_j = -beta_{l-j+1} = 2 arccot(tan(2 pi j / L) sqrt(1 - g^2))``, ``1/g = T_{1/L}(1/delta)``,
``L = 2l + 1``. It needs no knowledge of how many placements are marked: whenever the marked
fraction is at least ``w = 1 - g^2`` the state is marked with probability at least
``1 - delta^2``; :func:`fixed_point_length` picks the least L with ``w <= 1/K**S``, so one marked
placement is enough (``L ~ arccosh(1/delta) sqrt(K**S)`` layers). Nothing is fitted per instance.

The thresholds descend (Grover adaptive search, Gilliam, Woerner and Gonciulea 2021): start at
``th = inf`` (every feasible placement is marked), prepare the state, measure ``round_shots``
shots, lower ``th`` to the best marked sample, repeat. A round whose shots hold no marked
placement stops the descent: if any placement beat ``th`` each shot would have found one with
probability ``>= 1 - delta^2``, so the descent stops above the optimum with probability at most
``delta^(2 m)`` per round (6.4e-5 for the defaults, delta 0.2 and m = 3 shots a round, chosen on
the training families: docs/solving.md). The production state is the one prepared with the last
threshold *inclusive* (the best placements found are marked): when that is the optimum, P(opt) is
at least ``1 - delta^2``. Its remaining shots are measured too.

Simulation
----------
Both operators map ``span{|T>, |R>}`` into itself (``|T>``, ``|R>``: the uniform superpositions of
the marked and of the other placements) and ``|s> = sqrt(lam)|T> + sqrt(1 - lam)|R>`` with
``lam = M / K**S``, so the state is exactly two amplitudes (:func:`evolve_two_level`); the state
over all K**S placements is those two spread uniformly (:func:`state_vector`, which the tests also
evolve operator by operator over the whole vector). This is why Grover-mixer QAOA is classically
simulable once the marked count is known (a scan of the cost table per threshold): the quantum
resource it models is the depth, ``l`` layers per preparation, reported as ``depth`` and
``oracleQueries``. tests/slow/test_threshold_equivalence.py runs the S*K-qubit circuit on qsim
(W states and their inverse, a multi-controlled phase, the threshold phase as a register
diagonal) and matches these amplitudes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import cirq
import numpy as np
import numpy.typing as npt

from greenshard import model, subspace
from greenshard.solvers import base, onehot

DEFAULT_DELTA = 0.2  # fitted: docs/solving.md
DEFAULT_ROUND_SHOTS = 3
DEFAULT_MAX_ROUNDS = 64
DEFAULT_SHOTS = onehot.DEFAULT_SHOTS
FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex128]


# ------------------------------------------------------------------------------ the schedule


def _chebyshev_inverse_order(order: float, x: float) -> float:
    """T_order(x) for x >= 1 (cosh(order * arccosh x))."""
    return math.cosh(order * math.acosh(x))


def fixed_point_width(length: int, delta: float) -> float:
    """w = 1 - g^2: the least marked fraction the schedule of ``length`` queries guarantees."""
    g = 1.0 / _chebyshev_inverse_order(1.0 / length, 1.0 / delta)
    return 1.0 - g * g


def fixed_point_length(size: int, delta: float = DEFAULT_DELTA) -> int:
    """The least odd L = 2l + 1 whose guaranteed fraction w is at most 1/size (one marked
    placement of ``size``)."""
    if not 0.0 < delta < 1.0:
        raise ValueError("delta must be in (0, 1)")
    length = 2 * math.ceil((math.acosh(1.0 / delta) * math.sqrt(size) - 1.0) / 2.0) + 1
    length = max(length, 3)
    while fixed_point_width(length, delta) > 1.0 / size:
        length += 2
    while length > 3 and fixed_point_width(length - 2, delta) <= 1.0 / size:
        length -= 2
    return length


def fixed_point_angles(length: int, delta: float) -> tuple[FloatArray, FloatArray]:
    """(alphas, betas) of the l = (L - 1)/2 layers, in the order they are applied."""
    if length < 3 or length % 2 == 0:
        raise ValueError("the fixed-point length is odd and at least 3")
    layers = (length - 1) // 2
    g = 1.0 / _chebyshev_inverse_order(1.0 / length, 1.0 / delta)
    root = math.sqrt(max(0.0, 1.0 - g * g))
    j = np.arange(1, layers + 1, dtype=np.float64)
    alphas = 2.0 * np.arctan2(1.0, np.tan(2.0 * math.pi * j / length) * root)
    return alphas, -alphas[::-1].copy()


# ------------------------------------------------------------------------------ simulation


def evolve_two_level(fraction: float, alphas: FloatArray, betas: FloatArray) -> ComplexArray:
    """(amplitude of |T>, amplitude of |R>) after the layers, from |s>; exact in complex128."""
    s = np.array([math.sqrt(fraction), math.sqrt(max(0.0, 1.0 - fraction))], dtype=np.complex128)
    psi = s.copy()
    for alpha, beta in zip(alphas.tolist(), betas.tolist(), strict=True):
        psi[0] *= np.exp(1j * beta)
        psi -= (1.0 - np.exp(-1j * alpha)) * s * np.vdot(s, psi)
        psi = -psi
    return psi


def state_vector(marked: npt.NDArray[np.bool_], amplitudes: ComplexArray) -> ComplexArray:
    """The state over every placement: |T>'s amplitude spread over the marked placements, |R>'s
    over the others."""
    count = int(marked.sum())
    out = np.empty(marked.size, dtype=np.complex128)
    out[marked] = amplitudes[0] / math.sqrt(count) if count else 0.0
    rest = marked.size - count
    out[~marked] = amplitudes[1] / math.sqrt(rest) if rest else 0.0
    return out


def evolve_vector(
    marked: npt.NDArray[np.bool_], alphas: FloatArray, betas: FloatArray
) -> ComplexArray:
    """The same evolution applied operator by operator to the whole vector (the reference the
    two-level form is tested against)."""
    size = marked.size
    s = np.full(size, 1.0 / math.sqrt(size), dtype=np.complex128)
    psi = s.copy()
    for alpha, beta in zip(alphas.tolist(), betas.tolist(), strict=True):
        psi[marked] *= np.exp(1j * beta)
        psi -= (1.0 - np.exp(-1j * alpha)) * s * np.vdot(s, psi)
        psi = -psi
    return psi


def grover_mixer_circuit(num_shards: int, num_pools: int, alpha: float) -> cirq.Circuit:
    """The Grover mixer on the S*K-qubit register (:func:`onehot.register_qubits`):
    ``U_W (I - (1 - exp(-i alpha)) |0><0|) U_W^dagger`` with ``U_W`` the W-state preparation of
    every shard; the middle is X on every qubit, a multi-controlled Z power, X again."""
    qubits = onehot.register_qubits(num_shards, num_pools)
    prep = cirq.Circuit(
        onehot.w_state_ops(qubits[s * num_pools : (s + 1) * num_pools]) for s in range(num_shards)
    )
    flip = [cirq.X(q) for q in qubits]
    phase = cirq.ZPowGate(exponent=-alpha / math.pi).on(qubits[-1]).controlled_by(*qubits[:-1])
    return cirq.Circuit(cirq.inverse(prep), flip, phase, flip, prep)


# ------------------------------------------------------------------------------ the oracle


def _tolerance(threshold: float) -> float:
    return model.TIE_RTOL * max(abs(threshold), 1e-300)


@dataclass
class Marked:
    """The marked placements of a threshold, by scanning the factorised cost table in blocks
    (no table of the feasible set is kept: memory is the space's mask)."""

    space: subspace.PlacementSpace
    block: int = subspace.BLOCK  # table entries a scan holds at once

    def _rows(self, lo: int, hi: int, threshold: float, inclusive: bool) -> npt.NDArray[np.bool_]:
        ok = self.space.feasible_rows(lo, hi).copy()
        if math.isfinite(threshold):
            emissions = self.space.emissions_rows(lo, hi)
            if inclusive:
                ok &= emissions <= threshold + _tolerance(threshold)
            else:
                ok &= emissions < threshold - _tolerance(threshold)
        return ok

    def count(self, threshold: float, inclusive: bool = False) -> int:
        if not math.isfinite(threshold):
            return self.space.stats.count
        return sum(
            int(np.count_nonzero(self._rows(lo, hi, threshold, inclusive)))
            for lo, hi in self.space.row_blocks(self.block)
        )

    def pick(
        self, threshold: float, ranks: npt.NDArray[np.int64], inclusive: bool = False
    ) -> npt.NDArray[np.int64]:
        """The placements (indices) at the given ranks among the marked ones, in index order."""
        order = np.argsort(ranks)
        wanted = ranks[order]
        out = np.empty(ranks.size, dtype=np.int64)
        seen, at = 0, 0
        cols = self.space.cols
        for lo, hi in self.space.row_blocks(self.block):
            if at == wanted.size:
                break
            positions = np.flatnonzero(self._rows(lo, hi, threshold, inclusive).ravel())
            inside = wanted[at:] - seen
            take = inside[inside < positions.size]
            out[order[at : at + take.size]] = lo * cols + positions[take]
            at += take.size
            seen += positions.size
        if at != wanted.size:
            raise ValueError("ranks beyond the marked placements")
        return out

    def mask(self, threshold: float, inclusive: bool = False) -> npt.NDArray[np.bool_]:
        """Every placement's mark (small problems: tests)."""
        return np.concatenate(
            [
                self._rows(lo, hi, threshold, inclusive).ravel()
                for lo, hi in self.space.row_blocks(self.block)
            ]
        )


# ------------------------------------------------------------------------------ the solver


@dataclass(frozen=True)
class ThresholdOptions:
    shots: int = DEFAULT_SHOTS
    seed: int = 0
    delta: float = DEFAULT_DELTA
    round_shots: int = DEFAULT_ROUND_SHOTS
    max_rounds: int = DEFAULT_MAX_ROUNDS


@dataclass(frozen=True)
class Round:
    threshold: float  # marked: feasible and below this (inf: every feasible placement)
    marked: int
    probability_marked: float
    marked_shots: int
    best: float | None  # the best marked sample's emissions


@dataclass
class ThresholdQAOASolver:
    """Grover-mixer threshold QAOA on the fixed-point schedule with descending thresholds; the
    answer is the best feasible *sample* (no local search), verified by the planner."""

    options: ThresholdOptions = field(default_factory=ThresholdOptions)
    name: str = "qaoa"

    def solve(self, problem: model.Problem) -> base.Answer:
        start = time.perf_counter()
        opts = self.options
        space = subspace.PlacementSpace(problem)
        stats = space.stats
        if (refused := onehot.nothing_feasible(space, self.name)) is not None:
            return refused
        size = space.size
        length = fixed_point_length(size, opts.delta)
        alphas, betas = fixed_point_angles(length, opts.delta)
        layers = alphas.size
        rng = np.random.default_rng(opts.seed)
        marked = Marked(space)
        threshold, best_index = math.inf, -1
        rounds: list[Round] = []
        shots_left = opts.shots
        while len(rounds) < opts.max_rounds and shots_left > opts.round_shots:
            count = marked.count(threshold)
            p_marked = _probability_marked(count, size, alphas, betas)
            hits = int(rng.binomial(opts.round_shots, p_marked))
            shots_left -= opts.round_shots
            best = None
            if hits:
                picks = marked.pick(threshold, rng.integers(0, count, hits))
                emissions = space.emissions_of(picks)
                i = int(np.argmin(emissions))
                best, best_index = float(emissions[i]), int(picks[i])
            rounds.append(Round(threshold, count, p_marked, hits, best))
            if best is None:
                break
            threshold = best
        evolve_seconds = time.perf_counter() - start
        details: dict[str, Any] = {
            "ansatz": "threshold-grover",
            "delta": opts.delta,
            "fixedPointLength": length,
            "rounds": len(rounds),
            "roundShots": opts.round_shots,
            "thresholds": [r.threshold if math.isfinite(r.threshold) else None for r in rounds],
            "markedPerRound": [r.marked for r in rounds],
            "oracleQueries": layers * opts.round_shots * len(rounds),
            "placements": size,
            "feasiblePlacements": stats.count,
            "optimalPlacements": int(stats.optimal.size),
            "amplitudes": size,
            "shots": opts.shots,
        }
        if best_index < 0:
            details |= {"probabilityOfOptimum": 0.0, "sampledFeasible": False}
            return base.Answer(
                None, "qaoa-sample", self.name, onehot.NO_SAMPLE, tie_rule=True, details=details
            )
        # The production state: the best placements found marked (inclusive threshold).
        final_count = marked.count(threshold, inclusive=True)
        p_final = _probability_marked(final_count, size, alphas, betas)
        optimal = int(stats.optimal.size)
        opt_marked = optimal if model.is_tie(threshold, stats.least) else 0
        p_opt = p_final * opt_marked / final_count
        final_hits = int(rng.binomial(shots_left, p_final)) if shots_left > 0 else 0
        details |= {
            "probabilityOfOptimum": p_opt,
            "probabilityMarked": p_final,
            "probabilityFeasible": p_final
            + (1.0 - p_final) * _rest_feasible(stats.count, final_count, size),
            "finalShots": max(shots_left, 0),
            "finalMarkedShots": final_hits,
            "uniformRatio": p_opt / (optimal / size),
            "feasibleSetRatio": p_opt / (optimal / stats.count),
            "tts99Shots": base.tts99(p_opt) if p_opt > 0 else None,
            "oracleQueries": details["oracleQueries"] + layers * max(shots_left, 0),
            "evolveSeconds": evolve_seconds,
            "sampledFeasible": True,
            "sampledPlacement": list(space.placement(best_index)),
        }
        sampled = space.placement(best_index)
        return base.Answer(
            sampled,
            "qaoa-sample",
            self.name,
            onehot.NO_SAMPLE,
            tie_rule=True,
            qubits=space.num_shards * space.num_pools,
            depth=layers,
            evaluations=len(rounds) + 1,
            wall_seconds=time.perf_counter() - start,
            details=details,
            against=onehot.SampleFigures(problem, sampled),
        )


def _probability_marked(count: int, size: int, alphas: FloatArray, betas: FloatArray) -> float:
    if count == 0:
        return 0.0
    amplitudes = evolve_two_level(count / size, alphas, betas)
    return float(abs(amplitudes[0]) ** 2)


def _rest_feasible(feasible: int, marked: int, size: int) -> float:
    """The feasible share of the unmarked placements (the unmarked amplitude is uniform)."""
    rest = size - marked
    return (feasible - marked) / rest if rest else 0.0
