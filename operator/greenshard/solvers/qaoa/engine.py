"""QAOAEngine: prepares QAOA states for one cost diagonal on a state-vector backend and evaluates
their energy; :func:`choose_phase` picks how the cost phase is applied."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import cirq
import numpy as np
import numpy.typing as npt
import sympy

from greenshard import hamiltonian
from greenshard.solvers import backends

CHUNK = 1 << 16  # elements per numpy chunk: keeps temporaries in cache
BLOCK = 1 << 20  # elements per task when numpy passes run on several threads
PHASES = ("auto", "diagonal", "gates")
GATES_MIN_QUBITS = 20  # phase="auto": below this the numpy phase wins even for a QUBO
Angles = Sequence[float] | npt.NDArray[np.float64]


class QAOAEngine:
    """Prepares QAOA states for one cost diagonal and evaluates their energy.

    Memory: the float32 cost vector (4 bytes a basis state), the state (8) and, while the backend
    runs, its copy of the state (8): :data:`greenshard.memory.BYTES_PER_AMPLITUDE` covers it."""

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
        self._spare: npt.NDArray[np.complex64] | None = None
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

    def initial_phase(
        self, gamma: float, out: npt.NDArray[np.complex64] | None = None
    ) -> npt.NDArray[np.complex64]:
        """exp(-i gamma C) |+>^n, written straight into ``out`` (a state's buffer to reuse) or
        into a new state."""
        if out is not None and out.shape != self.cost.shape:
            raise ValueError(f"out has shape {out.shape}; expected {self.cost.shape}")
        state = np.empty(self.cost.size, dtype=np.complex64) if out is None else out
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

    def apply_phase(self, state: npt.NDArray[np.complex64], gamma: float) -> None:
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

    def state(
        self, gammas: Angles, betas: Angles, out: npt.NDArray[np.complex64] | None = None
    ) -> npt.NDArray[np.complex64]:
        """The QAOA state. ``out``: a dead state's buffer for the first layer (the backend
        returns new ones for the others), so that no new one is faulted in (diagonal phase)."""
        if len(gammas) != self.depth or len(betas) != self.depth:
            raise ValueError(f"expected {self.depth} gammas and betas")
        self.evaluations += 1
        with backends.quiet_blas():
            if self.circuit is not None:
                return self.backend.run(self.circuit, self._resolver(gammas, betas), self.qubits)
            state: npt.NDArray[np.complex64] | None = None
            for gamma, beta in zip(gammas, betas, strict=True):
                if state is None:
                    state = self.initial_phase(float(gamma), out)
                    out = None  # the backend's copy replaces it: let it go then, not at return
                else:
                    self.apply_phase(state, float(gamma))
                resolver = cirq.ParamResolver({self.beta: 2.0 * float(beta) / np.pi})
                state = self.backend.run(self.mixer, resolver, self.qubits, initial_state=state)
            if state is None:  # depth 0: |+>
                state = np.full(
                    self.cost.size, np.float32(2.0 ** (-self.n / 2)), dtype=np.complex64
                )
            return state

    def energy(self, gammas: Angles, betas: Angles) -> float:
        """<C> of the state at these angles. With the diagonal phase the final state's buffer is
        kept for the next call's first layer: an optimiser's evaluations then fault in one new
        state fewer each (at 28 qubits a fresh 2 GiB costs several passes), at no extra peak (the
        kept buffer is the one the next call would allocate)."""
        state = self.state(gammas, betas, self._take_spare())  # no name here holds the buffer
        energy = self.expectation(state)
        if self.circuit is None:
            self._spare = state
        return energy

    def _take_spare(self) -> npt.NDArray[np.complex64] | None:
        spare, self._spare = self._spare, None
        return spare

    def release(self) -> None:
        """Drops the buffer kept by :meth:`energy`."""
        self._spare = None


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
