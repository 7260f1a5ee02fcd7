"""`greenshard bench`: how fast QAOA simulates, and how well it answers, per qubit count.

For each qubit count n (a seeded synthetic instance, :func:`greenshard.instances.synthetic_problem`,
the first feasible seed from ``--seed`` on) and depth p:

* ``evaluation`` rows, one per backend: the median seconds of one QAOA energy evaluation (prepare
  the state on the backend, then ``<psi|C|psi>``), the one-off setup (cost diagonal and engine),
  the probability that sampling the state at the default ramp gives an optimal placement, and the
  peak memory of the process while it ran. ``cirq.Simulator`` is skipped above
  ``--cirq-max-qubits``.
* ``solve`` rows (``--solve``, up to ``--solve-max-qubits``): the default QAOA solve and the
  classical solvers (brute force, MILP, genetic, anneal) on the same instance, each with its
  seconds to an answer verified against the exact optimum, and the gap.

Every configuration runs in a spawned worker process: its peak resident memory is the kernel's
high-water mark, reset before each configuration where Linux allows it (else a fresh worker runs
each configuration and ``ru_maxrss`` is read). Heavy imports (cirq, qsim) happen in the worker.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from greenshard import harness, memory
from greenshard.harness import BRUTE_FORCE_QUBITS, SEED_TRIES
from greenshard.solvers.qaoa.sampling import optimal_indices, probability_of_indices
from greenshard.solvers.registry import SolverConfig

DEFAULT_QUBITS = "12,16,20,22,24"
BACKENDS = ("qsim", "cirq")
SOLVERS = ("qaoa", "bruteforce", "milp", "genetic", "anneal")
MAX_QUBITS = 32


@dataclass(frozen=True)
class Task:
    """One configuration, run in the worker."""

    kind: str  # evaluation | solve
    qubits: int
    depth: int
    seed: int
    backend: str = "qsim"  # evaluation: qsim | cirq
    solver: str = "qaoa"  # solve: one of SOLVERS
    repeat: int = 3
    threads: int = 0
    fresh_worker: bool = False


# ----------------------------------------------------------------------------------- parser


def _qubit_list(value: str) -> list[int]:
    try:
        qubits = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of integers such as 16,22,24 (got {value!r})"
        ) from None
    if not qubits:
        raise argparse.ArgumentTypeError("expected at least one qubit count, e.g. 16,22,24")
    bad = [q for q in qubits if not 2 <= q <= MAX_QUBITS]
    if bad:
        raise argparse.ArgumentTypeError(f"qubit counts must be 2..{MAX_QUBITS} (got {bad[0]})")
    return sorted(set(qubits))


def _name_list(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(value: str) -> list[str]:
        names = [part.strip() for part in value.split(",") if part.strip()]
        unknown = [n for n in names if n not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"choose from {','.join(allowed)} (got {value!r})")
        return list(dict.fromkeys(names))

    return parse


def _count(name: str, minimum: int, maximum: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer (got {value!r})") from None
        if not minimum <= number <= maximum:
            raise argparse.ArgumentTypeError(f"{name} must be {minimum}..{maximum} (got {number})")
        return number

    return parse


def add_parser(subparsers: Any) -> None:
    """Registers ``greenshard bench`` on the CLI's subparsers."""
    p = subparsers.add_parser(
        "bench",
        help="time QAOA evaluations and solvers per qubit count (not a test)",
        description="Seconds per QAOA energy evaluation on qsim and cirq.Simulator, peak memory, "
        "probability of sampling the optimum; with --solve, the QAOA and classical "
        "solvers with their gaps, on seeded synthetic instances.",
    )
    p.add_argument(
        "--qubits",
        type=_qubit_list,
        default=_qubit_list(DEFAULT_QUBITS),
        help=f"comma-separated qubit counts (default {DEFAULT_QUBITS})",
    )
    p.add_argument(
        "--depth",
        type=_count("--depth", 1, 1000),
        default=3,
        help="QAOA depth p of the timed evaluations (default 3)",
    )
    p.add_argument(
        "--backends",
        type=_name_list(BACKENDS),
        default=list(BACKENDS),
        help="comma-separated: qsim,cirq (default both)",
    )
    p.add_argument(
        "--repeat",
        type=_count("--repeat", 1, 100),
        default=3,
        help="timed evaluations per configuration; the median is reported",
    )
    p.add_argument(
        "--seed",
        type=_count("--seed", 0, 2**31),
        default=0,
        help="first instance seed tried (the first feasible one is used)",
    )
    p.add_argument(
        "--threads",
        type=_count("--threads", 0, 1024),
        default=0,
        help="simulator threads (default 0: every core)",
    )
    p.add_argument(
        "--cirq-max-qubits",
        type=_count("--cirq-max-qubits", 2, MAX_QUBITS),
        default=22,
        help="skip cirq.Simulator above this many qubits (default 22)",
    )
    p.add_argument(
        "--solve",
        action="store_true",
        help="also time a verified QAOA solve and the classical solvers",
    )
    p.add_argument(
        "--solvers",
        type=_name_list(SOLVERS),
        default=list(SOLVERS),
        help=f"with --solve (default {','.join(SOLVERS)})",
    )
    p.add_argument(
        "--solve-max-qubits",
        type=_count("--solve-max-qubits", 2, MAX_QUBITS),
        default=20,
        help="with --solve: up to this many qubits (default 20)",
    )
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_bench)


# ---------------------------------------------------------------------------------- command


def cmd_bench(args: argparse.Namespace) -> int:
    tasks, notes = plan_tasks(args)
    started = {"loadAverage": round(os.getloadavg()[0], 2), "cores": os.cpu_count()}
    rows = [{**row, "loadAverageAtStart": started["loadAverage"]} for row in run_tasks(tasks)]
    if args.output == "json":
        print(json.dumps(rows, indent=2))
        for note in notes:
            print(f"greenshard bench: {note}", file=sys.stderr)
    else:
        print(render_table(rows, notes, started))
    return 0


def plan_tasks(args: argparse.Namespace) -> tuple[list[Task], list[str]]:
    """The configurations to run, and notes on what was skipped and why."""
    tasks: list[Task] = []
    notes: list[str] = []
    fresh = not memory.can_reset_peak()
    available = memory.available_bytes()
    for n in args.qubits:
        if available is not None and not harness.fits(n, available):
            need = memory.qaoa_bytes(n)
            notes.append(
                f"{n} qubits skipped: needs about {need / 2**30:.1f} GiB, "
                f"{available / 2**30:.1f} GiB available"
            )
            continue
        for backend in args.backends:
            if backend == "cirq" and n > args.cirq_max_qubits:
                notes.append(
                    f"cirq.Simulator skipped at {n} qubits (above --cirq-max-qubits="
                    f"{args.cirq_max_qubits}: minutes per evaluation)"
                )
                continue
            tasks.append(
                Task(
                    "evaluation",
                    n,
                    args.depth,
                    args.seed,
                    backend=backend,
                    repeat=args.repeat,
                    threads=args.threads,
                    fresh_worker=fresh,
                )
            )
        if args.solve and n <= args.solve_max_qubits:
            tasks += [
                Task(
                    "solve",
                    n,
                    0,
                    args.seed,
                    solver=solver,
                    threads=args.threads,
                    fresh_worker=fresh,
                )
                for solver in args.solvers
                if solver != "bruteforce" or n <= BRUTE_FORCE_QUBITS
            ]
    if args.solve and "bruteforce" in args.solvers and max(args.qubits) > BRUTE_FORCE_QUBITS:
        notes.append(f"brute force runs up to {BRUTE_FORCE_QUBITS} qubits (2^n placements)")
    if args.solve and any(n > args.solve_max_qubits for n in args.qubits):
        notes.append(f"solvers run up to --solve-max-qubits={args.solve_max_qubits} qubits")
    return tasks, notes


def run_tasks(tasks: list[Task]) -> Iterator[dict[str, Any]]:
    """Each task in a spawned worker; a worker that dies (out of memory) fails only its task."""
    fresh = any(task.fresh_worker for task in tasks)
    for task, row in harness.run_in_workers(tasks, run_task, fresh_each=fresh):
        yield row or {**_identity(task), "error": "the worker process died (out of memory?)"}


# ----------------------------------------------------------------------------- in the worker


def run_task(task: Task) -> dict[str, Any]:
    """Runs one configuration (in the worker process) and returns its row."""
    row = _evaluation(task) if task.kind == "evaluation" else _solve(task)
    return {**_identity(task), **row}


def _identity(task: Task) -> dict[str, Any]:
    backend = (
        task.backend
        if task.kind == "evaluation"
        else (task.backend if task.solver == "qaoa" else "classical")
    )
    return {
        "kind": task.kind,
        "qubits": task.qubits,
        "depth": task.depth,
        "backend": backend,
        "solver": "qaoa" if task.kind == "evaluation" else task.solver,
    }


def _instance(qubits: int, seed: int) -> tuple[int, Any, Any]:
    """(seed, problem, exact solution): the first feasible synthetic instance from ``seed``."""
    for found in harness.feasible_instances(qubits, seed):
        return found
    raise RuntimeError(
        f"no feasible synthetic instance with {qubits} qubits in seeds "
        f"{seed}..{seed + SEED_TRIES - 1}"
    )


def _evaluation(task: Task) -> dict[str, Any]:
    seed, problem, reference = _instance(task.qubits, task.seed)
    run = harness.time_evaluation(
        problem, task.depth, task.backend, task.threads, repeat=task.repeat
    )
    engine = run.engine
    optimal = optimal_indices(problem, engine.ham, engine.cost, reference.emissions)
    return {
        "seed": seed,
        "phase": engine.phase,
        "threads": run.threads,
        "secondsPerEvaluation": run.seconds,
        "secondsSetup": run.setup,
        "repeat": task.repeat,
        "probabilityOfOptimum": probability_of_indices(run.state, optimal),
    }


def _solve(task: Task) -> dict[str, Any]:
    seed, problem, _ = _instance(task.qubits, task.seed)
    solution, seconds = harness.timed_solve(
        problem,
        # the benchmark measures every size it is asked for: no qubit bound
        SolverConfig(
            algorithm=task.solver, seed=seed, threads=task.threads, max_qubits=task.qubits
        ),
    )
    row: dict[str, Any] = {
        "seed": seed,
        "depth": solution.depth,
        "method": solution.method,
        "secondsToVerifiedAnswer": seconds,
        "secondsPerEvaluation": seconds / max(1, solution.evaluations),
        "evaluations": solution.evaluations,
        "gap": solution.gap,
        "optimal": solution.gap == 0.0,
    }
    for key in ("samplingFoundOptimum", "polishChangedAnswer", "probabilityOfOptimum", "shots"):
        if key in solution.details:
            row[key] = solution.details[key]
    return row


# ------------------------------------------------------------------------------ peak memory


# ------------------------------------------------------------------------------------ table


def _fmt(value: Any, spec: str = ".3g") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def _mib(value: Any) -> str:
    return "-" if value is None else f"{value / 2**20:.0f} MiB"


def _grid(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    table = [header, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]


def render_table(rows: list[dict[str, Any]], notes: list[str], started: dict[str, Any]) -> str:
    evaluations = [r for r in rows if r["kind"] == "evaluation"]
    solves = [r for r in rows if r["kind"] == "solve"]
    lines = [f"load average {started['loadAverage']} on {started['cores']} cores at start"]
    if evaluations:
        depth = evaluations[0]["depth"]
        lines += [
            "",
            f"QAOA energy evaluation, p={depth} (median of {evaluations[0]['repeat']})"
            if "repeat" in evaluations[0]
            else f"QAOA energy evaluation, p={depth}",
        ]
        lines += _grid(
            ("QUBITS", "BACKEND", "SECONDS/EVAL", "SETUP S", "PEAK MEMORY", "P(OPTIMUM)", "SEED"),
            [
                (
                    str(r["qubits"]),
                    r["backend"],
                    _fmt(r.get("secondsPerEvaluation")),
                    _fmt(r.get("secondsSetup")),
                    _mib(r.get("peakMemoryBytes")),
                    _fmt(r.get("probabilityOfOptimum"), ".2e"),
                    r.get("error", str(r.get("seed", "-"))),
                )
                for r in evaluations
            ],
        )
    if solves:
        lines += ["", "Solvers on the same instances (seconds to an answer verified exactly)"]
        lines += _grid(
            (
                "QUBITS",
                "SOLVER",
                "METHOD",
                "DEPTH",
                "SECONDS",
                "GAP",
                "P(OPTIMUM)",
                "SAMPLED OPT",
                "POLISHED",
                "PEAK MEMORY",
            ),
            [
                (
                    str(r["qubits"]),
                    r["solver"],
                    r.get("error") or r.get("method", "-"),
                    _fmt(r.get("depth")),
                    _fmt(r.get("secondsToVerifiedAnswer")),
                    _fmt(r.get("gap")),
                    _fmt(r.get("probabilityOfOptimum"), ".2e"),
                    _fmt(r.get("samplingFoundOptimum")),
                    _fmt(r.get("polishChangedAnswer")),
                    _mib(r.get("peakMemoryBytes")),
                )
                for r in solves
            ],
        )
    lines += [f"note: {note}" for note in notes]
    return "\n".join(lines)
