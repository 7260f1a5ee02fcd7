"""QAOA in the one-hot subspace: an XY mixer per shard, simulated exactly in K**S amplitudes.

Encoding and ansatz
-------------------
Shard s owns K qubits ``(s, 0) .. (s, K-1)`` (qubit ``s*K + k``); a placement sets exactly one of
them per shard. The XY mixer (Hadfield et al. 2019; Wang et al. 2020) is a product of two-qubit
gates ``exp(-i beta (XX + YY)/2)`` over the edges of a graph on each shard's K qubits, which moves
a shard's 1 between qubits and never leaves the one-hot subspace:

* ``ring``: the edges (k, k+1 mod K), even edges first, then odd, then the closing edge (the
  parity-ordered ring of Hadfield et al.), K gates a shard (1 for K = 2);
* ``complete``: every pair (i < j), in lexicographic order, K(K-1)/2 gates a shard.

Inside the subspace an edge gate is the 2x2 rotation ``[[cos b, -i sin b], [-i sin b, cos b]]`` on
pools i and j, so a shard's mixer is the K x K unitary ``U(beta)``, the product of those rotations
in gate order: a first-order Trotter step of ``exp(-i beta A)`` with A the graph's adjacency
matrix. The start is the uniform superposition of all K**S placements (a W state per shard), the
top eigenvector of A: with negative betas the ramp follows the adiabatic path from ``-A`` to the
cost (minimisation), as the binary ansatz does with ``-sum X``.

The state is a complex64 tensor of shape ``(K,) * S`` (index = placement in lexicographic
order); the mixer applies U along each axis in place, block by block; the phase multiplies by
``exp(-i gamma c(x))`` computed block by block from the factorised table of
:class:`greenshard.subspace.PlacementSpace` (or a cached float32 copy when small). No second copy
of the state exists at any time: memory is 8 bytes an amplitude plus ~K**S/8 for the feasibility
mask plus O(block) scratch (about 2.0 GiB at 12 shards x 5 pools).

Cost, penalty and the angle unit
--------------------------------
``c(x) = (E(x) - E_opt) / spread + penalty' * [x infeasible]`` where ``E`` is the cost-model
emissions, ``E_opt`` and ``spread = E_max - E_opt`` the least and the greatest emissions over the
*feasible* placements, and ``penalty' = penalty + max(0, (E_opt - E_min_any) / spread)``, so every
infeasible placement costs at least ``penalty`` (in units of the feasible spread) more than the
optimum, and every feasible one lies in [0, 1]. The unit is what makes angles transfer between
instances: gamma in this unit never wraps (a layer's phase spread is ``gamma * (1 + penalty')``)
and does not depend on the size of the penalty or of the emissions. Constraints that couple shards
(capacity per pool, region hops) are not local: they are in the penalty, on the diagonal only.

The equivalent qubit circuit (:func:`qubit_circuit_layer`) applies the compute terms as ``Z``
powers on single qubits, the link terms as ``CZ`` powers between neighbouring shards' qubits, the
mixer as ``ISWAP`` powers and the W states with Givens rotations; the coupled-constraint penalty
is a diagonal over the register (:func:`register_penalty_phase`). tests/slow/test_onehot.py proves
it equal to this simulator on the one-hot amplitudes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import cirq
import numpy as np
import numpy.typing as npt

from greenshard import model, subspace
from greenshard.solvers import backends, base

MIXERS = ("complete", "ring")
#: The schedule (see experiments/onehot_schedule.py for how it was fitted and judged).
DEFAULT_MIXER = "complete"
DEFAULT_PENALTY = 1.0
DEFAULT_DEPTH = 300
DEFAULT_RAMP_GAMMA = 1.0
DEFAULT_RAMP_BETA = 0.1
DEFAULT_SHOTS = 2048
CHUNK = 1 << 16  # amplitudes per mixer block (fits in cache)
CACHE_COST_MAX = 1 << 22  # below this size the normalised cost is kept as one float32 vector
SAMPLE_BLOCK = 1 << 16
Angles = Sequence[float] | npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex64]


# ---------------------------------------------------------------------------------- mixers


def xy_edges(num_pools: int, mixer: str = DEFAULT_MIXER) -> list[tuple[int, int]]:
    """The (i, j) pool pairs of one shard's XY gates, in gate order."""
    if mixer not in MIXERS:
        raise ValueError(f"unknown mixer {mixer!r}; use one of {', '.join(MIXERS)}")
    k = num_pools
    if k < 2:
        return []
    if mixer == "complete":
        return [(i, j) for i in range(k) for j in range(i + 1, k)]
    if k == 2:
        return [(0, 1)]
    even = [(i, i + 1) for i in range(0, k - 1, 2)]
    odd = [(i, i + 1) for i in range(1, k - 1, 2)]
    return even + odd + [(0, k - 1)]


def mixer_unitary(
    num_pools: int, beta: float, mixer: str = DEFAULT_MIXER
) -> npt.NDArray[np.complex128]:
    """U(beta): the product of the edge rotations in gate order, a K x K unitary."""
    u = np.eye(num_pools, dtype=np.complex128)
    c, s = math.cos(beta), math.sin(beta)
    for i, j in xy_edges(num_pools, mixer):
        g = np.eye(num_pools, dtype=np.complex128)
        g[i, i] = g[j, j] = c
        g[i, j] = g[j, i] = -1j * s
        u = g @ u
    return u


def linear_ramp(
    depth: int, gamma_step: float, beta_step: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """gamma_j = (j + 1/2)/p * gamma_step, beta_j = -(1 - (j + 1/2)/p) * beta_step."""
    frac = (np.arange(depth) + 0.5) / depth
    return frac * gamma_step, -(1.0 - frac) * beta_step


# ---------------------------------------------------------------------------------- simulator


class SubspaceSimulator:
    """Prepares one-hot XY-mixer QAOA states of one problem and measures them."""

    def __init__(
        self,
        space: subspace.PlacementSpace,
        mixer: str = DEFAULT_MIXER,
        penalty: float = DEFAULT_PENALTY,
        threads: int = 0,
    ) -> None:
        if mixer not in MIXERS:
            raise ValueError(f"unknown mixer {mixer!r}; use one of {', '.join(MIXERS)}")
        if penalty <= 0:
            raise ValueError("penalty must be > 0 (units of the feasible spread)")
        stats = space.stats
        if stats.count == 0:
            raise ValueError("no feasible placement: nothing to simulate")
        self.space = space
        self.mixer = mixer
        self.shape = (space.num_pools,) * space.num_shards
        self.size = space.size
        self.offset = stats.least
        spread = stats.greatest - stats.least
        self.scale = (
            spread
            if spread > 1e-12 * max(abs(stats.least), 1e-300)
            else max(abs(stats.least), 1e-300)
        )
        self.penalty = penalty + max(0.0, (stats.least - stats.least_any) / self.scale)
        self.threads = threads if threads > 0 else backends.available_cores()
        self._head = (space.head.emissions - self.offset) / self.scale
        self._tail = space.tail_by_last / self.scale
        self._cost: npt.NDArray[np.float32] | None = None
        if self.size <= CACHE_COST_MAX:
            self._cost = np.concatenate(
                [self._cost_rows(lo, hi).ravel() for lo, hi in space.row_blocks()]
            )
        self.evaluations = 0

    # ------------------------------------------------------------------ the cost, by blocks

    def _cost_rows(self, lo: int, hi: int) -> npt.NDArray[np.float32]:
        """Normalised cost c(x) of rows lo..hi-1 (float64 sums, then float32)."""
        c = self._head[lo:hi, None] + self._tail[self.space.head.last[lo:hi]]
        c += self.penalty * ~self.space.feasible_rows(lo, hi)
        return c.astype(np.float32)

    def cost_blocks(self) -> Iterator[tuple[int, npt.NDArray[np.float32]]]:
        """(first index, c over a block), tiling 0..size-1 in order."""
        cols = self.space.cols
        for lo, hi in self.space.row_blocks():
            if self._cost is not None:
                yield lo * cols, self._cost[lo * cols : hi * cols]
            else:
                yield lo * cols, self._cost_rows(lo, hi).ravel()

    def cost(self) -> npt.NDArray[np.float32]:
        """The whole normalised diagonal (small problems: tests and the noisy experiment)."""
        if self._cost is not None:
            return self._cost
        return np.concatenate([c for _, c in self.cost_blocks()])

    def _parallel(self, tasks: Sequence[Callable[[], float]]) -> float:
        if self.threads == 1 or len(tasks) == 1:
            return math.fsum(t() for t in tasks)
        return math.fsum(_executor(self.threads).map(lambda t: t(), tasks))

    def _block_tasks(
        self, work: Callable[[int, npt.NDArray[np.float32]], float]
    ) -> list[Callable[[], float]]:
        """One task a row block: work(first index, the block's cost)."""

        def task(lo: int, hi: int) -> Callable[[], float]:
            cols = self.space.cols
            if self._cost is not None:
                cost = self._cost
                return lambda: work(lo * cols, cost[lo * cols : hi * cols])
            return lambda: work(lo * cols, self._cost_rows(lo, hi).ravel())

        return [task(lo, hi) for lo, hi in self.space.row_blocks()]

    # ------------------------------------------------------------------ layers

    def initial_state(self) -> ComplexArray:
        return np.full(self.size, np.float32(1.0 / math.sqrt(self.size)), dtype=np.complex64)

    def apply_phase(self, state: ComplexArray, gamma: float) -> None:
        """state *= exp(-i gamma c), in place."""
        factor = np.float32(-gamma)

        def work(first: int, cost: npt.NDArray[np.float32]) -> float:
            x = cost * factor
            z = np.empty(x.size, dtype=np.complex64)
            np.cos(x, out=z.real)
            np.sin(x, out=z.imag)
            block = state[first : first + x.size]
            np.multiply(block, z, out=block)
            return 0.0

        with backends.quiet_blas():
            self._parallel(self._block_tasks(work))

    def apply_mixer(self, state: ComplexArray, beta: float) -> None:
        """U(beta) on every shard's axis, in place, block by block."""
        k = self.space.num_pools
        u = mixer_unitary(k, beta, self.mixer).astype(np.complex64)
        with backends.quiet_blas():
            for axis in range(self.space.num_shards):
                outer = k**axis
                inner = k ** (self.space.num_shards - 1 - axis)
                view = state.reshape(outer, k, inner)
                self._parallel(_axis_tasks(view, u))

    def state(self, gammas: Angles, betas: Angles) -> ComplexArray:
        """``prod_j U_M(beta_j) exp(-i gamma_j C)`` applied to the uniform superposition."""
        if len(gammas) != len(betas):
            raise ValueError("gammas and betas differ in length")
        self.evaluations += 1
        state = self.initial_state()
        for gamma, beta in zip(gammas, betas, strict=True):
            self.apply_phase(state, float(gamma))
            self.apply_mixer(state, float(beta))
        return state

    # ------------------------------------------------------------------ measurements

    def expectation(self, state: ComplexArray) -> float:
        """<c> in the normalised unit (float32 blocks, float64 sums)."""

        def work(first: int, cost: npt.NDArray[np.float32]) -> float:
            block = state[first : first + cost.size]
            p = block.real.astype(np.float64) ** 2 + block.imag.astype(np.float64) ** 2
            return float(np.dot(p, cost))

        with backends.quiet_blas():
            return self._parallel(self._block_tasks(work))

    def feasible_probability(self, state: ComplexArray) -> float:
        cols = self.space.cols
        total = 0.0
        for lo, hi in self.space.row_blocks():
            block = state[lo * cols : hi * cols]
            ok = self.space.feasible_rows(lo, hi).ravel()
            total += float(np.sum(np.abs(block[ok]) ** 2, dtype=np.float64))
        return total

    def optimum_probability(self, state: ComplexArray) -> float:
        return probability_of(state, self.space.stats.optimal)


@cache
def _executor(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="onehot")


def _axis_tasks(
    view: npt.NDArray[np.complex64], u: npt.NDArray[np.complex64]
) -> list[Callable[[], float]]:
    """Tasks that together apply u along axis 1 of view (outer, K, inner), in place."""
    outer, k, inner = view.shape
    tasks: list[Callable[[], float]] = []
    if k * inner <= CHUNK:
        rows = max(1, CHUNK // (k * inner))
        for a in range(0, outer, rows):

            def run(a: int = a) -> float:
                block = view[a : a + rows]
                mixed = np.tensordot(u, block, axes=([1], [1]))  # (K, rows, inner)
                block[...] = mixed.transpose(1, 0, 2)
                return 0.0

            tasks.append(run)
        return tasks
    width = max(1, CHUNK // k)
    for a in range(outer):
        for b in range(0, inner, width):

            def run_wide(a: int = a, b: int = b) -> float:
                block = view[a, :, b : b + width]
                block[...] = u @ block
                return 0.0

            tasks.append(run_wide)
    return tasks


# ---------------------------------------------------------------------------------- sampling


def probability_of(state: ComplexArray, indices: npt.NDArray[np.int64]) -> float:
    amplitudes = state[indices].astype(np.complex128)
    return float(np.sum(amplitudes.real**2 + amplitudes.imag**2))


def sample(state: ComplexArray, shots: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """``shots`` indices drawn from |state|^2 (block by multinomial, then inside the block)."""
    starts = np.arange(0, state.size, SAMPLE_BLOCK)
    weights = np.array(
        [
            float(np.sum(np.abs(state[lo : lo + SAMPLE_BLOCK]) ** 2, dtype=np.float64))
            for lo in starts
        ]
    )
    counts = rng.multinomial(shots, weights / weights.sum())
    picks = []
    for lo, count in zip(starts.tolist(), counts.tolist(), strict=True):
        if count:
            block = state[lo : lo + SAMPLE_BLOCK]
            cdf = np.cumsum(block.real.astype(np.float64) ** 2 + block.imag.astype(np.float64) ** 2)
            inside = np.searchsorted(cdf, rng.random(count) * cdf[-1], side="right")
            picks.append(lo + np.minimum(inside, cdf.size - 1))
    return np.concatenate(picks).astype(np.int64) if picks else np.zeros(0, dtype=np.int64)


# ------------------------------------------------------------------------ the qubit circuit


def register_qubits(num_shards: int, num_pools: int) -> list[cirq.LineQubit]:
    """Qubit s*K + k is shard s on pool k."""
    return cirq.LineQubit.range(num_shards * num_pools)


def register_index(
    space: subspace.PlacementSpace, index: int | npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Basis index in the S*K-qubit register (big-endian) of subspace indices."""
    pl = space.placements(np.atleast_1d(np.asarray(index, dtype=np.int64)))
    n = space.num_shards * space.num_pools
    positions = np.arange(space.num_shards)[None, :] * space.num_pools + pl  # qubit numbers
    return np.asarray(np.sum(np.left_shift(1, n - 1 - positions), axis=1), dtype=np.int64)


def w_state_ops(qubits: Sequence[cirq.Qid]) -> list[cirq.Operation]:
    """X on the first qubit, then Givens rotations that leave 1/sqrt(K) on each qubit."""
    k = len(qubits)
    ops: list[cirq.Operation] = [cirq.X(qubits[0])]
    for i in range(k - 1):
        theta = math.acos(math.sqrt(1.0 / (k - i)))
        ops.append(cirq.givens(theta).on(qubits[i + 1], qubits[i]))
    return ops


def mixer_ops(
    qubits: Sequence[cirq.Qid], beta: float, mixer: str = DEFAULT_MIXER
) -> list[cirq.Operation]:
    """exp(-i beta (XX+YY)/2) = ISWAP**(-2 beta / pi) on each edge, in gate order."""
    gate = cirq.ISwapPowGate(exponent=-2.0 * beta / math.pi)
    return [gate.on(qubits[i], qubits[j]) for i, j in xy_edges(len(qubits), mixer)]


def qubit_circuit_layer(
    sim: SubspaceSimulator, qubits: Sequence[cirq.Qid], gamma: float, beta: float
) -> cirq.Circuit:
    """One layer's local cost (Z and CZ powers) and mixer as 1- and 2-qubit cirq gates."""
    problem = sim.space.problem
    s_count, k_count = problem.num_shards, problem.num_pools
    q = [[qubits[s * k_count + k] for k in range(k_count)] for s in range(s_count)]
    circuit = cirq.Circuit()
    for s in range(s_count):
        for k in range(k_count):
            exponent = -gamma * float(problem.compute[s, k]) / sim.scale / math.pi
            circuit.append(cirq.ZPowGate(exponent=exponent).on(q[s][k]))
    for s in range(s_count - 1):
        for k in range(k_count):
            for j in range(k_count):
                exponent = -gamma * float(problem.link[k, j]) / sim.scale / math.pi
                circuit.append(cirq.CZPowGate(exponent=exponent).on(q[s][k], q[s + 1][j]))
    for s in range(s_count):
        circuit.append(mixer_ops(q[s], beta, sim.mixer))
    return circuit


def initial_circuit(sim: SubspaceSimulator, qubits: Sequence[cirq.Qid]) -> cirq.Circuit:
    k_count = sim.space.num_pools
    return cirq.Circuit(
        w_state_ops(qubits[s * k_count : (s + 1) * k_count]) for s in range(sim.space.num_shards)
    )


def register_penalty_phase(
    sim: SubspaceSimulator, gamma: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.complex64]]:
    """(register indices of the one-hot states, the phase each gets from the part of the cost the
    gates do not apply: the coupled-constraint penalty and the offset)."""
    indices = np.arange(sim.size, dtype=np.int64)
    feasible = sim.space.feasible_of(indices)
    angle = -gamma * (sim.penalty * ~feasible - sim.offset / sim.scale)
    return register_index(sim.space, indices), np.exp(1j * angle).astype(np.complex64)


# ---------------------------------------------------------------------------------- the solver


@dataclass(frozen=True)
class OneHotOptions:
    depth: int = DEFAULT_DEPTH
    shots: int = DEFAULT_SHOTS
    seed: int = 0
    mixer: str = DEFAULT_MIXER
    penalty: float = DEFAULT_PENALTY
    ramp_gamma: float = DEFAULT_RAMP_GAMMA
    ramp_beta: float = DEFAULT_RAMP_BETA
    threads: int = 0


@dataclass(frozen=True)
class SampleFigures:
    """Whether the best sample ties the optimum, once the planner knows it (the state's
    probability of the optimum comes from the placement table, which needs no reference)."""

    problem: model.Problem
    sampled: tuple[int, ...] | None

    def __call__(self, optimum: float, optimum_placement: tuple[int, ...]) -> dict[str, Any]:
        found = self.sampled is not None and model.is_tie(
            model.emissions(self.problem, self.sampled), optimum
        )
        return {"samplingFoundOptimum": found}


NO_SAMPLE = "QAOA sampled no feasible placement"


def nothing_feasible(space: subspace.PlacementSpace, name: str) -> base.Answer | None:
    """No answer when no placement is feasible (nothing to mark or simulate): the planner's
    exact reference says why. None otherwise."""
    if space.stats.count:
        return None
    return base.Answer(None, "qaoa-sample", name, NO_SAMPLE, tie_rule=True)


@dataclass
class OneHotQAOASolver:
    """QAOA with the one-hot XY-mixer ansatz; the answer is the best feasible *sample* (no local
    search: that is a classical control). The placement table also gives the probability of the
    optimal placements, so the details say how good the state itself was; the planner verifies
    the answer against the exact optimum."""

    options: OneHotOptions = field(default_factory=OneHotOptions)
    name: str = "qaoa"

    def solve(self, problem: model.Problem) -> base.Answer:
        start = time.perf_counter()
        opts = self.options
        space = subspace.PlacementSpace(problem)
        stats = space.stats
        if (refused := nothing_feasible(space, self.name)) is not None:
            return refused
        sim = SubspaceSimulator(space, mixer=opts.mixer, penalty=opts.penalty, threads=opts.threads)
        gammas, betas = linear_ramp(opts.depth, opts.ramp_gamma, opts.ramp_beta)
        state = sim.state(gammas, betas)
        evolve_seconds = time.perf_counter() - start
        samples = sample(state, opts.shots, np.random.default_rng(opts.seed))
        p_opt = sim.optimum_probability(state)
        p_feasible = sim.feasible_probability(state)
        optimal = int(stats.optimal.size)
        sampled = best_sample(space, samples)
        details: dict[str, Any] = {
            "ansatz": f"onehot-xy-{opts.mixer}",
            "probabilityOfOptimum": p_opt,
            "probabilityFeasible": p_feasible,
            "optimalPlacements": optimal,
            "placements": space.size,
            "feasiblePlacements": stats.count,
            "uniformRatio": p_opt / (optimal / space.size),
            "feasibleSetRatio": p_opt / (optimal / stats.count),
            "tts99Shots": base.tts99(p_opt) if p_opt > 0 else None,
            "expectation": sim.expectation(state) * sim.scale + sim.offset,
            "penalty": sim.penalty,
            "costUnit": sim.scale,
            "rampGamma": opts.ramp_gamma,
            "rampBeta": opts.ramp_beta,
            "shots": opts.shots,
            "amplitudes": space.size,
            "stateBytes": state.nbytes,
            "evolveSeconds": evolve_seconds,
            "sampledFeasible": sampled is not None,
            "sampledPlacement": None if sampled is None else list(sampled),
        }
        del state
        return base.Answer(
            sampled,
            "qaoa-sample",
            self.name,
            NO_SAMPLE,
            tie_rule=True,
            qubits=space.num_shards * space.num_pools,
            depth=opts.depth,
            evaluations=sim.evaluations,
            wall_seconds=time.perf_counter() - start,
            details=details,
            against=SampleFigures(problem, sampled),
        )


def best_sample(
    space: subspace.PlacementSpace, samples: npt.NDArray[np.int64]
) -> tuple[int, ...] | None:
    """The least-emissions feasible sample, ties to the lexicographically first, or None."""
    unique = np.unique(samples)
    unique = unique[space.feasible_of(unique)]
    if unique.size == 0:
        return None
    emissions = space.emissions_of(unique)
    low = float(emissions.min())
    tied = unique[emissions <= low + model.TIE_RTOL * max(abs(low), 1e-300)]
    return space.placement(int(tied.min()))
