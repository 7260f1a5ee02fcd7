"""Static experiment: QAOA (p = 1..5 with COBYLA, and the default p = 100 ramp) against brute
force, the genetic algorithm and annealing on seeded synthetic instances, and the seconds per
QAOA energy evaluation against n up to the largest state vector that fits in memory.

Every configuration runs in a spawned worker process whose peak resident memory (VmHWM) is reset
before it, so the peak memory of each row is its own (Python, numpy and cirq included).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenshard import harness, memory
from greenshard.experiments import report
from greenshard.harness import BRUTE_FORCE_QUBITS, SEED_TRIES
from greenshard.solvers.registry import SolverConfig

PREPRINT_WALL = 15  # layers, one per shard in the preprint's mapping
HELD_OUT_SEED = 100_000  # instances.HELD_OUT_SEEDS[0]: the wall's instances
BINARY_DEPTH = SolverConfig().depth  # the CRD's default depth
SHOTS = SolverConfig().shots  # the CRD's default shots


@dataclass(frozen=True)
class StaticConfig:
    solve_qubits: tuple[int, ...] = (6, 8, 10, 12, 14, 16, 18, 20)
    eval_qubits: tuple[int, ...] = (6, 8, 10, 12, 14, 15, 16, 18, 20, 22, 24, 26, 28)
    depths: tuple[int, ...] = (1, 2, 3, 4, 5)
    instances: int = 2  # feasible instances per size
    eval_depth: int = 3
    repeat: int = 3
    cobyla_evaluations: int = 30
    default_depth: bool = True  # also the solver's default p = 100 linear ramp
    # the wall in the preprint's unit: N shards (one layer each) over wall_pools pools
    wall_threshold_shards: tuple[int, ...] = (6, 7, 8, 9, 10, 11, 12)
    wall_onehot_shards: tuple[int, ...] = (6, 7, 8, 9, 10)
    wall_onehot_depth: int = 4
    wall_pools: int = 5


QUICK = StaticConfig(
    solve_qubits=(6, 8),
    eval_qubits=(6, 8, 10, 12, 14, 16),
    depths=(1, 3),
    instances=1,
    repeat=1,
    cobyla_evaluations=8,
    wall_threshold_shards=(4, 5, 6),
    wall_onehot_shards=(4, 5),
)


@dataclass(frozen=True)
class Task:
    kind: str  # solve | evaluation | bandwidth | wall
    qubits: int = 0
    seed: int = 0
    solver: str = ""  # qaoa (binary, the preprint's) | threshold (the default) | onehot | ...
    depth: int = 0
    instance: int = 0  # the i-th feasible instance from seed
    repeat: int = 1
    cobyla_evaluations: int = 30
    pools: int = 0  # wall: pools per shard


# ------------------------------------------------------------------------------ in the worker


def run_task(task: Task) -> dict[str, Any]:
    if task.kind == "solve":
        return _solve(task)
    if task.kind == "evaluation":
        return _evaluation(task)
    if task.kind == "wall":
        return _wall(task)
    return _bandwidth()


def feasible_seeds(qubits: int, seed: int, count: int) -> list[int]:
    """The first ``count`` seeds from ``seed`` whose synthetic instance is feasible."""
    found = [s for s, _, _ in harness.feasible_instances(qubits, seed, SEED_TRIES * count)]
    if len(found) < count:
        raise RuntimeError(f"no {count} feasible {qubits}-qubit instances from seed {seed}")
    return found[:count]


def _solve(task: Task) -> dict[str, Any]:
    from greenshard import instances  # noqa: PLC0415

    seed = feasible_seeds(task.qubits, task.seed, task.instance + 1)[task.instance]
    problem = instances.synthetic_problem(task.qubits, seed)
    config = SolverConfig(algorithm=task.solver, seed=seed, max_qubits=task.qubits)
    if task.solver in ("threshold", "onehot"):  # the operator's default QAOA, and the XY one
        config = SolverConfig(algorithm="qaoa", ansatz=task.solver, seed=seed, max_qubits=28)
    if task.solver == "qaoa":
        cobyla = task.depth <= 5
        config = SolverConfig(
            algorithm="qaoa",
            ansatz="binary",
            max_qubits=task.qubits,
            depth=task.depth,
            seed=seed,
            optimizer="cobyla" if cobyla else "none",
            max_evaluations=max(task.cobyla_evaluations, 2 * task.depth + 3),
        )
    solution, seconds = harness.timed_solve(problem, config)
    row: dict[str, Any] = {
        "kind": "solve",
        "qubits": task.qubits,
        "seed": seed,
        "solver": task.solver,
        "depth": task.depth,
        "method": solution.method,
        "seconds": seconds,
        "evaluations": solution.evaluations,
        "gap": solution.gap,
    }
    details = solution.details
    if "probabilityOfOptimum" in details:
        row["probabilityOfOptimum"] = details["probabilityOfOptimum"]
        sampled = details.get("sampledPlacement")
        row["sampledGap"] = (
            None
            if sampled is None or solution.optimum is None
            else _gap(problem, tuple(sampled), solution.optimum)
        )
        for key in ("ansatz", "uniformRatio", "feasibleSetRatio", "tts99Shots", "shots"):
            row[key] = details.get(key)
        if default_configuration(task.solver, task.depth) and solution.optimum is not None:
            from greenshard.solvers import controls  # noqa: PLC0415

            row["feasibleFraction"] = _feasible_fraction(problem)
            row["controls"] = {
                c.name: c.gap(solution.optimum)
                for c in controls.at_budget(problem, int(details["shots"]), seed, solution.optimum)
            }
    return row


def default_configuration(solver: str, depth: int) -> bool:
    """A QAOA ansatz as the operator runs it (not one of the p <= 5 COBYLA runs)."""
    return solver in ("threshold", "onehot") or (solver == "qaoa" and depth > 5)


def _feasible_fraction(problem: Any) -> float:
    from greenshard import subspace  # noqa: PLC0415

    space = subspace.PlacementSpace(problem)
    return space.stats.count / space.size


def _wall(task: Task) -> dict[str, Any]:
    """One size of the wall in the preprint's unit, in a fresh interpreter (its own peak)."""
    from greenshard.experiments import onehot_schedule  # noqa: PLC0415
    from greenshard.solvers import onehot  # noqa: PLC0415

    row = onehot_schedule.wall_in_process(
        task.qubits, task.pools, task.depth, onehot.DEFAULT_SHOTS, task.seed, task.solver
    )
    return {"kind": "wall", **row}


def _gap(problem: Any, placement: tuple[int, ...], optimum: float) -> float:
    from greenshard import model  # noqa: PLC0415
    from greenshard.solvers import base  # noqa: PLC0415

    return base.relative_gap(model.emissions(problem, placement), optimum)


def _evaluation(task: Task) -> dict[str, Any]:
    from greenshard import instances  # noqa: PLC0415

    problem = instances.synthetic_problem(task.qubits, task.seed)
    run = harness.time_evaluation(problem, task.depth, phase="diagonal", repeat=task.repeat)
    return {
        "kind": "evaluation",
        "qubits": task.qubits,
        "depth": task.depth,
        "seed": task.seed,
        "secondsPerEvaluation": run.seconds,
        "secondsSetup": run.setup,
        "threads": run.threads,
        "loadAverage": report.load_average(),
    }


def _bandwidth() -> dict[str, Any]:
    """Measured memory bandwidth: copies of a 512 MiB complex64 array (read + write)."""
    import numpy as np  # noqa: PLC0415

    size = 1 << 26
    src = np.ones(size, dtype=np.complex64)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - start)
    return {"kind": "bandwidth", "bytesPerSecond": 2 * src.nbytes / min(times)}


def run_tasks(tasks: list[Task]) -> Iterator[tuple[Task, dict[str, Any]]]:
    """Tasks in spawned workers, a fresh one per (kind, qubits) so that no earlier size's memory
    stays resident; the peak is reset before each task. A dead worker fails only its task."""
    for task, row in harness.run_in_workers(
        tasks, run_task, group=lambda t: (t.kind, t.qubits), label="experiment static"
    ):
        yield task, row or {"kind": task.kind, "error": "the worker process died (memory?)"}


# ------------------------------------------------------------------------------------ model


def bytes_per_evaluation(qubits: int, depth: int) -> float:
    """Bytes moved through memory by one energy evaluation (a model of QAOAEngine.energy).

    Per basis state: each cost layer reads the float32 cost (4) and reads and writes the
    complex64 state (16; the first layer only writes it); each mixer copies the state into qsim
    and back (32) and qsim sweeps it once per fused 3-qubit gate (16 x ceil(n/3)); the energy
    reads state and cost once more (12)."""
    per_state = 12 + 20 * (depth - 1) + depth * (32 + 16 * math.ceil(qubits / 3)) + 12
    return float(per_state) * 2.0**qubits


# ---------------------------------------------------------------------------------- command


def label(solver: str, depth: int) -> str:
    if solver == "threshold":
        return "qaoa threshold (default)"
    if solver == "onehot":
        return "qaoa onehot XY"
    if solver != "qaoa":
        return solver
    if depth > 5:
        return f"qaoa binary p={depth} (CRD defaults)"
    return f"qaoa p={depth}"


def run(out: Path, seed: int = 0, quick: bool = False) -> Path:
    config = QUICK if quick else StaticConfig()
    started = time.perf_counter()
    load_start = report.load_average()
    solve_tasks = [
        Task("solve", n, seed, solver, depth, i, cobyla_evaluations=config.cobyla_evaluations)
        for n in config.solve_qubits
        for i in range(config.instances)
        for solver, depth in [
            *(("qaoa", p) for p in config.depths),
            *([("qaoa", BINARY_DEPTH)] if config.default_depth else []),
            ("threshold", 0),
            ("onehot", 0),
            ("bruteforce", 0),
            ("genetic", 0),
            ("anneal", 0),
        ]
        if solver != "bruteforce" or n <= BRUTE_FORCE_QUBITS
    ]
    available = memory.available_bytes()
    skipped = [n for n in config.eval_qubits if not harness.fits(n, available)]
    eval_tasks = [
        Task("evaluation", n, seed, depth=config.eval_depth, repeat=config.repeat)
        for n in config.eval_qubits
        if n not in skipped
    ]
    wall_tasks = [
        Task("wall", n, HELD_OUT_SEED, solver, depth, pools=config.wall_pools)
        for solver, depth, sizes in (
            ("threshold", 0, config.wall_threshold_shards),
            ("onehot", config.wall_onehot_depth, config.wall_onehot_shards),
        )
        for n in sizes
    ]
    tasks = [Task("bandwidth"), *solve_tasks, *eval_tasks, *wall_tasks]
    rows = [row for _, row in run_tasks(tasks)]
    bandwidth = next(r["bytesPerSecond"] for r in rows if r["kind"] == "bandwidth")
    solves = [r for r in rows if r["kind"] == "solve" and "error" not in r]
    evals = [r for r in rows if r["kind"] == "evaluation" and "error" not in r]
    walls = [r for r in rows if r["kind"] == "wall" and "error" not in r]
    failed = [r for r in rows if "error" in r]
    return write_report(
        out,
        config,
        seed,
        Rows(solves, evals, walls, failed),
        bandwidth,
        skipped,
        load_start,
        available,
        started,
    )


@dataclass(frozen=True)
class Rows:
    solves: list[dict[str, Any]]
    evals: list[dict[str, Any]]
    walls: list[dict[str, Any]]
    failed: list[dict[str, Any]]


def _summary(solves: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (qubits, solver label): means over instances."""
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for r in solves:
        groups.setdefault((r["qubits"], label(r["solver"], r["depth"])), []).append(r)
    out = []
    for (n, name), rs in groups.items():
        p_opt = [r["probabilityOfOptimum"] for r in rs if "probabilityOfOptimum" in r]
        sampled = [r["sampledGap"] for r in rs if r.get("sampledGap") is not None]
        out.append(
            {
                "qubits": n,
                "solver": name,
                "instances": len(rs),
                "maxGap": max(float(r["gap"]) for r in rs),
                "optimal": sum(1 for r in rs if r["gap"] == 0.0),
                "maxSampledGap": max(sampled) if sampled else None,
                "sampledMissing": sum(1 for r in rs if r.get("sampledGap", 0.0) is None),
                "probabilityOfOptimum": statistics.mean(p_opt) if p_opt else None,
                "seconds": statistics.mean(r["seconds"] for r in rs),
                "peakMemoryBytes": max(r["peakMemoryBytes"] for r in rs),
            }
        )
    return out


def write_report(
    out: Path,
    config: StaticConfig,
    seed: int,
    rows: Rows,
    bandwidth: float,
    skipped: list[int],
    load_start: float,
    available: int | None,
    started: float,
) -> Path:
    import numpy as np  # noqa: PLC0415

    solves, evals, failed = rows.solves, rows.evals, rows.failed

    doc = report.Report(
        out, "Static experiment: QAOA vs brute force, genetic and annealing", started
    )
    summary = _summary(solves)
    doc.text(
        f"Seeded synthetic instances (`greenshard.instances`, seed {seed}, "
        f"{config.instances} feasible instance(s) per size; K = 4 pools and n/2 shards for even "
        "n, memory limits binding). QAOA at p = "
        f"{', '.join(map(str, config.depths))} starts from the linear ramp and COBYLA refines "
        f"every angle ({config.cobyla_evaluations} energy evaluations), on the binary ansatz "
        f"(the preprint's). `qaoa binary p={BINARY_DEPTH} (CRD defaults)` is that ansatz as the "
        "operator runs it when `spec.solver.ansatz: binary` (its linear ramp, no optimiser); "
        "`qaoa threshold (default)` and `qaoa onehot XY` are the other two ansatze at the CRD's "
        f"defaults. Every QAOA answer is the best of {SHOTS} samples (the binary ansatz's then "
        "polished by a local search); *sampled gap* is the gap of the best sample alone. The "
        "gap is `(chosen - optimum) / optimum` against the exact optimum (cost-model.md).",
        f"Load average at the start: {load_start}.",
    )
    doc.heading("Optimality gap, probability of the optimum, time to solution, peak memory")
    doc.table(
        (
            "qubits",
            "solver",
            "instances",
            "optimal",
            "max gap",
            "max sampled gap",
            "P(optimum)",
            "seconds to verified answer",
            "peak memory MiB",
        ),
        [
            (
                s["qubits"],
                s["solver"],
                s["instances"],
                f"{s['optimal']}/{s['instances']}",
                s["maxGap"],
                "no feasible sample" if s["sampledMissing"] else s["maxSampledGap"],
                report.fmt(s["probabilityOfOptimum"], ".2e"),
                s["seconds"],
                round(s["peakMemoryBytes"] / 2**20),
            )
            for s in sorted(summary, key=lambda s: (s["qubits"], _order(s["solver"])))
        ],
    )
    qaoa_rows = [s for s in summary if s["solver"].startswith("qaoa")]
    with doc.figure(
        "solvers.png",
        "Left: probability of the optimal placement in the QAOA state by depth. Right: mean "
        "seconds to an answer verified exactly, per solver.",
        (10.0, 4.2),
    ) as fig:
        left, right = fig.subplots(1, 2)
        for name in sorted({s["solver"] for s in qaoa_rows}, key=_order):
            pts = sorted(
                (s["qubits"], s["probabilityOfOptimum"]) for s in qaoa_rows if s["solver"] == name
            )
            left.semilogy([p[0] for p in pts], [p[1] for p in pts], "o-", label=name)
        left.semilogy(
            sorted({s["qubits"] for s in summary}),
            [2.0**-n for n in sorted({s["qubits"] for s in summary})],
            "k:",
            label="uniform 2^-n",
        )
        left.set_xlabel("qubits n")
        left.set_ylabel("P(optimum)")
        left.legend(fontsize=7)
        left.grid(True, alpha=0.3)
        for name in sorted({s["solver"] for s in summary}, key=_order):
            pts = sorted((s["qubits"], s["seconds"]) for s in summary if s["solver"] == name)
            right.semilogy([p[0] for p in pts], [p[1] for p in pts], "o-", label=name)
        right.set_xlabel("qubits n")
        right.set_ylabel("seconds to verified answer")
        right.legend(fontsize=7)
        right.grid(True, alpha=0.3)

    _per_instance(doc, solves)
    doc.heading("Seconds per QAOA energy evaluation against n: where the wall is")
    caches = _cache_sizes()
    model_rows = []
    for r in evals:
        n, p = r["qubits"], r["depth"]
        moved = bytes_per_evaluation(n, p)
        model_rows.append(
            (
                n,
                r["secondsPerEvaluation"],
                r["secondsPerEvaluation"] / (p * 2.0**n) * 1e9,
                round(r["peakMemoryBytes"] / 2**20),
                (8 << n) / 2**20,
                moved / 2**30,
                moved / bandwidth,
                moved / r["secondsPerEvaluation"] / 1e9,
                r["loadAverage"],
            )
        )
    largest = max((r["qubits"] for r in evals), default=0)
    memory_wall = memory.largest_qubits(available) if available else None
    doc.text(
        f"One energy evaluation at p = {config.eval_depth} (prepare the state with the numpy "
        "phase and qsim mixers, then `<psi|C|psi>`), the median of "
        f"{config.repeat} after a warm-up, each size in its own worker. Measured memory "
        f"bandwidth (numpy copy of 512 MiB): **{bandwidth / 1e9:.1f} GB/s**. Caches: {caches}. "
        f"Memory available at the start: "
        f"{'?' if available is None else f'{available / 2**30:.1f} GiB'}, so the largest n with "
        f"{memory.BYTES_PER_AMPLITUDE} bytes a basis state is **{memory_wall}**"
        + (f"; skipped: {', '.join(map(str, skipped))}" if skipped else "")
        + ".",
    )
    doc.table(
        (
            "qubits",
            "s / evaluation",
            "ns per amplitude per layer",
            "peak MiB",
            "state MiB",
            "modelled GiB moved",
            "model s at measured bandwidth",
            "effective GB/s",
            "load",
        ),
        model_rows,
    )
    doc.text(_reading(evals, bandwidth, memory_wall, largest))
    with doc.figure(
        "evaluation.png",
        "Seconds per QAOA energy evaluation (p = "
        f"{config.eval_depth}) against qubits, with the bandwidth model and the preprint's wall "
        "at 15; right: peak memory of the worker.",
        (10.0, 4.2),
    ) as fig:
        left, right = fig.subplots(1, 2)
        ns = [r["qubits"] for r in evals]
        left.semilogy(ns, [r["secondsPerEvaluation"] for r in evals], "o-", label="measured (qsim)")
        grid = np.arange(min(ns, default=6), max(ns, default=28) + 1)
        left.semilogy(
            grid,
            [bytes_per_evaluation(int(n), config.eval_depth) / bandwidth for n in grid],
            "--",
            label=f"bytes moved / {bandwidth / 1e9:.0f} GB/s",
        )
        left.axvline(PREPRINT_WALL, color="red", linestyle=":", label="preprint's wall (15)")
        if memory_wall is not None:
            left.axvline(memory_wall, color="black", linestyle=":", label=f"memory ({memory_wall})")
        left.set_xlabel("qubits n")
        left.set_ylabel("seconds per evaluation")
        left.legend(fontsize=7)
        left.grid(True, alpha=0.3)
        right.semilogy(ns, [r["peakMemoryBytes"] / 2**20 for r in evals], "o-", label="peak RSS")
        right.semilogy(grid, [(8 << int(n)) / 2**20 for n in grid], "--", label="one state")
        right.set_xlabel("qubits n")
        right.set_ylabel("MiB")
        right.legend(fontsize=7)
        right.grid(True, alpha=0.3)
    _wall_section(doc, config, rows.walls)
    if failed:
        doc.heading("Failed configurations")
        doc.table(("kind", "error"), [(r["kind"], r["error"]) for r in failed])
    doc.heading("Against the preprint")
    best_qaoa = [s for s in summary if s["solver"].startswith("qaoa")]
    worst = max((s["maxGap"] for s in best_qaoa), default=None)
    doc.table(
        ("claim", "preprint", "here"),
        [
            (
                "optimality gap",
                "< 1e-5",
                f"max gap {report.fmt(worst)} over {len(best_qaoa)} QAOA configurations "
                f"(n = {min(config.solve_qubits)}..{max(config.solve_qubits)})",
            ),
            (
                "simulation wall",
                f"N = {PREPRINT_WALL} layers (one per shard)",
                _wall_claim(config, rows.walls),
            ),
        ],
    )
    return doc.write()


def _control_cell(gap: float | None) -> str:
    if gap is None:
        return "no feasible"
    return "found" if gap == 0.0 else f"gap {report.fmt(gap)}"


def _per_instance(doc: report.Report, solves: list[dict[str, Any]]) -> None:
    rows = sorted(
        (r for r in solves if "controls" in r),
        key=lambda r: (r["qubits"], r["seed"], _order(label(r["solver"], r["depth"]))),
    )
    doc.heading("Per instance and ansatz, beside the controls at the same shot budget")
    doc.text(
        "Each QAOA ansatz as the operator runs it (the CRD's defaults for it). P(opt) is read "
        "from the state; the ratios divide it by what uniform sampling gives over all basis "
        "states of the ansatz's register (2^n for binary, K^S "
        "placements for the one-hot ones) and over the feasible placements; TTS99 is the shots "
        "until an optimal sample with probability 0.99. *Sampled* is the best sample alone "
        "(before the binary ansatz's local search). The four controls get as many cost "
        "evaluations as QAOA took shots (`greenshard.solvers.controls`): uniform random "
        "sampling of placements, random-restart local search, genetic, anneal; *found* means "
        "the optimum, else the gap of the best feasible placement each saw. The threshold "
        "ansatz's shots are preparations of about sqrt(K^S) Grover layers each: its oracle "
        "queries (bench) are far more than its shots. These synthetic instances are mostly "
        "feasible (the *feasible* column); docs/solving.md holds the held-out constrained "
        "families (under 5% feasible), where uniform sampling stops finding the optimum.",
    )
    doc.table(
        (
            "qubits",
            "seed",
            "feasible",
            "ansatz",
            "P(opt)",
            "/ uniform",
            "/ uniform feasible",
            "TTS99 shots",
            "sampled",
            "shots",
            "uniform",
            "local search",
            "genetic",
            "anneal",
        ),
        [
            (
                r["qubits"],
                r["seed"],
                f"{100 * r['feasibleFraction']:.2g}%",
                label(r["solver"], r["depth"]),
                report.fmt(r["probabilityOfOptimum"], ".2e"),
                report.fmt(r.get("uniformRatio")),
                report.fmt(r.get("feasibleSetRatio")),
                report.fmt(r.get("tts99Shots")),
                _control_cell(r.get("sampledGap")),
                r.get("shots"),
                *(_control_cell(r["controls"][c]) for c in CONTROL_NAMES),
            )
            for r in rows
        ],
    )
    found = {c: [r["controls"][c] == 0.0 for r in rows] for c in CONTROL_NAMES}
    sampled = [r.get("sampledGap") == 0.0 for r in rows]
    losses = sum(not q and any(f[i] for f in found.values()) for i, q in enumerate(sampled))
    wins = sum(q and not any(f[i] for f in found.values()) for i, q in enumerate(sampled))
    # a control that found the optimum wherever QAOA's samples did
    matched = [c for c, f in found.items() if all(f[i] for i, q in enumerate(sampled) if q)]
    tally = ", ".join(f"{c} {sum(f)}" for c, f in found.items())
    verdict = (
        f" {_listed(matched).capitalize()} found the optimum on every instance where QAOA's "
        "samples did: on these instances QAOA adds nothing over "
        + ("it." if len(matched) == 1 else "them.")
        if matched and rows
        else ""
    )
    doc.text(
        f"Where QAOA loses: in {losses} of {len(rows)} rows its samples missed the optimum that "
        f"at least one control found at the same budget; in {wins} its samples held the optimum "
        f"and no control found it. Optimum found, of {len(rows)}: QAOA's samples {sum(sampled)}; "
        f"{tally}.{verdict}"
    )


CONTROL_NAMES = ("uniform", "local-search", "genetic", "anneal")


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _wall_section(doc: report.Report, config: StaticConfig, walls: list[dict[str, Any]]) -> None:
    doc.heading("The wall in the preprint's unit: N shards over K pools")
    doc.text(
        f"The preprint maps one layer per shard and stops at N = {PREPRINT_WALL} layers. Here "
        f"N shards over K = {config.wall_pools} pools (instance family `wall`, seed "
        f"{HELD_OUT_SEED}), each size solved by QAOA in a fresh process "
        "(`python -m greenshard.experiments.onehot_schedule wall-one`): the threshold ansatz at "
        f"its defaults, the one-hot XY ansatz at p = {config.wall_onehot_depth} (its production "
        "p = 300 is 75 times the layers; at p = 4 it runs but does not help). Peak memory is "
        "the process's resident high-water mark during the solve; the gap is the answer's "
        "against the exact optimum.",
    )
    doc.table(
        (
            "ansatz",
            "N shards",
            "K pools",
            "placements",
            "method",
            "gap",
            "P(opt)",
            "layers a preparation",
            "rounds",
            "s to build",
            "s to solve",
            "s per layer",
            "peak GiB",
        ),
        [
            (
                w["ansatz"],
                w["shards"],
                w["pools"],
                w["amplitudes"],
                w["method"],
                report.fmt(w["gap"]),
                report.fmt(w["pOpt"], ".3g"),
                w["depth"],
                report.fmt(w.get("rounds")),
                report.fmt(w["instanceSeconds"]),
                report.fmt(w["solveSeconds"]),
                report.fmt(w["secondsPerLayer"], ".3g"),
                report.fmt(w["peakRssGiB"], ".3g"),
            )
            for w in sorted(walls, key=lambda w: (w["ansatz"], w["shards"]))
        ],
    )


def _wall_claim(config: StaticConfig, walls: list[dict[str, Any]]) -> str:
    parts = []
    for ansatz in ("threshold", "onehot"):
        done = [w for w in walls if w["ansatz"] == ansatz and w["method"] == "qaoa-sample"]
        if done:
            top = max(done, key=lambda w: w["shards"])
            how = "solved exactly by" if top["gap"] == 0.0 else "answered (not exactly) by"
            parts.append(
                f"{ansatz}: N = {top['shards']} shards x {top['pools']} pools {how} QAOA "
                f"sampling (gap {report.fmt(top['gap'])}, {report.fmt(top['solveSeconds'])} s, "
                f"peak {report.fmt(top['peakRssGiB'], '.3g')} GiB)"
            )
    return "; ".join(parts) or "no wall size ran"


def _reading(
    evals: list[dict[str, Any]], bandwidth: float, memory_wall: int | None, largest: int
) -> str:
    """What the measured curve says, from the numbers."""
    if not evals:
        return "No evaluation was measured."
    small = [r["secondsPerEvaluation"] for r in evals if r["qubits"] <= 16]
    big = [r for r in evals if r["qubits"] >= 22]
    text = ""
    if small:
        text += (
            f"Up to 16 qubits an evaluation takes {min(small) * 1e3:.1f}-{max(small) * 1e3:.1f} "
            "ms whatever n: the state (8 bytes x 2^n, 0.5 MiB at 16) stays in cache and the "
            "fixed cost of Python, cirq parameter resolution and the qsim call dominates. "
        )
    if len(big) >= 2:
        rates = [
            bytes_per_evaluation(r["qubits"], r["depth"]) / r["secondsPerEvaluation"] / 1e9
            for r in big
        ]
        ratio = (big[-1]["secondsPerEvaluation"] / big[0]["secondsPerEvaluation"]) ** (
            1.0 / (big[-1]["qubits"] - big[0]["qubits"])
        )
        per_amplitude = [
            r["secondsPerEvaluation"] / (r["depth"] * 2.0 ** r["qubits"]) * 1e9 for r in big
        ]
        loads = [r["loadAverage"] for r in evals]
        text += (
            f"From {big[0]['qubits']} to {big[-1]['qubits']} qubits the time grows by "
            f"x{ratio:.2f} per qubit on average (x2 is the growth of the state) and the time per "
            f"amplitude and layer stays at {min(per_amplitude):.1f}-{max(per_amplitude):.1f} ns: "
            "every layer streams the whole state through memory several times (numpy phase, "
            "qsim's copy in and out, its fused-gate sweeps, the energy), so an evaluation is "
            "bound by memory bandwidth, not by any qubit count. The modelled bytes per "
            f"evaluation over the measured seconds give {min(rates):.1f}-{max(rates):.1f} GB/s, "
            f"{100 * statistics.mean(rates) * 1e9 / bandwidth:.0f}% on average of a plain numpy "
            f"copy ({bandwidth / 1e9:.1f} GB/s): the model counts qsim's sweeps pessimistically, "
            "the cos/sin of the phase is not free, and the machine is shared (1-minute load "
            f"average {min(loads):.1f}-{max(loads):.1f} during these measurements on "
            f"{os.cpu_count()} cores; README's benchmark, at load 1.2, measured 0.39 s at 24 "
            "and 8.5 s at 28 qubits). "
        )
    text += (
        f"In qubits nothing happens at {PREPRINT_WALL} (that state is "
        f"{(8 << PREPRINT_WALL) / 2**10:.0f} KiB; the preprint's wall is {PREPRINT_WALL} layers, "
        "compared in its own unit below). The practical limit here is memory capacity "
        f"(about {memory.BYTES_PER_AMPLITUDE} bytes a basis state: {memory_wall} qubits), and time "
        f"(x2 per qubit); the largest size measured is {largest} qubits."
    )
    return text


def _order(name: str) -> tuple[int, int, str]:
    if name.startswith("qaoa p="):
        return (0, int(name.split("=")[1].split(maxsplit=1)[0]), name)
    return (
        1,
        ["bruteforce", "genetic", "anneal"].index(name)
        if name in {"bruteforce", "genetic", "anneal"}
        else 9,
        name,
    )


def _cache_sizes() -> str:
    base = "/sys/devices/system/cpu/cpu0/cache"
    parts = []
    try:
        for entry in sorted(os.listdir(base)):
            if not entry.startswith("index"):
                continue
            with open(f"{base}/{entry}/level", encoding="ascii") as handle:
                level = handle.read().strip()
            with open(f"{base}/{entry}/type", encoding="ascii") as handle:
                kind = handle.read().strip()
            with open(f"{base}/{entry}/size", encoding="ascii") as handle:
                size = handle.read().strip()
            if kind != "Instruction":
                parts.append(f"L{level} {size}")
    except OSError:
        return "unknown"
    return ", ".join(parts) or "unknown"
