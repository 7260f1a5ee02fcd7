"""State-vector backends for QAOA, picked once by name: "qsim" (default), "qsim-gpu" or "cirq".

All run cirq circuits with sympy parameters. qsim is told to fuse gates up to
:data:`DEFAULT_FUSED_GATE_SIZE` qubits and to use every core, with passive OpenMP waiting; numpy's
BLAS threads are pinned to one while it runs (they spin beside qsim's OpenMP threads and cost 10x
otherwise).

Each qsim call allocates a new state buffer and page-faults it in. glibc hands that buffer to the
kernel in 4 KiB pages unless told otherwise; with ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (read
once, when a process starts: :func:`greenshard.memory.hugepage_malloc`) it asks for transparent
huge pages and the call's overhead fell from 7.4-7.6 to 2.9-3.0 passes over the state at 24 qubits
(one pass: a numpy copy of the same size, timed in the same run). The image sets it; the solver
child and bench workers are started with it.

"qsim-gpu" runs qsim's CUDA build. The PyPI wheel has none; asking for it there runs qsim on the CPU
and says so (:attr:`Backend.fallback`), so a plan or a bench row is never lost to a missing GPU.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import cirq
import numpy as np
import numpy.typing as npt
import structlog
from threadpoolctl import ThreadpoolController

BACKENDS = ("qsim", "qsim-gpu", "cirq")
#: qsim fuses the mixer's single-qubit gates into gates of this many qubits; each fused gate is one
#: sweep over the state, and a larger one more arithmetic per amplitude. Whole p=3 evaluations,
#: passes of a numpy copy, fusion 2 / 3 / 4 in one ``greenshard bench --paths
#: after-f2,after-f3,after-f4`` run (2026-12-07, 2 cores): 22.7 / 17.4 / 21.1 at 24 qubits,
#: 53.0 / 37.3 / 38.1 at 26, 49.9 / 42.6 / 45.3 at 28; on one thread 37.3 / 31.0 at 24 and
#: 75.9 / 66.0 at 26. (A single gate alone measured 0.7 passes at sizes 1 and 2 and 1.4 at 3, which
#: had made 2 the default; in an evaluation the fewer sweeps of 3 win.)
DEFAULT_FUSED_GATE_SIZE = 3
ComplexArray = npt.NDArray[np.complex64]
log = structlog.get_logger(__name__)


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class BackendOptions:
    name: str = "qsim"
    threads: int = 0  # 0: every core this process may use
    max_fused_gate_size: int = DEFAULT_FUSED_GATE_SIZE

    def cpu_threads(self) -> int:
        return self.threads if self.threads > 0 else available_cores()


class Backend:
    """Runs a circuit from a given state and returns the final state (complex64, big-endian)."""

    def __init__(self, options: BackendOptions) -> None:
        if options.name not in BACKENDS:
            raise ValueError(f"unknown backend {options.name!r}; use one of {', '.join(BACKENDS)}")
        self.options = options
        self.name = options.name
        #: Why the backend asked for is not the one running ("" when it is).
        self.fallback = ""
        self._sim: Any
        if options.name == "qsim-gpu":
            self.fallback = gpu_unavailable_reason()
            if self.fallback:
                log.warning("qsim GPU backend unavailable", reason=self.fallback)
                self.name = "qsim"
        if self.name == "qsim-gpu":
            qsimcirq = _import_qsim()
            self._sim = qsimcirq.QSimSimulator(qsimcirq.QSimOptions(use_gpu=True, gpu_mode=0))
        elif self.name == "qsim":
            qsimcirq = _import_qsim()
            self._sim = qsimcirq.QSimSimulator(
                qsimcirq.QSimOptions(
                    max_fused_gate_size=options.max_fused_gate_size,
                    cpu_threads=options.cpu_threads(),
                )
            )
        else:
            self._sim = cirq.Simulator(dtype=np.complex64)

    def run(
        self,
        circuit: cirq.Circuit,
        resolver: cirq.ParamResolver,
        qubits: list[cirq.LineQubit],
        initial_state: ComplexArray | int = 0,
    ) -> ComplexArray:
        """The final state. qsim copies an initial state in and returns a new array."""
        if self.name != "cirq":
            result = self._sim.simulate_into_1d_array(
                circuit, resolver, qubit_order=qubits, initial_state=initial_state
            )
            state = result[1] if isinstance(result, tuple) else result
            return np.asarray(state, dtype=np.complex64)
        final = self._sim.simulate(
            circuit, resolver, qubit_order=qubits, initial_state=initial_state
        ).final_state_vector
        return np.asarray(final, dtype=np.complex64)


def _import_qsim() -> Any:
    """qsimcirq, its OpenMP threads told to sleep while they wait (unless the user chose).

    libgomp reads OMP_WAIT_POLICY once, when qsimcirq loads it. Spinning waiters steal the core
    from the thread doing the work whenever anything else runs on the machine: measured here
    with a busy neighbour, one p=3 evaluation took 0.165 s at 18 qubits spinning, 0.011 s passive.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return importlib.import_module("qsimcirq")


def gpu_unavailable_reason() -> str:
    """ "" when qsimcirq can run on a GPU here, else why not (one line, with the fix)."""
    try:
        qsimcirq = _import_qsim()
    except ImportError as exc:  # pragma: no cover - qsimcirq is a dependency
        return f"qsimcirq cannot be imported ({exc}); running on the CPU"
    if getattr(qsimcirq, "qsim_gpu", None) is None:
        return (
            "backend qsim-gpu asked for, but this qsimcirq has no CUDA build (the PyPI wheel is "
            "CPU-only; build qsim from source with CUDA on a machine with a GPU): running qsim "
            "on the CPU instead"
        )
    return ""


@cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()  # inspects the loaded libraries once (milliseconds)


@contextmanager
def quiet_blas() -> Iterator[None]:
    """One BLAS thread while the simulator's own threads run."""
    with _controller().limit(limits=1, user_api="blas"):
        yield
