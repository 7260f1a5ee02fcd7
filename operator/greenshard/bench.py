"""`greenshard bench`: how fast QAOA simulates, and how well it answers, per qubit count.

For each qubit count n (a seeded synthetic instance, :func:`greenshard.instances.synthetic_problem`,
the first feasible seed from ``--seed`` on) and depth p:

* ``evaluation`` rows, one per backend and ansatz: the median seconds of one QAOA energy
  evaluation (prepare the state, then ``<psi|C|psi>``), and the same in *passes*: seconds divided
  by the time of one read+write pass (a numpy copy) over a state of the same size, timed in the
  same worker before and after the evaluations. Absolute seconds on a shared machine move 2-3x with
  load; the passes are the figure to compare. Beside them: the peak memory of the evaluations in
  bytes per amplitude (measured: resident memory above the worker's before the setup) and the one
  estimate that the operator, the chart and this bench use (``memory.BYTES_PER_AMPLITUDE``), the
  one-off setup (cost diagonal and engine), the probability that sampling the state gives an
  optimal placement, and the load average when the row finished. ``cirq.Simulator`` is skipped
  above ``--cirq-max-qubits``. ``--ansatz onehot`` adds the one-hot XY-mixer ansatz, simulated in
  its K**S subspace (its own state size). ``--paths before,after`` times the configuration this
  one replaced (qsim fusing 3-qubit gates, malloc without huge pages) beside the current one, in
  alternating workers of the same run. ``--profile`` splits one binary evaluation into its stages,
  in passes. ``qsim-gpu`` runs qsim's CUDA build where there is one, and says so where there is
  not (the PyPI wheel is CPU-only: it runs on the CPU).
* ``solve`` rows (``--solve``, up to ``--solve-max-qubits``): a QAOA solve per ansatz of
  ``--qaoa-ansatz`` (default the operator's, threshold; each with the CRD's defaults for it) and
  the classical solvers (brute force, MILP, genetic, anneal) on the same instance, each with its
  seconds to an answer verified against the exact optimum, and the gap. A QAOA row also has
  P(opt) from its state, that over uniform sampling of all states and of the feasible
  placements, TTS99 in shots, and the controls at its shot budget
  (:mod:`greenshard.solvers.controls`: uniform random sampling, random-restart local search,
  genetic, anneal, each given as many cost evaluations as QAOA took shots).

Every configuration runs in a spawned worker process: its peak resident memory is the kernel's
high-water mark, reset before each configuration where Linux allows it (else a fresh worker runs
each configuration and ``ru_maxrss`` is read). Heavy imports (cirq, qsim) happen in the worker.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from greenshard import harness, memory, model
from greenshard.harness import BRUTE_FORCE_QUBITS, SEED_TRIES
from greenshard.solvers import controls
from greenshard.solvers.qaoa.sampling import optimal_indices, probability_of_indices
from greenshard.solvers.registry import ANSATZE as SOLVE_ANSATZE
from greenshard.solvers.registry import DEFAULT_ANSATZ, SolverConfig

DEFAULT_QUBITS = "12,16,20,22,24"
BACKENDS = ("qsim", "cirq", "qsim-gpu")
ANSATZE = harness.ANSATZE
PATHS = harness.PATHS
SOLVERS = ("qaoa", "bruteforce", "milp", "genetic", "anneal")
MAX_QUBITS = 32


@dataclass(frozen=True)
class Task:
    """One configuration, run in the worker."""

    kind: str  # evaluation | solve
    qubits: int
    depth: int
    seed: int
    backend: str = "qsim"  # evaluation: qsim | cirq | qsim-gpu
    solver: str = "qaoa"  # solve: one of SOLVERS
    repeat: int = 3
    threads: int = 0
    fresh_worker: bool = False
    ansatz: str = "binary"  # evaluation: binary | onehot; qaoa solve: threshold | onehot | binary
    path: str = "after"  # evaluation: after (current) | before (the configuration it replaced)
    profile: bool = False  # evaluation: also time each stage of one evaluation


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
        default=["qsim", "cirq"],
        help="comma-separated: qsim,cirq,qsim-gpu (default qsim,cirq; qsim-gpu falls back to the "
        "CPU, with a note, where qsim has no CUDA build)",
    )
    p.add_argument(
        "--ansatz",
        type=_name_list(ANSATZE),
        default=["binary"],
        help="comma-separated: binary (the qubit circuit on the backends), onehot (the XY-mixer "
        "ansatz in its K**S subspace, numpy); default binary",
    )
    p.add_argument(
        "--paths",
        type=_name_list(PATHS),
        default=["after"],
        help="comma-separated: after (current), before (fused 3-qubit gates, malloc without huge "
        "pages), after-f1 .. after-f4 (current with qsim's fusion size 1-4); several time each "
        "in alternating workers of one run (default after)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="also split one binary qsim evaluation into its stages (passes each)",
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
        "--qaoa-ansatz",
        type=_name_list(SOLVE_ANSATZE),
        default=[DEFAULT_ANSATZ],
        help=f"with --solve: the QAOA ansatze solved, each with the CRD's defaults for it "
        f"(comma-separated: {','.join(SOLVE_ANSATZE)}; default {DEFAULT_ANSATZ}, the operator's)",
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
    started["loadAverageAtEnd"] = round(os.getloadavg()[0], 2)
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
        for backend, ansatz in _evaluations(args):
            if backend == "cirq" and n > args.cirq_max_qubits:
                notes.append(
                    f"cirq.Simulator skipped at {n} qubits (above --cirq-max-qubits="
                    f"{args.cirq_max_qubits}: minutes per evaluation)"
                )
                continue
            paths = args.paths if ansatz == "binary" and backend != "cirq" else ["after"]
            tasks += [
                Task(
                    "evaluation",
                    n,
                    args.depth,
                    args.seed,
                    backend=backend,
                    repeat=args.repeat,
                    threads=args.threads,
                    fresh_worker=fresh,
                    ansatz=ansatz,
                    path=path,
                    profile=args.profile and ansatz == "binary" and backend != "cirq",
                )
                for path in paths
            ]
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
                    ansatz=ansatz,
                )
                for solver in args.solvers
                if solver != "bruteforce" or n <= BRUTE_FORCE_QUBITS
                for ansatz in (args.qaoa_ansatz if solver == "qaoa" else ["-"])
            ]
    if args.solve and "bruteforce" in args.solvers and max(args.qubits) > BRUTE_FORCE_QUBITS:
        notes.append(f"brute force runs up to {BRUTE_FORCE_QUBITS} qubits (2^n placements)")
    if args.solve and any(n > args.solve_max_qubits for n in args.qubits):
        notes.append(f"solvers run up to --solve-max-qubits={args.solve_max_qubits} qubits")
    return tasks, notes


def _evaluations(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(backend, ansatz) of each evaluation row a qubit count gets: the binary ansatz on every
    backend asked for, the one-hot ansatz once (numpy)."""
    pairs = [(b, "binary") for b in args.backends if "binary" in args.ansatz]
    return pairs + ([("numpy", "onehot")] if "onehot" in args.ansatz else [])


def run_tasks(tasks: list[Task]) -> Iterator[dict[str, Any]]:
    """Each task in a spawned worker; a worker that dies (out of memory) fails only its task.
    A task's path decides its worker's environment (malloc with or without huge pages)."""
    fresh = any(task.fresh_worker for task in tasks)
    for task, row in harness.run_in_workers(
        tasks,
        run_task,
        group=lambda t: (t.path, t.qubits),
        fresh_each=fresh,
        label="bench",
        environment=lambda t: harness.worker_environment(t.path),
    ):
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
    row = {
        "kind": task.kind,
        "qubits": task.qubits,
        "depth": task.depth,
        "backend": backend,
        "solver": "qaoa" if task.kind == "evaluation" else task.solver,
    }
    if task.kind == "evaluation":
        row.update(ansatz=task.ansatz, path=task.path)
    elif task.solver == "qaoa":
        row.update(ansatz=task.ansatz)
    return row


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
        problem,
        task.depth,
        task.backend,
        task.threads,
        repeat=task.repeat,
        ansatz=task.ansatz,
        path=task.path,
    )
    engine = run.engine
    row: dict[str, Any] = {
        "seed": seed,
        "ranOn": run.backend,
        "threads": run.threads,
        "amplitudes": run.amplitudes,
        "secondsPerEvaluation": run.seconds,
        "secondsPerPass": run.pass_seconds,
        "passReference": run.pass_reference,
        "passes": run.passes,
        "peakBytesPerAmplitude": run.peak_bytes_per_amplitude,
        "estimateBytesPerAmplitude": memory.BYTES_PER_AMPLITUDE,
        "hugepageMalloc": run.hugepages,
        "secondsSetup": run.setup,
        "repeat": task.repeat,
        "loadAverage": round(os.getloadavg()[0], 2),
    }
    if run.fallback:
        row["fallback"] = run.fallback
    if task.ansatz == "onehot":
        row["probabilityOfOptimum"] = engine.optimum_probability(run.state)
        return row
    optimal = optimal_indices(problem, engine.ham, engine.cost, reference.emissions)
    row["probabilityOfOptimum"] = probability_of_indices(run.state, optimal)
    row["phase"] = engine.phase
    if engine.backend.name != "cirq":
        row["fusedGateSize"] = engine.backend.options.max_fused_gate_size
    if task.profile and engine.phase == "diagonal":
        row["profile"] = harness.profile_stages(engine, run.state, reuse=task.path != "before")
    return row


def _solve(task: Task) -> dict[str, Any]:
    seed, problem, _ = _instance(task.qubits, task.seed)
    # the benchmark measures every size it is asked for: no qubit bound; otherwise the CRD's
    # defaults (for QAOA, those of the ansatz named)
    config = SolverConfig(
        algorithm=task.solver, seed=seed, threads=task.threads, max_qubits=task.qubits
    )
    if task.solver == "qaoa":
        config = dataclasses.replace(config, ansatz=task.ansatz)
    solution, seconds = harness.timed_solve(problem, config)
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
    keys = (
        "ansatz",
        "samplingFoundOptimum",
        "polishChangedAnswer",
        "probabilityOfOptimum",
        "uniformRatio",
        "feasibleSetRatio",
        "tts99Shots",
        "oracleQueries",
        "shots",
    )
    for key in keys:
        if key in solution.details:
            row[key] = solution.details[key]
    if task.solver == "qaoa" and solution.optimum is not None:
        row["controls"] = _controls(problem, int(solution.details["shots"]), seed, solution.optimum)
    return row


def _controls(
    problem: model.Problem, budget: int, seed: int, optimum: float
) -> list[dict[str, Any]]:
    """The classical controls at the QAOA solve's shot budget (one cost evaluation a shot)."""
    return [
        {
            "name": c.name,
            "budget": c.budget,
            "evaluations": c.evaluations,
            "gap": c.gap(optimum),
            "found": c.found,
        }
        for c in controls.at_budget(problem, budget, seed, optimum)
    ]


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


def _backend(row: dict[str, Any]) -> str:
    """The backend asked for, and the one that ran when they differ (qsim-gpu without CUDA)."""
    ran = row.get("ranOn", row["backend"])
    return str(row["backend"] if ran == row["backend"] else f"{row['backend']}->{ran}")


def _path(row: dict[str, Any]) -> str:
    """after/before, with the qsim fusion size and whether malloc used huge pages."""
    if row.get("ansatz", "binary") != "binary" or "fusedGateSize" not in row:
        return str(row.get("path", "-"))
    pages = "hp" if row.get("hugepageMalloc") else "4k"
    return f"{row.get('path', '-')} (f{row['fusedGateSize']},{pages})"


def _mib(value: Any) -> str:
    return "-" if value is None else f"{value / 2**20:.0f} MiB"


_CONTROL_HEADERS = ("UNIFORM", "LOCAL SEARCH", "GENETIC", "ANNEAL")


def _control(c: dict[str, Any]) -> str:
    if c["found"]:
        return "found"
    return "no feasible" if c["gap"] is None else f"gap {c['gap']:.3g}"


def _grid(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    table = [header, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]


def render_table(rows: list[dict[str, Any]], notes: list[str], started: dict[str, Any]) -> str:
    evaluations = [r for r in rows if r["kind"] == "evaluation"]
    solves = [r for r in rows if r["kind"] == "solve"]
    lines = [
        f"load average {started['loadAverage']} at start, "
        f"{started.get('loadAverageAtEnd', '-')} at end, on {started['cores']} cores"
    ]
    if evaluations:
        depth = evaluations[0]["depth"]
        lines += [
            "",
            f"QAOA energy evaluation, p={depth} (median of {evaluations[0]['repeat']}); PASSES = "
            "seconds / one read+write pass over a state of the same size, timed in the same worker"
            if "repeat" in evaluations[0]
            else f"QAOA energy evaluation, p={depth}",
        ]
        lines += _grid(
            (
                "QUBITS",
                "ANSATZ",
                "BACKEND",
                "PATH",
                "AMPLITUDES",
                "SECONDS/EVAL",
                "PASS S",
                "PASSES",
                "PEAK B/AMP",
                "EST B/AMP",
                "SETUP S",
                "P(OPTIMUM)",
                "LOAD",
                "SEED",
            ),
            [
                (
                    str(r["qubits"]),
                    r.get("ansatz", "binary"),
                    _backend(r),
                    _path(r),
                    _fmt(r.get("amplitudes")),
                    _fmt(r.get("secondsPerEvaluation")),
                    _fmt(r.get("secondsPerPass")),
                    _fmt(r.get("passes"), ".1f"),
                    _fmt(r.get("peakBytesPerAmplitude"), ".1f"),
                    _fmt(r.get("estimateBytesPerAmplitude")),
                    _fmt(r.get("secondsSetup")),
                    _fmt(r.get("probabilityOfOptimum"), ".2e"),
                    _fmt(r.get("loadAverage")),
                    r.get("error", str(r.get("seed", "-"))),
                )
                for r in evaluations
            ],
        )
        profiled = [r for r in evaluations if "profile" in r]
        if profiled:
            lines += [
                "",
                "Stages of one binary evaluation, in passes (call: a qsim call applying one gate: "
                "copy in, SIMD reorder there and back, new buffer)",
            ]
            keys = (
                "initialPhase",
                "phase",
                "backendCall",
                "mixer",
                "fusedGates",
                "perGate",
                "expectation",
                "model",
            )
            lines += _grid(
                ("QUBITS", "PATH", *(k.upper() for k in keys), "MEASURED"),
                [
                    (
                        str(r["qubits"]),
                        _path(r),
                        *(_fmt(r["profile"][k], ".1f") for k in keys),
                        _fmt(r.get("passes"), ".1f"),
                    )
                    for r in profiled
                ],
            )
        notes = notes + sorted({r["fallback"] for r in evaluations if r.get("fallback")})
        if any(r.get("ranOn") == "qsim-gpu" and r.get("passReference") == "host" for r in rows):
            notes.append("qsim-gpu passes are against a host copy: no CuPy to time the GPU's own")
    if solves:
        lines += ["", "Solvers on the same instances (seconds to an answer verified exactly)"]
        lines += _grid(
            (
                "QUBITS",
                "SOLVER",
                "ANSATZ",
                "METHOD",
                "DEPTH",
                "SECONDS",
                "GAP",
                "P(OPTIMUM)",
                "/UNIFORM",
                "/UNIFORM FEASIBLE",
                "TTS99 SHOTS",
                "ORACLE QUERIES",
                "SAMPLED OPT",
                "POLISHED",
                "PEAK MEMORY",
            ),
            [
                (
                    str(r["qubits"]),
                    r["solver"],
                    r.get("ansatz", "-"),
                    r.get("error") or r.get("method", "-"),
                    _fmt(r.get("depth")),
                    _fmt(r.get("secondsToVerifiedAnswer")),
                    _fmt(r.get("gap")),
                    _fmt(r.get("probabilityOfOptimum"), ".2e"),
                    _fmt(r.get("uniformRatio"), ".3g"),
                    _fmt(r.get("feasibleSetRatio"), ".3g"),
                    _fmt(r.get("tts99Shots"), ".3g"),
                    _fmt(r.get("oracleQueries")),
                    _fmt(r.get("samplingFoundOptimum")),
                    _fmt(r.get("polishChangedAnswer")),
                    _mib(r.get("peakMemoryBytes")),
                )
                for r in solves
            ],
        )
        controlled = [r for r in solves if r.get("controls")]
        if controlled:
            lines += [
                "",
                "At the same budget: each QAOA solve's shots as cost evaluations for uniform "
                "random sampling, random-restart local search, genetic and anneal (found: the "
                "optimum; else the gap of the best feasible placement seen)",
            ]
            lines += _grid(
                ("QUBITS", "ANSATZ", "SHOTS", "QAOA SAMPLED OPT", *_CONTROL_HEADERS),
                [
                    (
                        str(r["qubits"]),
                        r.get("ansatz", "-"),
                        _fmt(r["controls"][0]["budget"]),
                        _fmt(r.get("samplingFoundOptimum")),
                        *(_control(c) for c in r["controls"]),
                    )
                    for r in controlled
                ],
            )
    lines += [f"note: {note}" for note in notes]
    return "\n".join(lines)
