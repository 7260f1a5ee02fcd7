"""QAOA over a state-vector backend (qsim by default).

The ansatz is ``prod_j exp(-i beta_j sum X) exp(-i gamma_j C) |+>^n`` with C the cost diagonal of
:class:`greenshard.hamiltonian.CostHamiltonian`, normalised by the largest coefficient of its local
Ising polynomial. Starting in ``|+>``, the highest state of ``sum X``, minimisation follows the
adiabatic path from ``-sum X`` to C, so the betas are negative in this sign convention.

Two ways to apply the phase ``exp(-i gamma C)`` (:func:`choose_phase` picks one for ``auto``):

* ``diagonal``: numpy multiplies the state by ``cos - i sin`` of the precomputed float32 diagonal
  (chunked, on every core; memory and hop penalties included); the mixer is a cirq circuit with a
  sympy exponent, run on the backend;
* ``gates``: the whole ansatz as one cirq circuit, the phase as Z/ZZ.. rotations of the local
  Ising terms, one sympy exponent each (only when no global penalty can bind).

Both give the same state up to a global phase. The energy is ``|psi|^2 . c`` in float32 chunks
summed in float64.

Parameters: a linear ramp ``gamma_j = (j + 1/2)/p * dgamma``, ``beta_j = -(1 - (j + 1/2)/p) *
dbeta``, fitted once on synthetic instances and reused: p = 100, dgamma = 0.3, dbeta = 0.1. On
the first 20 feasible seeds of every size from 8 to 20 qubits, one such state put a mean 2-37%
probability on the optimal placements, and 16384 shots contained one in 260 of 260 instances
(259 of 260 on seeds from 1000; see README "Benchmark"). A COBYLA refinement of the two steps
(``optimizer="ramp"``) or of every angle (``"cobyla"``) is optional: it lowers the energy, not
reliably the chance of the optimum.

The answer is the best feasible placement among the samples, then a local search (single, pair
and run moves) from the lowest-cost samples that may improve it; the details say which of the two
found it. A placement that ties the optimum is reported as the tie rule's (lexicographically
first) optimal placement, which the exact verifier provides.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import cirq
import numpy as np
import numpy.typing as npt
import sympy
from scipy.optimize import minimize

from greenshard import hamiltonian, model
from greenshard.solvers import backends, base, exact

#: Linear-ramp steps (gamma in units of the largest local coefficient); see the module docstring.
DEFAULT_RAMP_GAMMA = 0.3
DEFAULT_RAMP_BETA = 0.1
DEFAULT_DEPTH = 100
DEFAULT_SHOTS = 1 << 14
OPTIMIZERS = ("none", "ramp", "cobyla")
SAMPLE_BLOCK = 1 << 16  # basis states per block when sampling
POLISH_STARTS = 4  # local searches from the lowest-cost distinct samples
CHUNK = 1 << 16  # elements per numpy chunk: keeps temporaries in cache
BLOCK = 1 << 20  # elements per task when numpy passes run on several threads
PHASES = ("auto", "diagonal", "gates")
GATES_MIN_QUBITS = 20  # phase="auto": below this the numpy phase wins even for a QUBO
Angles = Sequence[float] | npt.NDArray[np.float64]


@dataclass(frozen=True)
class QAOAOptions:
    depth: int = DEFAULT_DEPTH
    shots: int = DEFAULT_SHOTS
    seed: int = 0
    backend: str = "qsim"
    phase: str = "auto"  # auto | diagonal | gates
    optimizer: str = "none"  # none | ramp | cobyla
    max_evaluations: int = 20
    ramp_gamma: float = DEFAULT_RAMP_GAMMA
    ramp_beta: float = DEFAULT_RAMP_BETA
    polish: bool = True
    threads: int = 0


def linear_ramp(
    depth: int, gamma_step: float, beta_step: float | None = None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """gamma_j = (j + 1/2)/p * gamma_step, beta_j = -(1 - (j + 1/2)/p) * beta_step."""
    frac = (np.arange(depth) + 0.5) / depth
    beta_step = gamma_step if beta_step is None else beta_step
    return frac * gamma_step, -(1.0 - frac) * beta_step


class QAOAEngine:
    """Prepares QAOA states for one cost diagonal and evaluates their energy.

    Memory: the float32 cost vector (4 bytes a basis state), the state (8) and, while the backend
    runs, its copy of the state (8): about 20 * 2**n bytes, 5 GiB at 28 qubits."""

    def __init__(
        self,
        ham: hamiltonian.CostHamiltonian,
        depth: int,
        backend: backends.Backend,
        phase: str = "auto",
    ) -> None:
        self.ham = ham
        self.n = ham.num_qubits
        self.depth = depth
        self.backend = backend
        self.phase = choose_phase(ham, phase)
        self.scale = ham.scale()
        self.offset = ham.lower_bound  # any constant: it only moves the global phase
        self.cost = ham.scaled_diagonal(self.offset, self.scale)  # float32, >= 0
        self.qubits = cirq.LineQubit.range(self.n)
        self.beta = sympy.Symbol("beta")  # the mixer's X exponent: 2 * beta / pi
        self.mixer = cirq.Circuit(
            cirq.XPowGate(exponent=self.beta, global_shift=-0.5).on_each(*self.qubits)
        )
        self.circuit = self.build_circuit() if self.phase == "gates" else None
        self.threads = backend.options.cpu_threads()
        self._scratch = threading.local()
        self.evaluations = 0

    def build_circuit(self) -> cirq.Circuit:
        """The whole ansatz; the local Ising terms as Z rotations, one exponent symbol each."""
        terms = self.ham.local_terms
        circuit = cirq.Circuit(cirq.H.on_each(*self.qubits))
        for j in range(self.depth):
            for t in range(terms.masks.size):
                qs = [self.qubits[i] for i in terms.qubits(t)]
                exponent = sympy.Symbol(f"z{j}_{t}")
                if len(qs) == 2:
                    circuit.append(cirq.ZZPowGate(exponent=exponent, global_shift=-0.5).on(*qs))
                    continue
                ladder = [cirq.CNOT(qs[i], qs[i + 1]) for i in range(len(qs) - 1)]
                circuit.append(ladder)
                circuit.append(cirq.ZPowGate(exponent=exponent, global_shift=-0.5).on(qs[-1]))
                circuit.append(reversed(ladder))
            circuit.append(
                cirq.XPowGate(exponent=sympy.Symbol(f"x{j}"), global_shift=-0.5).on_each(
                    *self.qubits
                )
            )
        return circuit

    def _resolver(self, gammas: Angles, betas: Angles) -> cirq.ParamResolver:
        """Values of the gates circuit's symbols: exp(-i g c Z..Z) is exponent 2 g c / pi."""
        coeffs = self.ham.local_terms.coeffs / self.scale
        values: dict[str, float] = {}
        for j, (gamma, beta) in enumerate(zip(gammas, betas, strict=True)):
            exponents = (2.0 * float(gamma) / np.pi) * coeffs
            values.update({f"z{j}_{t}": float(e) for t, e in enumerate(exponents)})
            values[f"x{j}"] = 2.0 * float(beta) / np.pi
        return cirq.ParamResolver(values)

    # ------------------------------------------------------------- numpy passes over the state

    def _buffers(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.complex64]]:
        """This thread's scratch: a float32 chunk and a complex64 chunk."""
        scratch = self._scratch
        if not hasattr(scratch, "real"):
            size = min(CHUNK, self.cost.size)
            scratch.real = np.empty(2 * size, dtype=np.float32)
            scratch.complex = np.empty(size, dtype=np.complex64)
        return scratch.real, scratch.complex

    def _blocks(self, work: Callable[[int, int], float]) -> float:
        """Runs work(lo, hi) over blocks that tile the state, on ``threads`` threads when the
        state is large (numpy releases the GIL); returns the sum of the results, in block order."""
        size = self.cost.size
        starts = range(0, size, BLOCK)
        if self.threads == 1 or size <= BLOCK:
            return math.fsum(work(lo, min(lo + BLOCK, size)) for lo in starts)
        results = _executor(self.threads).map(lambda lo: work(lo, min(lo + BLOCK, size)), starts)
        return math.fsum(results)

    def _initial_phase(self, gamma: float) -> npt.NDArray[np.complex64]:
        """exp(-i gamma C) |+>^n, written straight into a new state."""
        state = np.empty(self.cost.size, dtype=np.complex64)
        factor, amplitude = np.float32(-gamma), np.float32(2.0 ** (-self.n / 2))

        def work(lo: int, hi: int) -> float:
            angle = self._buffers()[0]
            for a in range(lo, hi, CHUNK):
                b = min(a + CHUNK, hi)
                x = np.multiply(self.cost[a:b], factor, out=angle[: b - a])
                block = state[a:b]
                np.cos(x, out=block.real)
                np.sin(x, out=block.imag)
                np.multiply(block, amplitude, out=block)
            return 0.0

        self._blocks(work)
        return state

    def _apply_phase(self, state: npt.NDArray[np.complex64], gamma: float) -> None:
        """state *= exp(-i gamma c), in float32 chunks (cos/sin: complex exp is 10x slower)."""
        factor = np.float32(-gamma)

        def work(lo: int, hi: int) -> float:
            angle, rotor = self._buffers()
            for a in range(lo, hi, CHUNK):
                b = min(a + CHUNK, hi)
                x = np.multiply(self.cost[a:b], factor, out=angle[: b - a])
                z = rotor[: b - a]
                np.cos(x, out=z.real)
                np.sin(x, out=z.imag)
                block = state[a:b]
                np.multiply(block, z, out=block)
            return 0.0

        self._blocks(work)

    def expectation(self, state: npt.NDArray[np.complex64]) -> float:
        """<psi|C|psi> = |psi|^2 . c in normalised units: float32 chunks, summed in float64."""
        flat = state.view(np.float32)

        def work(lo: int, hi: int) -> float:
            square = self._buffers()[0]
            total = 0.0
            for a in range(lo, hi, CHUNK):
                b = min(a + CHUNK, hi)
                sq = np.square(flat[2 * a : 2 * b], out=square[: 2 * (b - a)]).reshape(b - a, 2)
                total += float(np.dot(self.cost[a:b], sq).sum(dtype=np.float64))
            return total

        with backends.quiet_blas():
            return self._blocks(work)

    # --------------------------------------------------------------------------------- states

    def state(self, gammas: Angles, betas: Angles) -> npt.NDArray[np.complex64]:
        if len(gammas) != self.depth or len(betas) != self.depth:
            raise ValueError(f"expected {self.depth} gammas and betas")
        self.evaluations += 1
        with backends.quiet_blas():
            if self.circuit is not None:
                return self.backend.run(self.circuit, self._resolver(gammas, betas), self.qubits)
            state: npt.NDArray[np.complex64] | None = None
            for gamma, beta in zip(gammas, betas, strict=True):
                if state is None:
                    state = self._initial_phase(float(gamma))
                else:
                    self._apply_phase(state, float(gamma))
                resolver = cirq.ParamResolver({self.beta: 2.0 * float(beta) / np.pi})
                state = self.backend.run(self.mixer, resolver, self.qubits, initial_state=state)
            if state is None:  # depth 0: |+>
                state = np.full(
                    self.cost.size, np.float32(2.0 ** (-self.n / 2)), dtype=np.complex64
                )
            return state

    def energy(self, gammas: Angles, betas: Angles) -> float:
        return self.expectation(self.state(gammas, betas))


@cache
def _executor(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="qaoa")


def choose_phase(ham: hamiltonian.CostHamiltonian, phase: str) -> str:
    """``auto``: the whole ansatz as one qsim circuit when the cost is a local QUBO (two pools a
    shard, no memory or hop limit that can bind) of at least ``GATES_MIN_QUBITS`` qubits, else
    the numpy phase from the diagonal. Measured at p=3 (2 cores): a QUBO chain ran 0.068 s as
    gates vs 0.117 s diagonal at 22 qubits, 0.29 vs 0.45 s at 24, even at 18; with four pools
    (order-4 terms) gates lost 0.27 vs 0.11 s at 22."""
    if phase not in PHASES:
        raise ValueError(f"unknown phase mode {phase!r}; use one of {', '.join(PHASES)}")
    if phase == "gates" and ham.has_global_penalty:
        raise ValueError("phase='gates' needs a local Hamiltonian; memory or hop limits bind")
    if phase != "auto":
        return phase
    qubo = not ham.has_global_penalty and ham.local_terms.max_order <= 2
    return "gates" if qubo and ham.num_qubits >= GATES_MIN_QUBITS else "diagonal"


@dataclass
class QAOASolver:
    options: QAOAOptions = field(default_factory=QAOAOptions)
    name: str = "qaoa"

    def solve(self, problem: model.Problem) -> base.Solution:
        start = time.perf_counter()
        opts = self.options
        ham = hamiltonian.CostHamiltonian(problem)
        backend = backends.Backend(backends.BackendOptions(opts.backend, opts.threads))
        engine = QAOAEngine(ham, opts.depth, backend, opts.phase)
        gammas, betas = schedule(engine, opts)
        state = engine.state(gammas, betas)
        samples = sample_indices(state, opts.shots, np.random.default_rng(opts.seed))
        reference = exact.solve_exact(problem)
        optimum = reference.emissions
        sampled = best_sampled(problem, ham, engine.cost, samples)
        optimal = optimal_indices(problem, ham, engine.cost, optimum, engine.offset, engine.scale)
        details: dict[str, Any] = {
            "probabilityOfOptimum": probability_of_indices(state, optimal),
            "optimalPlacements": int(optimal.size),
            "expectation": engine.expectation(state) * engine.scale + engine.offset,
            "gammas": [float(g) for g in gammas],
            "betas": [float(b) for b in betas],
            "backend": backend.name,
            "phase": engine.phase,
            "shots": opts.shots,
            "sampledFeasible": sampled is not None,
            "sampledPlacement": None if sampled is None else list(sampled),
            "samplingFoundOptimum": sampled is not None and _ties(problem, sampled, optimum),
        }
        placement, method = sampled, "qaoa-sample"
        if opts.polish:
            polished = polish(problem, ham, engine.cost, samples)
            if model.feasible(problem, polished) and (
                sampled is None or _better(problem, polished, sampled)
            ):
                placement, method = polished, "qaoa+local-search"
        details["polishChangedAnswer"] = method == "qaoa+local-search"
        if placement is None:
            method = "exact-fallback"
            details["fallbackReason"] = "QAOA sampled no feasible placement"
            placement = reference.placement
        elif placement != reference.placement and _ties(problem, placement, optimum):
            details["tieRule"] = (
                f"{list(placement)} ties the optimum; reporting the "
                "lexicographically first optimal placement"
            )
            placement = reference.placement
        solution = base.make_solution(
            problem,
            placement,
            method,
            self.name,
            qubits=ham.num_qubits,
            depth=opts.depth,
            evaluations=engine.evaluations,
            wall_seconds=time.perf_counter() - start,
            details=details,
        )
        return solution.verified_against(reference)


def schedule(
    engine: QAOAEngine, opts: QAOAOptions
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The linear ramp, refined by COBYLA when asked: ``ramp`` tunes its two steps, ``cobyla``
    every angle."""
    gammas, betas = linear_ramp(opts.depth, opts.ramp_gamma, opts.ramp_beta)
    if opts.optimizer not in OPTIMIZERS:
        raise ValueError(
            f"unknown optimizer {opts.optimizer!r}; use one of {', '.join(OPTIMIZERS)}"
        )
    if opts.optimizer == "none" or opts.max_evaluations < 2:
        return gammas, betas
    if opts.optimizer == "ramp":
        x0 = np.array([opts.ramp_gamma, opts.ramp_beta])

        def ramp_energy(x: npt.NDArray[np.float64]) -> float:
            return engine.energy(*linear_ramp(opts.depth, float(x[0]), float(x[1])))

        best = _cobyla(ramp_energy, x0, opts.max_evaluations, 0.2 * float(np.abs(x0).min()))
        return linear_ramp(opts.depth, float(best[0]), float(best[1]))
    p = opts.depth

    def energy(x: npt.NDArray[np.float64]) -> float:
        return engine.energy(x[:p], x[p:])

    best = _cobyla(energy, np.concatenate([gammas, betas]), opts.max_evaluations, 0.1)
    return best[:p], best[p:]


def _cobyla(
    objective: Callable[[npt.NDArray[np.float64]], float],
    x0: npt.NDArray[np.float64],
    max_evaluations: int,
    step: float,
) -> npt.NDArray[np.float64]:
    """COBYLA's best point, or x0 when it found nothing better."""
    start = objective(x0)
    result = minimize(
        objective, x0, method="COBYLA", options={"maxiter": max_evaluations - 1, "rhobeg": step}
    )
    return np.asarray(result.x if result.fun < start else x0, dtype=np.float64)


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
            and _ties(problem, placement, optimum)
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


def _ties(problem: model.Problem, placement: Sequence[int], optimum: float) -> bool:
    return model.is_tie(model.emissions(problem, placement), optimum)


def _better(problem: model.Problem, a: Sequence[int], b: Sequence[int]) -> bool:
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
        moves = _neighbours(current, problem.num_pools, pairs)
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
    """Emissions + penalty * number of violations (pools over capacity, hop limit) per row."""
    rows, shards = placements.shape
    emissions = problem.compute[np.arange(shards), placements].sum(axis=1)
    emissions += problem.link[placements[:, :-1], placements[:, 1:]].sum(axis=1)
    loads = np.zeros((rows, problem.num_pools), dtype=np.int64)
    for s, layers in enumerate(problem.demand_layers.tolist()):
        loads[np.arange(rows), placements[:, s]] += layers
    violations = (loads > problem.capacity_layers[None, :]).sum(axis=1)
    if problem.max_region_hops is not None:
        regions = problem.region_of_pool[placements]
        hops = (regions[:, :-1] != regions[:, 1:]).sum(axis=1)
        violations += hops > problem.max_region_hops
    return np.asarray(emissions + penalty * violations, dtype=np.float64)


def _neighbours(current: npt.NDArray[np.int64], pools: int, pairs: bool) -> npt.NDArray[np.int64]:
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
