"""One measurement harness for ``greenshard bench`` and the static experiment.

Each configuration runs in a spawned worker process whose peak resident memory is reset before
it (:func:`run_in_workers`), on seeded synthetic instances that are feasible
(:func:`feasible_instances`); a QAOA energy evaluation is timed by :func:`time_evaluation` and a
solve, by solver name, by :func:`timed_solve`. Heavy imports (cirq, qsim) happen in the worker.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

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
) -> Iterator[tuple[Task, Row | None]]:
    """Each task's measured ``work`` in a spawned worker, in order: a new worker whenever
    ``group`` changes (so that no earlier size's memory stays resident), or for every task with
    ``fresh_each`` (where the peak cannot be reset). A worker that dies (out of memory) fails only
    its task: its row is None."""
    context = multiprocessing.get_context("spawn")
    pool: ProcessPoolExecutor | None = None
    current: object = None
    try:
        for task in tasks:
            key = group(task)
            if pool is not None and key != current:
                pool.shutdown()
                pool = None
            current = key
            if pool is None:
                pool = ProcessPoolExecutor(
                    1, mp_context=context, max_tasks_per_child=1 if fresh_each else None
                )
            try:
                yield task, pool.submit(measured, work, task).result()
            except BrokenProcessPool:
                pool = None
                yield task, None
    finally:
        if pool is not None:
            pool.shutdown()


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


@dataclass
class Evaluation:
    """A timed QAOA energy evaluation: the median seconds, the setup, and what it ran with."""

    seconds: float
    setup: float
    threads: int
    engine: QAOAEngine
    state: Any  # the last state prepared (complex64)


def time_evaluation(
    problem: model.Problem,
    depth: int,
    backend: str = "qsim",
    threads: int = 0,
    phase: str = "auto",
    repeat: int = 3,
) -> Evaluation:
    """One QAOA energy evaluation at the default linear ramp (prepare the state on the backend,
    then ``<psi|C|psi>``): the median of ``repeat`` after a warm-up, and the one-off setup
    (cost diagonal and engine)."""
    from greenshard import hamiltonian  # noqa: PLC0415 (heavy: in the worker only)
    from greenshard.solvers import backends  # noqa: PLC0415
    from greenshard.solvers.qaoa.engine import QAOAEngine  # noqa: PLC0415
    from greenshard.solvers.qaoa.options import (  # noqa: PLC0415
        DEFAULT_RAMP_BETA,
        DEFAULT_RAMP_GAMMA,
    )
    from greenshard.solvers.qaoa.schedule import linear_ramp  # noqa: PLC0415

    start = time.perf_counter()
    ham = hamiltonian.CostHamiltonian(problem)
    runner = backends.Backend(backends.BackendOptions(backend, threads))
    engine = QAOAEngine(ham, depth, runner, phase)
    setup = time.perf_counter() - start
    gammas, betas = linear_ramp(depth, DEFAULT_RAMP_GAMMA, DEFAULT_RAMP_BETA)
    engine.energy(gammas, betas)  # warm-up: first-touch page faults, thread start
    times = []
    state = None
    for _ in range(repeat):
        state = None  # free the last state first: one evaluation's memory, not two
        start = time.perf_counter()
        state = engine.state(gammas, betas)
        engine.expectation(state)
        times.append(time.perf_counter() - start)
    return Evaluation(statistics.median(times), setup, runner.options.cpu_threads(), engine, state)


def timed_solve(problem: model.Problem, config: SolverConfig) -> tuple[base.Solution, float]:
    """The solver that ``config`` names, on ``problem``: its solution and the
    seconds to that (exactly verified) answer."""
    from greenshard.solvers.registry import make_solver  # noqa: PLC0415 (heavy: in the worker)

    solver = make_solver(config)
    start = time.perf_counter()
    solution = solver.solve(problem)
    return solution, time.perf_counter() - start
