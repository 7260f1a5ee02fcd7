"""One measurement harness for ``greenshard bench`` and the static experiment.

Each configuration runs in a spawned worker process whose peak resident memory is reset before
it (:func:`run_in_workers`), on seeded synthetic instances that are feasible
(:func:`feasible_instances`); a QAOA energy evaluation is timed by :func:`time_evaluation` and a
solve, by solver name, by :func:`timed_solve`. Heavy imports (cirq, qsim) happen in the worker.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import numpy as np
import numpy.typing as npt

from greenshard import memory

if TYPE_CHECKING:
    from greenshard import model
    from greenshard.solvers import base
    from greenshard.solvers.qaoa.engine import QAOAEngine
    from greenshard.solvers.registry import SolverConfig

SEED_TRIES = 64  # synthetic seeds tried per feasible instance
BRUTE_FORCE_QUBITS = 20  # synthetic instances have K**S == 2**n placements: brute force up to here

Task = TypeVar("Task")
Row = dict[str, Any]


class Progress:
    """A one-line progress bar on stderr while it is a terminal (``greenshard bench`` and
    ``experiment`` run for minutes); nothing at all otherwise (logs, CI, pipes)."""

    WIDTH = 30

    def __init__(
        self,
        total: int,
        label: str,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = total > 0 and self.stream.isatty()
        self.total, self.label, self.clock = total, label, clock
        self.done = 0
        self.start = clock()

    def advance(self, steps: int = 1) -> None:
        self.done = min(self.total, self.done + steps)
        if not self.enabled:
            return
        filled = self.WIDTH * self.done // self.total
        elapsed = self.clock() - self.start
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(
            f"\r{self.label} [{bar}] {self.done}/{self.total}  {_clock(elapsed)} elapsed, "
            f"~{_clock(eta)} left "
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.done:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


def measured(work: Callable[[Task], Row], task: Task) -> Row:
    """In the worker: ``work(task)``'s row and the peak memory it reached (from a reset mark)."""
    memory.reset_peak()
    row = work(task)
    return {**row, "peakMemoryBytes": memory.peak_bytes()}


def run_in_workers(
    tasks: list[Task],
    work: Callable[[Task], Row],
    group: Callable[[Task], object] = lambda _: None,
    fresh_each: bool = False,
    environment: Callable[[Task], dict[str, str]] | None = None,
    label: str = "tasks",
) -> Iterator[tuple[Task, Row | None]]:
    """Each task's measured ``work`` in a spawned worker, in order: a new worker whenever
    ``group`` changes (so that no earlier size's memory stays resident), or for every task with
    ``fresh_each`` (where the peak cannot be reset). A worker that dies (out of memory) fails only
    its task: its row is None. With ``environment``, a task's worker starts with that environment
    (a new worker whenever it changes; this process's own is restored at the end)."""
    context = multiprocessing.get_context("spawn")
    pool: ProcessPoolExecutor | None = None
    current: object = None
    saved = dict(os.environ)
    progress = Progress(len(tasks), label)
    try:
        for task in tasks:
            env = environment(task) if environment is not None else None
            key = (group(task), sorted(env.items()) if env is not None else None)
            if pool is not None and key != current:
                pool.shutdown()
                pool = None
            current = key
            if pool is None:
                if env is not None:  # spawn copies this process's environment into the worker
                    os.environ.clear()
                    os.environ.update(env)
                pool = ProcessPoolExecutor(
                    1, mp_context=context, max_tasks_per_child=1 if fresh_each else None
                )
            try:
                row: Row | None = pool.submit(measured, work, task).result()
            except BrokenProcessPool:
                pool, row = None, None
            progress.advance()
            yield task, row
    finally:
        progress.close()
        if pool is not None:
            pool.shutdown()
        if environment is not None:
            os.environ.clear()
            os.environ.update(saved)


def fits(qubits: int, available: int | None) -> bool:
    """Whether a QAOA state on ``qubits`` fits the memory available (unknown: assume so)."""
    return available is None or memory.qaoa_bytes(qubits) <= available


def feasible_instances(
    qubits: int, seed: int, tries: int = SEED_TRIES
) -> Iterator[tuple[int, model.Problem, base.Solution]]:
    """(seed, problem, exact solution) of each feasible synthetic instance in seeds
    ``seed .. seed + tries - 1``, in order."""
    from greenshard import instances  # noqa: PLC0415 (heavy: in the worker only)
    from greenshard.errors import InfeasibleError  # noqa: PLC0415
    from greenshard.solvers import exact  # noqa: PLC0415

    for s in range(seed, seed + tries):
        problem = instances.synthetic_problem(qubits, s)
        try:
            reference = exact.solve_exact(problem)
        except InfeasibleError:
            continue
        yield s, problem, reference


#: The ansätze an evaluation can time: the binary-encoded qubit circuit (qsim or cirq) and the
#: one-hot XY-mixer ansatz simulated in its K**S subspace (numpy).
ANSATZE = ("binary", "onehot")
#: ``path`` of :func:`time_evaluation`: ``after`` is the default configuration; ``before`` the one
#: it replaced (malloc without huge pages; fused gates of 3 qubits, as the default is again), kept
#: so that one bench run can time both on the same machine; ``after-fN`` is ``after`` with qsim
#: fusing gates of up to N qubits (the measurement that picks the default fusion size).
FUSION_PATHS = tuple(f"after-f{n}" for n in range(1, 5))
PATHS = ("before", "after", *FUSION_PATHS)
BEFORE_FUSED_GATE_SIZE = 3
PASS_REPEAT = 3


def time_pass(source: npt.NDArray[np.complex64], repeat: int = PASS_REPEAT) -> list[float]:
    """Seconds of read+write passes over an array of ``source``'s size: numpy copies of it into
    one new array, first touched before the timing (``repeat`` samples)."""
    target = np.empty_like(source)
    np.copyto(target, source)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        np.copyto(target, source)
        times.append(time.perf_counter() - start)
    return times


def gpu_pass_seconds(amplitudes: int, repeat: int = PASS_REPEAT) -> list[float]:
    """Seconds of read+write passes over a complex64 array of ``amplitudes`` in the GPU's own
    memory (a device-to-device copy with CuPy), or [] where CuPy or a GPU is missing: a qsim-gpu
    evaluation's passes are then against the host's copy, and the row says so."""
    try:
        cupy: Any = importlib.import_module("cupy")
        source = cupy.zeros(amplitudes, dtype=cupy.complex64)
        target = cupy.empty_like(source)
        cupy.copyto(target, source)
        cupy.cuda.Device().synchronize()
    except Exception:  # no CuPy, no device, no memory: the host's pass stands in
        return []
    times = []
    for _ in range(repeat):  # pragma: no cover - needs a GPU
        start = time.perf_counter()
        cupy.copyto(target, source)
        cupy.cuda.Device().synchronize()
        times.append(time.perf_counter() - start)
    return times


def worker_environment(path: str) -> dict[str, str]:
    """The environment of a worker that times ``path``: malloc with huge pages after, as
    before without (glibc reads it when the worker starts)."""
    if path == "before":
        return memory.without_hugepage_malloc()
    return memory.hugepage_malloc()


@dataclass
class Evaluation:
    """A timed QAOA energy evaluation: the median seconds, the time of one read+write pass over a
    state of the same size (timed in the same worker, before and after the evaluations), the peak
    memory the evaluations reached, the setup, and what it ran with."""

    seconds: float
    pass_seconds: float
    passes: float  # the median of (seconds / the pass timed just before) over the evaluations
    setup: float
    threads: int
    amplitudes: int
    peak_bytes: int  # resident memory above the worker's before the setup, at the evaluations' peak
    backend: str  # the backend that ran (qsim-gpu falls back to qsim)
    fallback: str  # why it is not the one asked for ("" when it is)
    engine: Any  # QAOAEngine (binary) or SubspaceSimulator (onehot)
    state: Any  # the last state prepared (complex64)
    hugepages: bool = False  # whether the worker's malloc asked for transparent huge pages
    pass_reference: str = "host"  # host: a numpy copy; gpu: a copy in the GPU's own memory

    @property
    def peak_bytes_per_amplitude(self) -> float:
        return self.peak_bytes / self.amplitudes


def make_evaluator(
    problem: model.Problem,
    depth: int,
    ansatz: str = "binary",
    backend: str = "qsim",
    threads: int = 0,
    phase: str = "auto",
    path: str = "after",
) -> tuple[Any, Any, Any]:
    """(engine, gammas, betas): what :func:`time_evaluation` times. ``engine.state(gammas, betas)``
    prepares a state, ``engine.expectation(state)`` measures it."""
    from greenshard import hamiltonian  # noqa: PLC0415 (heavy: in the worker only)
    from greenshard.solvers import backends  # noqa: PLC0415
    from greenshard.solvers.qaoa.engine import QAOAEngine  # noqa: PLC0415
    from greenshard.solvers.qaoa.options import (  # noqa: PLC0415
        DEFAULT_RAMP_BETA,
        DEFAULT_RAMP_GAMMA,
    )
    from greenshard.solvers.qaoa.schedule import linear_ramp  # noqa: PLC0415

    if ansatz not in ANSATZE:
        raise ValueError(f"unknown ansatz {ansatz!r}; use one of {', '.join(ANSATZE)}")
    if path not in PATHS:
        raise ValueError(f"unknown path {path!r}; use one of {', '.join(PATHS)}")
    gammas, betas = linear_ramp(depth, DEFAULT_RAMP_GAMMA, DEFAULT_RAMP_BETA)
    if ansatz == "onehot":
        from greenshard import subspace  # noqa: PLC0415
        from greenshard.solvers import onehot  # noqa: PLC0415

        return (
            onehot.SubspaceSimulator(subspace.PlacementSpace(problem), threads=threads),
            (gammas),
            betas,
        )
    options = backends.BackendOptions(backend, threads)
    if path == "before":
        options = backends.BackendOptions(backend, threads, BEFORE_FUSED_GATE_SIZE)
    elif path in FUSION_PATHS:
        options = backends.BackendOptions(backend, threads, int(path.removeprefix("after-f")))
    ham = hamiltonian.CostHamiltonian(problem)
    return QAOAEngine(ham, depth, backends.Backend(options), phase), gammas, betas


def time_evaluation(
    problem: model.Problem,
    depth: int,
    backend: str = "qsim",
    threads: int = 0,
    phase: str = "auto",
    repeat: int = 3,
    ansatz: str = "binary",
    path: str = "after",
) -> Evaluation:
    """One QAOA energy evaluation at the default linear ramp (prepare the state, then
    ``<psi|C|psi>``, as an optimiser's loop calls it), ``repeat`` times after a warm-up, each right
    after one read+write pass over a state of the same size: the median seconds, the median pass,
    the median of the per-evaluation ratios (so that load drifting during the run cancels), the
    peak memory of the evaluations (reset before each, passes excluded) above what the process
    held before the setup, and the one-off setup (cost diagonal and engine)."""
    before = memory.resident_bytes()
    start = time.perf_counter()
    engine, gammas, betas = make_evaluator(problem, depth, ansatz, backend, threads, phase, path)
    setup = time.perf_counter() - start
    reuse = ansatz == "binary" and path != "before"  # the last state's buffer is the next layer 1
    kept: list[npt.NDArray[np.complex64]] = []  # that buffer, held by no name during a call

    def evaluate() -> npt.NDArray[np.complex64]:
        state: npt.NDArray[np.complex64]
        if reuse and kept:
            state = engine.state(gammas, betas, kept.pop())  # as QAOAEngine.energy does
        else:
            state = engine.state(gammas, betas)  # a new state each time
        engine.expectation(state)
        return state

    kept.append(evaluate())  # warm-up: first touch, thread start
    size = int(kept[0].size)
    if not reuse:
        kept.clear()
    times: list[float] = []
    passes: list[float] = []
    peak = 0
    for _ in range(repeat):
        source = kept[0] if kept else np.ones(size, dtype=np.complex64)
        passes.append(min(time_pass(source, 2)))
        del source
        memory.reset_peak()
        start = time.perf_counter()
        state = evaluate()
        times.append(time.perf_counter() - start)
        peak = max(peak, memory.peak_bytes() - before)
        if reuse:
            kept.append(state)
        del state
    state = kept.pop() if kept else engine.state(gammas, betas)
    runner = getattr(engine, "backend", None)
    reference = "host"
    if runner is not None and runner.name == "qsim-gpu":  # pragma: no cover - needs a CUDA qsim
        on_device = gpu_pass_seconds(size)
        if on_device:
            passes, reference = [statistics.median(on_device)] * len(times), "gpu"
    return Evaluation(
        pass_reference=reference,
        seconds=statistics.median(times),
        pass_seconds=statistics.median(passes),
        passes=statistics.median(t / p for t, p in zip(times, passes, strict=True)),
        setup=setup,
        threads=engine.threads,
        amplitudes=size,
        peak_bytes=peak,
        backend=runner.name if runner is not None else "numpy",
        fallback=runner.fallback if runner is not None else "",
        engine=engine,
        state=state,
        hugepages=memory.hugepage_malloc_active(),
    )


def profile_stages(
    engine: QAOAEngine, state: npt.NDArray[np.complex64], reuse: bool = True
) -> dict[str, float]:
    """Where one binary evaluation (numpy phase, qsim mixer) spends its time, in passes over the
    state (each stage timed once, right after a pass of the same size):

    * ``initialPhase``: ``exp(-i gamma C)|+>`` written into a dead state's buffer (``reuse``, as
      :meth:`QAOAEngine.energy` does) or into a new one (layer 1);
    * ``phase``: ``state *= exp(-i gamma C)`` in place (layers 2..p; cos and sin of the cost);
    * ``backendCall``: one backend call that applies a single gate: what every call costs before
      its gates (qsim copies the state in, reorders it for its SIMD layout and back, and returns
      a new buffer; 3 passes at best);
    * ``mixer``: one mixer call, ``fusedGates`` gates; ``perGate`` = (mixer - call) / (gates - 1);
    * ``expectation``: ``|psi|^2 . c``;
    * ``model``: initialPhase + (p-1) phase + p mixer + expectation, to compare with ``passes``.
    """
    import cirq  # noqa: PLC0415 (heavy: in the worker only)

    def timed(run: Callable[[], object]) -> float:
        reference = statistics.median(time_pass(state, 1))
        start = time.perf_counter()
        run()
        return (time.perf_counter() - start) / reference

    depth = engine.depth
    gates = -(-engine.n // max(1, engine.backend.options.max_fused_gate_size))
    one_gate = cirq.Circuit(cirq.XPowGate(exponent=0.0).on(engine.qubits[0]))
    beta = cirq.ParamResolver({engine.beta: -0.05})
    spare = np.zeros_like(state) if reuse else None
    stages = {
        "initialPhase": timed(lambda: engine.initial_phase(0.1, spare)),
        "phase": timed(lambda: engine.apply_phase(state, 0.0)),
        "backendCall": timed(
            lambda: engine.backend.run(one_gate, cirq.ParamResolver({}), engine.qubits, state)
        ),
        "mixer": timed(lambda: engine.backend.run(engine.mixer, beta, engine.qubits, state)),
        "expectation": timed(lambda: engine.expectation(state)),
    }
    stages["fusedGates"] = float(gates)
    stages["perGate"] = (stages["mixer"] - stages["backendCall"]) / max(1, gates - 1)
    stages["model"] = (
        stages["initialPhase"]
        + (depth - 1) * stages["phase"]
        + depth * stages["mixer"]
        + stages["expectation"]
    )
    return stages


def timed_solve(problem: model.Problem, config: SolverConfig) -> tuple[base.Solution, float]:
    """The solver that ``config`` names, on ``problem``, through the planner: its solution and
    the seconds to that (exactly verified) answer."""
    from greenshard import planner  # noqa: PLC0415 (heavy: in the worker)

    start = time.perf_counter()
    solution = planner.solve(problem, config)
    return solution, time.perf_counter() - start
