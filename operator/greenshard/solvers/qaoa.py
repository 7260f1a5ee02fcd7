"""QAOA over a state-vector backend (qsim by default).

The ansatz is ``prod_j exp(-i beta_j sum X) exp(-i gamma_j C) |+>^n`` with C the cost diagonal of
:class:`greenshard.hamiltonian.CostHamiltonian`, normalised by the largest coefficient of its local
Ising polynomial. Starting in ``|+>``, the highest state of ``sum X``, minimisation follows the
adiabatic path from ``-sum X`` to C, so the betas are negative in this sign convention.

Two ways to apply the phase ``exp(-i gamma C)``:

* ``diagonal``: numpy multiplies the state by the phase of the precomputed diagonal (one pass,
  any cost, memory and hop penalties included); the mixer is a cirq circuit with sympy betas run
  on the backend;
* ``gates``: the whole ansatz as one cirq circuit with sympy gammas and betas, the phase as
  Z/ZZ.. rotations of the local Ising terms (only when no global penalty can bind).

Parameters: a linear ramp (``gamma_j = (j + 1/2)/p * dt``, ``beta_j = -(1 - (j + 1/2)/p) * dt``),
then, if asked, COBYLA on the expectation ``<psi|C|psi> = |psi|^2 . c`` (float64 accumulation).
The answer is the best feasible placement among ``shots`` samples, then a local search (single
shard moves) that may improve it; the details say which of the two found it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cirq
import numpy as np
import numpy.typing as npt
import sympy
from scipy.optimize import minimize

from greenshard import hamiltonian, model
from greenshard.solvers import backends, base, exact

#: Linear-ramp step, in units of the largest local coefficient; chosen with `greenshard bench`.
DEFAULT_RAMP_DT = 0.9
CHUNK = 1 << 16  # elements per numpy chunk: keeps temporaries in cache
PHASES = ("auto", "diagonal", "gates")


@dataclass(frozen=True)
class QAOAOptions:
    depth: int = 3
    shots: int = 2048
    seed: int = 0
    backend: str = "qsim"
    phase: str = "auto"  # auto | diagonal | gates
    optimizer: str = "cobyla"  # cobyla | none
    max_evaluations: int = 60
    ramp_dt: float = DEFAULT_RAMP_DT
    polish: bool = True
    threads: int = 0


def linear_ramp(depth: int, dt: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    frac = (np.arange(depth) + 0.5) / depth
    return frac * dt, -(1.0 - frac) * dt


class QAOAEngine:
    """Prepares QAOA states for one cost diagonal and evaluates their energy.

    Memory: the float32 cost vector (4 bytes a basis state), the state (8) and, while the backend
    runs, its copy of the state (8): about 20 * 2**n bytes, 5 GiB at 28 qubits."""

    def __init__(self, ham: hamiltonian.CostHamiltonian, depth: int, backend: backends.Backend,
                 phase: str = "auto") -> None:
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
            cirq.XPowGate(exponent=self.beta, global_shift=-0.5).on_each(*self.qubits))
        self.circuit = self.build_circuit() if self.phase == "gates" else None
        size = min(CHUNK, self.cost.size)
        self._angle = np.empty(size, dtype=np.float32)
        self._rotor = np.empty(size, dtype=np.complex64)
        self._square = np.empty(2 * size, dtype=np.float32)
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
            circuit.append(cirq.XPowGate(exponent=sympy.Symbol(f"x{j}"),
                                         global_shift=-0.5).on_each(*self.qubits))
        return circuit

    def _resolver(self, gammas: Sequence[float], betas: Sequence[float]) -> cirq.ParamResolver:
        """Values of the gates circuit's symbols: exp(-i g c Z..Z) is exponent 2 g c / pi."""
        coeffs = self.ham.local_terms.coeffs / self.scale
        values: dict[str, float] = {}
        for j, (gamma, beta) in enumerate(zip(gammas, betas, strict=True)):
            exponents = (2.0 * float(gamma) / np.pi) * coeffs
            values.update({f"z{j}_{t}": float(e) for t, e in enumerate(exponents)})
            values[f"x{j}"] = 2.0 * float(beta) / np.pi
        return cirq.ParamResolver(values)

    def _apply_phase(self, state: npt.NDArray[np.complex64], gamma: float) -> None:
        """state *= exp(-i gamma c), chunk by chunk in float32 (cos/sin, not complex exp)."""
        factor = np.float32(-gamma)
        for lo in range(0, self.cost.size, CHUNK):
            size = min(CHUNK, self.cost.size - lo)
            angle = np.multiply(self.cost[lo:lo + size], factor, out=self._angle[:size])
            rotor = self._rotor[:size]
            np.cos(angle, out=rotor.real)
            np.sin(angle, out=rotor.imag)
            block = state[lo:lo + size]
            np.multiply(block, rotor, out=block)

    def state(self, gammas: Sequence[float], betas: Sequence[float]) -> npt.NDArray[np.complex64]:
        if len(gammas) != self.depth or len(betas) != self.depth:
            raise ValueError(f"expected {self.depth} gammas and betas")
        self.evaluations += 1
        with backends.quiet_blas():
            if self.circuit is not None:
                return self.backend.run(self.circuit, self._resolver(gammas, betas), self.qubits)
            state = np.full(self.cost.size, np.float32(2.0 ** (-self.n / 2)), dtype=np.complex64)
            for gamma, beta in zip(gammas, betas, strict=True):
                self._apply_phase(state, float(gamma))
                resolver = cirq.ParamResolver({self.beta: 2.0 * float(beta) / np.pi})
                state = self.backend.run(self.mixer, resolver, self.qubits, initial_state=state)
            return state

    def expectation(self, state: npt.NDArray[np.complex64]) -> float:
        """<psi|C|psi> in normalised units: float32 chunks, summed in float64."""
        flat = state.view(np.float32)
        total = 0.0
        with backends.quiet_blas():
            for lo in range(0, self.cost.size, CHUNK):
                size = min(CHUNK, self.cost.size - lo)
                square = np.square(flat[2 * lo:2 * (lo + size)], out=self._square[:2 * size])
                total += float(np.dot(self.cost[lo:lo + size], square.reshape(size, 2)).sum(
                    dtype=np.float64))
        return total

    def energy(self, gammas: Sequence[float], betas: Sequence[float]) -> float:
        return self.expectation(self.state(gammas, betas))


def choose_phase(ham: hamiltonian.CostHamiltonian, phase: str) -> str:
    """``auto``: the numpy phase from the diagonal (measured faster at every size, see below)."""
    if phase not in PHASES:
        raise ValueError(f"unknown phase mode {phase!r}; use one of {', '.join(PHASES)}")
    if phase == "gates" and ham.has_global_penalty:
        raise ValueError("phase='gates' needs a local Hamiltonian; memory or hop limits bind")
    return "diagonal" if phase == "auto" else phase


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
        gammas, betas = linear_ramp(opts.depth, opts.ramp_dt)
        if opts.optimizer == "cobyla" and opts.max_evaluations > 1:
            gammas, betas = _optimise(engine, gammas, betas, opts.max_evaluations)
        elif opts.optimizer not in ("cobyla", "none"):
            raise ValueError(f"unknown optimizer {opts.optimizer!r}; use cobyla or none")
        state = engine.state(gammas, betas)
        probs = _probabilities(state)
        rng = np.random.default_rng(opts.seed)
        samples = _sample(probs, opts.shots, rng)
        reference = exact.solve_exact(problem)
        opt_index = hamiltonian.bits_to_index(ham.encode(reference.placement))
        sampled = _best_feasible(problem, ham, samples)
        details: dict[str, Any] = {
            "probabilityOfOptimum": float(probs[opt_index]),
            "expectation": engine.expectation(state) * engine.scale + engine.offset,
            "gammas": [float(g) for g in gammas], "betas": [float(b) for b in betas],
            "backend": backend.name, "phase": engine.phase, "shots": opts.shots,
            "sampledFeasible": sampled is not None,
        }
        method = "qaoa-sample"
        placement = sampled
        if opts.polish:
            start_point = sampled if sampled is not None else _lowest_energy_codes(ham, samples)
            polished = local_search(problem, start_point)
            if polished != sampled:
                method = "qaoa+local-search"
                placement = polished
        if placement is None or not model.feasible(problem, placement):
            method = "exact-fallback"
            details["fallbackReason"] = "QAOA sampled no feasible placement"
            placement = reference.placement
        details["samplingFoundOptimum"] = sampled == reference.placement
        details["polishChangedAnswer"] = method == "qaoa+local-search"
        solution = base.make_solution(problem, placement, method, self.name,
                                      qubits=ham.num_qubits, depth=opts.depth,
                                      evaluations=engine.evaluations,
                                      wall_seconds=time.perf_counter() - start, details=details)
        return solution.verified_against(reference)


def _optimise(engine: QAOAEngine, gammas: npt.NDArray[np.float64],
              betas: npt.NDArray[np.float64], max_evaluations: int
              ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    p = gammas.size

    def objective(x: npt.NDArray[np.float64]) -> float:
        return engine.energy(x[:p], x[p:])

    x0 = np.concatenate([gammas, betas])
    result = minimize(objective, x0, method="COBYLA",
                      options={"maxiter": max_evaluations, "rhobeg": 0.1})
    x = result.x if result.fun <= objective(x0) else x0
    return x[:p], x[p:]


def _probabilities(state: npt.NDArray[np.complex64]) -> npt.NDArray[np.float64]:
    pairs = state.view(np.float32).reshape(-1, 2).astype(np.float64)
    probs = pairs[:, 0] ** 2 + pairs[:, 1] ** 2
    total = probs.sum()
    return probs / total if total > 0 else probs


def _sample(probs: npt.NDArray[np.float64], shots: int,
            rng: np.random.Generator) -> npt.NDArray[np.int64]:
    cdf = np.cumsum(probs)
    draws = rng.random(shots) * cdf[-1]
    return np.minimum(np.searchsorted(cdf, draws, side="right"), probs.size - 1).astype(np.int64)


def _best_feasible(problem: model.Problem, ham: hamiltonian.CostHamiltonian,
                   samples: npt.NDArray[np.int64]) -> tuple[int, ...] | None:
    best: tuple[int, ...] | None = None
    best_e = np.inf
    for index in sorted(set(samples.tolist())):  # lexicographic: ties keep the first
        placement = ham.decode(hamiltonian.index_to_bits(index, ham.num_qubits))
        if placement is None or not model.feasible(problem, placement):
            continue
        e = model.emissions(problem, placement)
        if best is None or e < best_e - model.TIE_RTOL * abs(best_e):
            best, best_e = placement, e
    return best


def _lowest_energy_codes(ham: hamiltonian.CostHamiltonian,
                         samples: npt.NDArray[np.int64]) -> tuple[int, ...]:
    index = min(set(samples.tolist()),
                key=lambda i: ham.energy(hamiltonian.index_to_bits(i, ham.num_qubits)))
    codes = ham.codes_of(hamiltonian.index_to_bits(index, ham.num_qubits))
    return tuple(min(k, ham.num_pools - 1) for k in codes)


def local_search(problem: model.Problem, start: Sequence[int]) -> tuple[int, ...]:
    """Steepest descent over single-shard moves on emissions + a penalty per violation.

    Ties between moves go to the lexicographically smallest placement."""
    ham = hamiltonian.CostHamiltonian(problem)

    def score(placement: tuple[int, ...]) -> float:
        return model.emissions(problem, placement) + ham.penalty * len(
            model.violations(problem, placement))

    current = tuple(int(k) for k in start)
    current_score = score(current)
    while True:
        best, best_score = current, current_score
        for s in range(problem.num_shards):
            for k in range(problem.num_pools):
                if k == current[s]:
                    continue
                candidate = current[:s] + (k,) + current[s + 1:]
                value = score(candidate)
                better = value < best_score - model.TIE_RTOL * abs(best_score)
                tie = model.is_tie(value, best_score) and candidate < best
                if better or tie:
                    best, best_score = candidate, value
        if best == current:
            return current
        current, current_score = best, best_score
