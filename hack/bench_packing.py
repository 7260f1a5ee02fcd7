#!/usr/bin/env python3
"""Exact solving with whole-GPU packing: 8 shards x 12 pools (3 regions x 4 accelerators),
pools of 1-2 nodes whose GPUs hold a few replicas each, so packing binds. Prints a
Markdown table: seed, method, search nodes, wall seconds (median of 3), and checks every answer
against a second exact method (the MILP with per-node replica counts).

    PYTHONPATH=operator:tests python hack/bench_packing.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / d) for d in ("operator", "tests")]

import factories  # noqa: E402
from greenshard import model  # noqa: E402
from greenshard.solvers import exact  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    header = ["seed", "pools whose packing binds", "method", "B&B nodes"]
    header += ["wall s (median of 3)", "MILP agrees"]
    print("| " + " | ".join(header) + " |")
    print("|---|---|---|---|---|---|")
    for seed in range(100, 100 + args.seeds):
        problem = factories.random_problem(
            np.random.default_rng(seed), 8, 12, regions=3, tight=True
        )
        times = []
        solution = None
        for _ in range(3):
            fresh = replace(
                problem,
                capacity=type(problem.capacity).build(
                    problem.capacity.pools, problem.capacity.demand, problem.replicas
                ),
            )
            start = time.perf_counter()
            solution = exact.ExactSolver(method="branch-and-bound").solve(fresh)
            times.append(time.perf_counter() - start)
        assert solution is not None
        milp = exact.ExactSolver(method="milp").solve(fresh)
        agrees = milp.placement == solution.placement
        binding = len(fresh.capacity_pools())
        print(
            f"| {seed} | {binding}/12 | {solution.method} | {solution.evaluations} | "
            f"{statistics.median(times):.3f} | {'yes' if agrees else 'NO'} |"
        )
        assert model.feasible(fresh, solution.placement)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
