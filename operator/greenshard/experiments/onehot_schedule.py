"""Fit the one-hot ansatze on the training families; judge them on the held-out ones.

    python -m greenshard.experiments.onehot_schedule fit --depth 100 --mixer complete \
        --gammas 1,1.5,2,3 --betas 0.1,0.2,0.3 --penalties 1 --seeds 3
    python -m greenshard.experiments.onehot_schedule validate --ansatz onehot --depth 100 \
        --mixer complete --gamma 2 --beta 0.2 --penalty 1 --seeds 12 --shots 2048

The ramp is ``gamma_j = (j + 1/2)/p * gamma``, ``beta_j = -(1 - (j + 1/2)/p) * beta`` in the
normalised unit of :mod:`greenshard.solvers.onehot` (feasible costs in [0, 1]). ``fit`` uses
only :data:`greenshard.instances.TRAINING_FAMILIES` at :data:`~greenshard.instances.FITTING_SEEDS`
(8 shards x 3, 4, 5 pools) and ranks grid points by the median over instances of
log10(P(opt) / P_uniform-over-feasible(opt)); ``validate`` reports, on the held-out families and
seeds, per instance: feasible placements, P(opt) from the state, its ratio to uniform sampling over
all placements and over the feasible set, P(feasible), and whether ``shots`` samples contain an
optimal placement. Seeded; single-threaded by default (the machine is shared).

The threshold ansatz (:mod:`greenshard.solvers.threshold`, the default) has no angles to fit: its
two knobs, ``delta`` (the fixed-point schedule's guarantee, P(marked) >= 1 - delta^2) and the shots
per descent round, are chosen by ``fit-threshold`` on the same training families and seeds::

    python -m greenshard.experiments.onehot_schedule fit-threshold --seeds 2
    python -m greenshard.experiments.onehot_schedule validate --ansatz threshold --seeds 12
    python -m greenshard.experiments.onehot_schedule controls --budget descent --seeds 12

``controls --budget descent`` gives each classical control as many cost evaluations as the
threshold ansatz's descent made oracle queries on that instance (layers x shots over its rounds;
``--budget shots``: as many as its shots).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from greenshard import instances, memory, planner, subspace
from greenshard.solvers import base, onehot, threshold
from greenshard.solvers import controls as controls_
from greenshard.solvers.registry import DEFAULT_ANSATZ

POOLS = (3, 4, 5)
SHARDS = 8


def run_instance(
    space: subspace.PlacementSpace,
    depth: int,
    gamma: float,
    beta: float,
    penalty: float,
    mixer: str,
    shots: int,
    seed: int,
    threads: int = 1,
) -> dict[str, Any]:
    sim = onehot.SubspaceSimulator(space, mixer=mixer, penalty=penalty, threads=threads)
    gammas, betas = onehot.linear_ramp(depth, gamma, beta)
    start = time.perf_counter()
    state = sim.state(gammas, betas)
    seconds = time.perf_counter() - start
    stats = space.stats
    p_opt = sim.optimum_probability(state)
    optimal = stats.optimal.size
    row: dict[str, Any] = {
        "placements": space.size,
        "feasible": stats.count,
        "optimal": int(optimal),
        "pOpt": p_opt,
        "pFeasible": sim.feasible_probability(state),
        "ratioAll": p_opt / (optimal / space.size),
        "ratioFeasible": p_opt / (optimal / stats.count),
        "seconds": seconds,
    }
    if shots:
        samples = onehot.sample(state, shots, np.random.default_rng(seed))
        row["sampledOptimum"] = bool(np.isin(samples, stats.optimal).any())
        row["tts99Shots"] = base.tts99(p_opt)
    return row


def run_threshold(
    space: subspace.PlacementSpace, delta: float, round_shots: int, shots: int, seed: int
) -> dict[str, Any]:
    """One threshold-ansatz solve: P(opt) of its production state, its ratios, whether its
    samples held an optimum, and the oracle queries (layers x shots) spent until one did."""
    options = threshold.ThresholdOptions(
        shots=shots, seed=seed, delta=delta, round_shots=round_shots
    )
    start = time.perf_counter()
    answer = threshold.ThresholdQAOASolver(options).solve(space.problem)
    seconds = time.perf_counter() - start
    details = answer.details
    stats = space.stats
    found = answer.placement is not None and space.index(answer.placement) in set(
        stats.optimal.tolist()
    )
    layers = (details["fixedPointLength"] - 1) // 2
    cuts = details["thresholds"]
    # the round whose threshold is the optimum came after the shots that sampled it
    rounds_to_opt = next(
        (i for i, t in enumerate(cuts) if t is not None and t <= stats.least * (1 + 1e-12)),
        None,
    )
    return {
        "placements": space.size,
        "feasible": stats.count,
        "optimal": int(stats.optimal.size),
        "pOpt": details.get("probabilityOfOptimum", 0.0),
        "pFeasible": details.get("probabilityFeasible", 0.0),
        "ratioAll": details.get("uniformRatio", 0.0),
        "ratioFeasible": details.get("feasibleSetRatio", 0.0),
        "sampledOptimum": found,
        "tts99Shots": details.get("tts99Shots"),
        "rounds": details["rounds"],
        "layers": layers,
        "oracleQueries": details["oracleQueries"],
        "descentQueries": layers * round_shots * details["rounds"],
        "queriesToOptimum": None if rounds_to_opt is None else layers * round_shots * rounds_to_opt,
        "seconds": seconds,
    }


def _spaces(
    families: Sequence[str], seeds: Sequence[int]
) -> list[tuple[str, int, int, subspace.PlacementSpace]]:
    out = []
    for name in families:
        for pools in POOLS:
            for seed in seeds:
                problem = instances.family_problem(name, SHARDS, pools, seed)
                out.append((name, pools, seed, subspace.PlacementSpace(problem)))
    return out


def fit(args: argparse.Namespace) -> list[dict[str, Any]]:
    seeds = list(instances.FITTING_SEEDS)[: args.seeds]
    spaces = _spaces(sorted(instances.TRAINING_FAMILIES), seeds)
    results = []
    grid = itertools.product(_floats(args.gammas), _floats(args.betas), _floats(args.penalties))
    for gamma, beta, penalty in grid:
        rows = [
            run_instance(s, args.depth, gamma, beta, penalty, args.mixer, 0, 0)
            for _, _, _, s in spaces
        ]
        score = float(np.median([math.log10(max(r["ratioFeasible"], 1e-12)) for r in rows]))
        summary = {
            "gamma": gamma,
            "beta": beta,
            "penalty": penalty,
            "depth": args.depth,
            "mixer": args.mixer,
            "medianLog10RatioFeasible": score,
            "medianPOpt": float(np.median([r["pOpt"] for r in rows])),
            "minPOpt": float(min(r["pOpt"] for r in rows)),
            "instances": len(rows),
        }
        print(json.dumps(summary), flush=True)
        results.append(summary)
    return results


def fit_threshold(args: argparse.Namespace) -> list[dict[str, Any]]:
    """delta x shots per round on the training families: how often the samples hold the optimum,
    the median P(opt) and the median oracle queries until the descent reached it."""
    seeds = list(instances.FITTING_SEEDS)[: args.seeds]
    spaces = _spaces(sorted(instances.TRAINING_FAMILIES), seeds)
    results = []
    for delta, round_shots in itertools.product(_floats(args.deltas), _ints(args.round_shots)):
        rows = [run_threshold(s, delta, round_shots, args.shots, seed) for _, _, seed, s in spaces]
        reached = [r["queriesToOptimum"] for r in rows if r["queriesToOptimum"] is not None]
        summary = {
            "delta": delta,
            "roundShots": round_shots,
            "instances": len(rows),
            "sampledOptimum": sum(r["sampledOptimum"] for r in rows),
            "medianPOpt": float(np.median([r["pOpt"] for r in rows])),
            "minPOpt": float(min(r["pOpt"] for r in rows)),
            "medianQueriesToOptimum": float(np.median(reached)) if reached else None,
            "medianOracleQueries": float(np.median([r["oracleQueries"] for r in rows])),
        }
        print(json.dumps(summary), flush=True)
        results.append(summary)
    return results


def validate(args: argparse.Namespace) -> dict[str, Any]:
    seeds = list(instances.HELD_OUT_SEEDS)[: args.seeds]
    rows = []
    for name, pools, seed, space in _spaces(sorted(instances.HELD_OUT_FAMILIES), seeds):
        if args.ansatz == "threshold":
            row = run_threshold(space, args.delta, args.round_shots, args.shots, seed)
        else:
            row = run_instance(
                space, args.depth, args.gamma, args.beta, args.penalty, args.mixer, args.shots, seed
            )
        row |= {"family": name, "pools": pools, "seed": seed, "ansatz": args.ansatz}
        print(json.dumps(row), flush=True)
        rows.append(row)
    possible = [r for r in rows if r["feasible"] >= 10 * r["optimal"]]
    summary = {
        "instances": len(rows),
        "sampledOptimum": sum(r["sampledOptimum"] for r in rows),
        "medianPOpt": float(np.median([r["pOpt"] for r in rows])),
        "medianRatioFeasible": float(np.median([r["ratioFeasible"] for r in rows])),
        "ratioFeasibleAtLeast10": sum(r["ratioFeasible"] >= 10 for r in possible),
        "ratioFeasiblePossible": len(possible),
        "medianFeasibleFraction": float(np.median([r["feasible"] / r["placements"] for r in rows])),
    }
    if args.ansatz == "threshold":
        reached = [r["queriesToOptimum"] for r in rows if r["queriesToOptimum"] is not None]
        summary |= {
            "medianQueriesToOptimum": float(np.median(reached)) if reached else None,
            "medianOracleQueries": float(np.median([r["oracleQueries"] for r in rows])),
            "medianSeconds": float(np.median([r["seconds"] for r in rows])),
        }
    print(json.dumps({"summary": summary}), flush=True)
    return summary


KEYS = {
    "uniform": "uniformFound",
    "local-search": "localSearchFound",
    "genetic": "geneticFound",
    "anneal": "annealFound",
}


def classical_controls(space: subspace.PlacementSpace, budget: int, seed: int) -> dict[str, bool]:
    """Whether each classical control (:mod:`greenshard.solvers.controls`: uniform sampling,
    random-restart local search, genetic, anneal), given ``budget`` cost evaluations, reaches an
    optimal placement."""
    runs = controls_.at_budget(space.problem, budget, seed, space.stats.least)
    return {KEYS[c.name]: c.found for c in runs}


def controls(args: argparse.Namespace) -> dict[str, Any]:
    """The classical controls on the held-out instances that ``validate`` runs, same seeds, at a
    budget of ``--shots`` cost evaluations, or (``--budget queries``) of as many as the threshold
    ansatz's descent used on that instance (its default options): oracle queries = layers x shots
    over the rounds until a round found nothing below the threshold."""
    seeds = list(instances.HELD_OUT_SEEDS)[: args.seeds]
    rows = []
    for name, pools, seed, space in _spaces(sorted(instances.HELD_OUT_FAMILIES), seeds):
        budget = args.shots
        if args.budget == "descent":
            budget = run_threshold(
                space, threshold.DEFAULT_DELTA, threshold.DEFAULT_ROUND_SHOTS, args.shots, seed
            )["descentQueries"]
        row = {"family": name, "pools": pools, "seed": seed, "budget": budget}
        start = time.perf_counter()
        row |= classical_controls(space, budget, seed)
        row["seconds"] = time.perf_counter() - start
        print(json.dumps(row), flush=True)
        rows.append(row)
    summary = {"instances": len(rows), **{k: sum(bool(r[k]) for r in rows) for k in KEYS.values()}}
    print(json.dumps({"summary": summary}), flush=True)
    return summary


def wall_one(args: argparse.Namespace) -> dict[str, Any]:
    """One size, in this (fresh) process: the default solver at ``--depth``, seconds per layer,
    seconds and peak resident memory of the whole solve."""
    memory.reset_peak()
    start = time.perf_counter()
    problem = instances.family_problem("wall", args.shards, args.pools, args.seed)
    build = time.perf_counter() - start
    solver: threshold.ThresholdQAOASolver | onehot.OneHotQAOASolver
    if args.ansatz == "threshold":
        solver = threshold.ThresholdQAOASolver(
            threshold.ThresholdOptions(shots=args.shots, seed=args.seed)
        )
    else:
        solver = onehot.OneHotQAOASolver(
            onehot.OneHotOptions(depth=args.depth, shots=args.shots, seed=args.seed)
        )
    answer = solver.solve(problem)
    peak = memory.peak_bytes()  # the solver's own, before the exact check below
    solution = planner.verify(problem, answer)
    details = solution.details
    row = {
        "ansatz": args.ansatz,
        "shards": args.shards,
        "pools": args.pools,
        "amplitudes": details["amplitudes"],
        "stateGiB": details.get("stateBytes", 0) / 2**30,
        "depth": answer.depth,
        "method": solution.method,
        "gap": solution.gap,
        "pOpt": details["probabilityOfOptimum"],
        "pFeasible": details["probabilityFeasible"],
        "feasibleSetRatio": details["feasibleSetRatio"],
        "instanceSeconds": build,
        "solveSeconds": answer.wall_seconds,
        "evaluationSeconds": details["evolveSeconds"],
        "secondsPerLayer": details["evolveSeconds"] / max(answer.depth, 1),
        "rounds": details.get("rounds"),
        "oracleQueries": details.get("oracleQueries"),
        "peakRssGiB": peak / 2**30,
    }
    print(json.dumps(row), flush=True)
    return row


def wall(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Shards from ``--min-shards`` up to ``--max-shards`` at ``--pools`` pools, each size in a
    fresh process (its peak RSS is its own)."""
    rows = []
    for shards in range(args.min_shards, args.max_shards + 1):
        row = wall_in_process(shards, args.pools, args.depth, args.shots, args.seed, args.ansatz)
        print(json.dumps(row), flush=True)
        if "error" in row:
            break
        rows.append(row)
    return rows


def wall_in_process(
    shards: int, pools: int, depth: int, shots: int, seed: int, ansatz: str
) -> dict[str, Any]:
    """``wall-one`` in a fresh interpreter (its peak memory is its own): its row, or
    ``{"shards", "error"}`` with the end of its stderr."""
    command = [
        sys.executable, "-m", "greenshard.experiments.onehot_schedule", "wall-one",
        "--shards", str(shards), "--pools", str(pools), "--depth", str(depth),
        "--shots", str(shots), "--seed", str(seed), "--ansatz", ansatz,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"shards": shards, "error": done.stderr.strip()[-400:]}
    row: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return row


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m greenshard.experiments.onehot_schedule")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("fit", "validate", "controls"):
        p = sub.add_parser(name)
        p.add_argument("--depth", type=int, default=onehot.DEFAULT_DEPTH)
        p.add_argument("--mixer", default=onehot.DEFAULT_MIXER, choices=onehot.MIXERS)
        p.add_argument("--seeds", type=int, default=3)
    fit_p = sub.choices["fit"]
    fit_p.add_argument("--gammas", default="1,2,3")
    fit_p.add_argument("--betas", default="0.1,0.2,0.3")
    fit_p.add_argument("--penalties", default="1")
    val = sub.choices["validate"]
    val.add_argument("--gamma", type=float, default=onehot.DEFAULT_RAMP_GAMMA)
    val.add_argument("--beta", type=float, default=onehot.DEFAULT_RAMP_BETA)
    val.add_argument("--penalty", type=float, default=onehot.DEFAULT_PENALTY)
    val.add_argument("--shots", type=int, default=onehot.DEFAULT_SHOTS)
    val.add_argument("--ansatz", choices=("threshold", "onehot"), default=DEFAULT_ANSATZ)
    val.add_argument("--delta", type=float, default=threshold.DEFAULT_DELTA)
    val.add_argument("--round-shots", type=int, default=threshold.DEFAULT_ROUND_SHOTS)
    ctl = sub.choices["controls"]
    ctl.add_argument("--shots", type=int, default=onehot.DEFAULT_SHOTS)
    ctl.add_argument("--budget", choices=("shots", "descent"), default="shots")
    fth = sub.add_parser("fit-threshold")
    fth.add_argument("--seeds", type=int, default=2)
    fth.add_argument("--deltas", default="0.1,0.2,0.3,0.4,0.5")
    fth.add_argument("--round-shots", default="2,3,4,8")
    fth.add_argument("--shots", type=int, default=threshold.DEFAULT_SHOTS)
    for name in ("wall", "wall-one"):
        w = sub.add_parser(name)
        w.add_argument("--pools", type=int, default=5)
        w.add_argument("--depth", type=int, default=onehot.DEFAULT_DEPTH)
        w.add_argument("--shots", type=int, default=onehot.DEFAULT_SHOTS)
        w.add_argument("--seed", type=int, default=instances.HELD_OUT_SEEDS[0])
        w.add_argument("--ansatz", choices=("threshold", "onehot"), default="threshold")
    sub.choices["wall"].add_argument("--min-shards", type=int, default=4)
    sub.choices["wall"].add_argument("--max-shards", type=int, default=12)
    sub.choices["wall-one"].add_argument("--shards", type=int, required=True)
    args = parser.parse_args(argv)
    commands = {
        "fit": fit,
        "fit-threshold": fit_threshold,
        "validate": validate,
        "controls": controls,
        "wall": wall,
        "wall-one": wall_one,
    }
    commands[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
