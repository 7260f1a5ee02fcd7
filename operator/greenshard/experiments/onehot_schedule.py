"""Fit the one-hot XY-mixer ramp on the training families; judge it on the held-out ones.

    python -m greenshard.experiments.onehot_schedule fit --depth 100 --mixer complete \
        --gammas 1,1.5,2,3 --betas 0.1,0.2,0.3 --penalties 1 --seeds 3
    python -m greenshard.experiments.onehot_schedule validate --depth 100 --mixer complete \
        --gamma 2 --beta 0.2 --penalty 1 --seeds 12 --shots 2048

The ramp is ``gamma_j = (j + 1/2)/p * gamma``, ``beta_j = -(1 - (j + 1/2)/p) * beta`` in the
normalised unit of :mod:`greenshard.solvers.onehot` (feasible costs in [0, 1]). ``fit`` uses
only :data:`greenshard.instances.TRAINING_FAMILIES` at :data:`~greenshard.instances.FITTING_SEEDS`
(8 shards x 3, 4, 5 pools) and ranks grid points by the median over instances of
log10(P(opt) / P_uniform-over-feasible(opt)); ``validate`` reports, on the held-out families and
seeds, per instance: feasible placements, P(opt) from the state, its ratio to uniform sampling over
all placements and over the feasible set, P(feasible), and whether ``shots`` samples contain an
optimal placement. Seeded; single-threaded by default (the machine is shared).
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

from greenshard import hamiltonian, instances, memory, planner, subspace
from greenshard.solvers import classical, local_search, onehot

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
        row["tts99Shots"] = onehot.tts99(p_opt)
    return row


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


def validate(args: argparse.Namespace) -> dict[str, Any]:
    seeds = list(instances.HELD_OUT_SEEDS)[: args.seeds]
    rows = []
    for name, pools, seed, space in _spaces(sorted(instances.HELD_OUT_FAMILIES), seeds):
        row = run_instance(
            space, args.depth, args.gamma, args.beta, args.penalty, args.mixer, args.shots, seed
        )
        row |= {"family": name, "pools": pools, "seed": seed}
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
    print(json.dumps({"summary": summary}), flush=True)
    return summary


def classical_controls(space: subspace.PlacementSpace, budget: int, seed: int) -> dict[str, bool]:
    """Whether each classical control, given ``budget`` evaluations of the cost (the shots QAOA
    gets), reaches an optimal placement: uniform random sampling, random-restart steepest
    descent (single-shard moves), the genetic algorithm and simulated annealing."""
    problem = space.problem
    rng = np.random.default_rng(seed)
    optimal = space.stats.optimal
    uniform = bool(np.isin(rng.integers(0, space.size, budget), optimal).any())
    penalty = hamiltonian.CostHamiltonian(problem).penalty
    used, found = 0, False
    s_count, k_count = problem.num_shards, problem.num_pools
    while used < budget and not found:
        current = rng.integers(0, k_count, s_count).astype(np.int64)
        score = float(local_search.placement_scores(problem, current[None, :], penalty)[0])
        used += 1
        while used < budget:
            moves = np.repeat(current[None, :], s_count * (k_count - 1), axis=0)
            row = 0
            for s in range(s_count):
                for k in range(k_count):
                    if k != current[s]:
                        moves[row, s] = k
                        row += 1
            scores = local_search.placement_scores(problem, moves, penalty)
            used += len(moves)
            best = int(np.argmin(scores))
            if scores[best] >= score:
                break
            current, score = moves[best], float(scores[best])
        found = space.index(current.tolist()) in set(optimal.tolist())
    genetic = classical.GeneticSolver(seed=seed, population=32, generations=max(1, budget // 32))
    anneal = classical.AnnealSolver(seed=seed, restarts=4, sweeps=max(1, budget // (4 * s_count)))
    return {
        "uniformFound": uniform,
        "localSearchFound": found,
        "geneticFound": planner.verify(problem, genetic.solve(problem)).gap == 0.0,
        "annealFound": planner.verify(problem, anneal.solve(problem)).gap == 0.0,
    }


def controls(args: argparse.Namespace) -> dict[str, Any]:
    """The classical controls on the held-out instances that ``validate`` runs, same seeds."""
    seeds = list(instances.HELD_OUT_SEEDS)[: args.seeds]
    rows = []
    for name, pools, seed, space in _spaces(sorted(instances.HELD_OUT_FAMILIES), seeds):
        row = {"family": name, "pools": pools, "seed": seed, "budget": args.shots}
        row |= classical_controls(space, args.shots, seed)
        print(json.dumps(row), flush=True)
        rows.append(row)
    keys = ("uniformFound", "localSearchFound", "geneticFound", "annealFound")
    summary = {"instances": len(rows), **{k: sum(bool(r[k]) for r in rows) for k in keys}}
    print(json.dumps({"summary": summary}), flush=True)
    return summary


def wall_one(args: argparse.Namespace) -> dict[str, Any]:
    """One size, in this (fresh) process: the default solver at ``--depth``, seconds per layer,
    seconds and peak resident memory of the whole solve."""
    memory.reset_peak()
    start = time.perf_counter()
    problem = instances.family_problem("wall", args.shards, args.pools, args.seed)
    build = time.perf_counter() - start
    options = onehot.OneHotOptions(depth=args.depth, shots=args.shots, seed=args.seed)
    answer = onehot.OneHotQAOASolver(options).solve(problem)
    peak = memory.peak_bytes()  # the solver's own, before the exact check below
    solution = planner.verify(problem, answer)
    details = solution.details
    row = {
        "shards": args.shards,
        "pools": args.pools,
        "amplitudes": details["amplitudes"],
        "stateGiB": details["stateBytes"] / 2**30,
        "depth": args.depth,
        "method": solution.method,
        "gap": solution.gap,
        "pOpt": details["probabilityOfOptimum"],
        "pFeasible": details["probabilityFeasible"],
        "feasibleSetRatio": details["feasibleSetRatio"],
        "instanceSeconds": build,
        "solveSeconds": answer.wall_seconds,
        "evaluationSeconds": details["evolveSeconds"],
        "secondsPerLayer": details["evolveSeconds"] / max(args.depth, 1),
        "peakRssGiB": peak / 2**30,
    }
    print(json.dumps(row), flush=True)
    return row


def wall(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Shards from ``--min-shards`` up to ``--max-shards`` at ``--pools`` pools, each size in a
    fresh process (its peak RSS is its own)."""
    rows = []
    for shards in range(args.min_shards, args.max_shards + 1):
        command = [
            sys.executable, "-m", "greenshard.experiments.onehot_schedule", "wall-one",
            "--shards", str(shards), "--pools", str(args.pools), "--depth", str(args.depth),
            "--shots", str(args.shots), "--seed", str(args.seed),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(json.dumps({"shards": shards, "error": done.stderr.strip()[-400:]}), flush=True)
            break
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


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
    sub.choices["controls"].add_argument("--shots", type=int, default=onehot.DEFAULT_SHOTS)
    for name in ("wall", "wall-one"):
        w = sub.add_parser(name)
        w.add_argument("--pools", type=int, default=5)
        w.add_argument("--depth", type=int, default=onehot.DEFAULT_DEPTH)
        w.add_argument("--shots", type=int, default=onehot.DEFAULT_SHOTS)
        w.add_argument("--seed", type=int, default=instances.HELD_OUT_SEEDS[0])
    sub.choices["wall"].add_argument("--min-shards", type=int, default=4)
    sub.choices["wall"].add_argument("--max-shards", type=int, default=12)
    sub.choices["wall-one"].add_argument("--shards", type=int, required=True)
    args = parser.parse_args(argv)
    commands = {
        "fit": fit,
        "validate": validate,
        "controls": controls,
        "wall": wall,
        "wall-one": wall_one,
    }
    commands[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
