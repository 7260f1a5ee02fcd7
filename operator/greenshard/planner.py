"""plan(): the one orchestration that the CLI, the operator and the extender share.

Problem -> solver -> Solution, plus the carbon-unaware baseline and the savings, and the whole
answer as plain data (:meth:`Plan.to_dict`) for JSON, YAML and status.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from greenshard import model
from greenshard.solvers import base, exact
from greenshard.solvers.registry import SolverConfig, make_solver


@dataclass(frozen=True)
class Plan:
    problem: model.Problem
    solution: base.Solution
    baseline: base.Solution

    @property
    def emissions(self) -> float:
        return self.solution.emissions

    @property
    def baseline_emissions(self) -> float:
        return self.baseline.emissions

    @property
    def savings_percent(self) -> float:
        if self.baseline_emissions <= 0:
            return 0.0
        return 100.0 * (self.baseline_emissions - self.emissions) / self.baseline_emissions

    def placement_rows(self) -> list[dict[str, Any]]:
        rows = []
        for shard, k in zip(self.problem.shards, self.solution.placement, strict=True):
            pool = self.problem.pools[k]
            rows.append(
                {
                    "shard": shard.index,
                    "layers": [shard.first_layer, shard.last_layer],
                    "pool": pool.key,
                    "region": pool.region,
                    "accelerator": pool.accelerator,
                    "gramsPerHour": float(self.problem.compute[shard.index, k]),
                }
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        sol = self.solution
        solver: dict[str, Any] = {
            "algorithm": sol.solver,
            "method": sol.method,
            "qubits": sol.qubits,
            "depth": sol.depth,
            "optimumGramsPerHour": sol.optimum,
            "gap": sol.gap,
            "optimal": sol.is_optimal,
            "evaluations": sol.evaluations,
            "wallSeconds": round(sol.wall_seconds, 6),
        }
        for key in (
            "reason",
            "fallbackReason",
            "samplingFoundOptimum",
            "polishChangedAnswer",
            "probabilityOfOptimum",
            "backend",
        ):
            if key in sol.details:
                solver[key] = sol.details[key]
        return {
            "name": self.problem.name,
            "hour": self.problem.hour,
            "pools": self.problem.pool_keys(),
            "skippedPools": [
                {"pool": p.key, "reason": p.reason, "nodes": list(p.nodes)}
                for p in self.problem.skipped
            ],
            "placement": self.placement_rows(),
            "emissionsGramsPerHour": self.emissions,
            "baselineGramsPerHour": self.baseline_emissions,
            "baselinePlacement": [self.problem.pools[k].key for k in self.baseline.placement],
            "savingsPercent": self.savings_percent,
            "solver": solver,
        }


def baseline(problem: model.Problem) -> base.Solution:
    """What a carbon-unaware, energy-aware scheduler picks: the optimum with every CI = 1,
    evaluated with the real intensities."""
    unaware = exact.solve_exact(problem.with_unit_intensity())
    return base.make_solution(problem, unaware.placement, "baseline", "baseline")


def hysteresis(
    problem: model.Problem,
    previous: tuple[int, ...] | None,
    fresh: tuple[int, ...],
    fresh_emissions: float,
    min_savings_percent: float,
) -> tuple[bool, float, float]:
    """The operator's move rule: keep ``previous`` unless there is none, it equals ``fresh``, it
    became infeasible, or ``fresh`` saves at least ``min_savings_percent`` of its emissions.

    Returns (keep previous, emissions of previous, saving of fresh in percent); the last two are
    0.0 when there is nothing to compare."""
    if previous is None or previous == fresh or not model.feasible(problem, previous):
        return False, 0.0, 0.0
    current = model.emissions(problem, previous)
    saving = 100.0 * (current - fresh_emissions) / current if current > 0 else 0.0
    return saving < min_savings_percent, current, saving


def plan(problem: model.Problem, config: SolverConfig) -> Plan:
    solution = make_solver(config).solve(problem)
    return Plan(problem, solution, baseline(problem))


def plan_inputs(
    deployment: model.DeploymentSpec,
    nodes: Iterable[model.NodeInfo],
    profile: model.GridProfile,
    hour: int,
    config: SolverConfig,
) -> Plan:
    return plan(model.build_problem(deployment, nodes, profile, hour), config)
