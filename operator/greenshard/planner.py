"""The one orchestration point: build -> solve -> verify -> baseline -> hysteresis/fallback.

:func:`decide` is what the CLI calls: solve (the ``auto`` policy picks QAOA or the exact
solver), add the carbon-unaware baseline, apply the operator's move rule against the current
placement (:func:`keep_or_move`), and answer a :class:`Decision` that says why. The operator
solves in a child process under a time bound (:func:`solve_within`, whose partial answers
:func:`from_partial` turns into a plan that says why it is not the asked-for one), then applies
the same move rule; the dynamic experiment applies it hour by hour. :meth:`Plan.to_dict` is the
whole plan as plain data for JSON, YAML and status. Solvers only solve: :func:`verify` checks
each answer against the exact optimum, computed once per plan (the exact fallback, the tie rule,
the gap, and the solver's own figures that need the optimum).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from greenshard import model
from greenshard.errors import DeadlineExceededError
from greenshard.solvers import base, exact, registry
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
        gpus = model.gpus_per_replica(self.problem, self.solution.placement)
        memory = model.memory_per_replica(self.problem, self.solution.placement)
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
                    "gpusPerReplica": gpus[shard.index],
                    "memoryBytesPerReplica": memory[shard.index],
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
            "ansatz",
            "samplingFoundOptimum",
            "polishChangedAnswer",
            "probabilityOfOptimum",
            "probabilityFeasible",
            "feasibleSetRatio",
            "uniformRatio",
            "feasiblePlacements",
            "tts99Shots",
            "rounds",
            "oracleQueries",
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
            "packing": model.packing(self.problem, self.solution.placement),
            "pipelineLatencyMs": model.pipeline_latency(self.problem, self.solution.placement),
            "capacity": capacity_rows(self.problem),
            "emissionsGramsPerHour": self.emissions,
            "baselineGramsPerHour": self.baseline_emissions,
            "baselinePlacement": [self.problem.pools[k].key for k in self.baseline.placement],
            "savingsPercent": self.savings_percent,
            "solver": solver,
        }


def capacity_rows(problem: model.Problem) -> list[dict[str, Any]]:
    """Free and total capacity per considered pool: GPUs, or GiB on cpu pools, and the free pod
    slots where the nodes report ``allocatable.pods``."""
    rows = []
    for pool, nodes in zip(problem.pools, problem.capacity.pools, strict=True):
        scale = 1.0 if nodes.unit == "gpu" else 2.0**-30
        row: dict[str, Any] = {
            "pool": pool.key,
            "unit": "gpu" if nodes.unit == "gpu" else "GiB",
            "free": round(nodes.free_sum * scale, 3),
            "total": round(sum(nodes.total) * scale, 3),
        }
        if nodes.slots is not None:
            row["freePodSlots"] = nodes.slots_sum
        rows.append(row)
    return rows


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


def verify(
    problem: model.Problem,
    answer: base.Answer | base.Solution,
    reference: base.Solution | None = None,
) -> base.Solution:
    """A solver's answer checked against the exact optimum ``reference`` (solved here when not
    given): when the answer has no feasible placement, the optimum's, as ``exact-fallback`` with
    the solver's ``fallbackReason``; under the answer's tie rule, an answer that ties the optimum
    is reported as the optimum's placement (``tieRule`` says which it replaced); then the gap,
    and the solver's figures that need the optimum (:attr:`base.Answer.against`).
    ``wall_seconds`` is the solver's time plus this check's. The exact solver's answer is its own
    proof, returned as it is."""
    if isinstance(answer, base.Solution):
        return answer
    start = time.perf_counter()
    if reference is None:
        reference = exact.solve_exact(problem)
    optimum = reference.emissions
    details = dict(answer.details)
    if answer.against is not None:
        details.update(answer.against(optimum, reference.placement))
    placement, method = answer.placement, answer.method
    if placement is None or not model.feasible(problem, placement):
        placement, method = reference.placement, "exact-fallback"
        details["fallbackReason"] = (
            answer.no_answer or f"{answer.solver} found no feasible placement"
        )
    elif (
        answer.tie_rule
        and placement != reference.placement
        and model.is_tie(model.emissions(problem, placement), optimum)
    ):
        details["tieRule"] = (
            f"{list(placement)} ties the optimum; reporting the "
            "lexicographically first optimal placement"
        )
        placement = reference.placement
    solution = base.make_solution(
        problem,
        placement,
        method,
        answer.solver,
        qubits=answer.qubits,
        depth=answer.depth,
        evaluations=answer.evaluations,
        wall_seconds=answer.wall_seconds + (time.perf_counter() - start),
        details=details,
    )
    return solution.verified_against(reference)


def solve(
    problem: model.Problem, config: SolverConfig, reference: base.Solution | None = None
) -> base.Solution:
    """The solver ``config`` names, its answer verified (:func:`verify`, against ``reference``
    when the exact optimum is already known); ``auto``: QAOA while the encoding fits in
    ``maxQubits``, the exact solver beyond (the reason is in the solution's details)."""
    if config.algorithm != "auto":
        return verify(problem, make_solver(config).solve(problem), reference)
    qubits = registry.state_qubits(problem, config)
    words = registry.state_words(problem, config)
    unit = "placements" if config.ansatz == "threshold" else "amplitudes"
    limit = f"maxQubits={config.max_qubits} (2^{config.max_qubits} {unit})"
    if problem.num_pools == 1:
        reason = "one candidate pool: nothing to optimise"
    elif qubits > config.max_qubits:
        reason = f"{words} exceeds {limit}; solved exactly instead"
    else:
        qaoa = make_solver(replace(config, algorithm="qaoa"))
        solution = verify(problem, qaoa.solve(problem), reference)
        return replace(
            solution,
            solver="auto",
            details={**solution.details, "reason": f"{words} within {limit}: QAOA"},
        )
    start = time.perf_counter()
    solution = exact.ExactSolver().solve(problem)
    return replace(
        solution,
        solver="auto",
        qubits=qubits,
        wall_seconds=time.perf_counter() - start,
        details={**solution.details, "reason": reason},
    )


def plan(problem: model.Problem, config: SolverConfig) -> Plan:
    """Solve, and add the carbon-unaware baseline."""
    return Plan(problem, solve(problem, config), baseline(problem))


@dataclass(frozen=True)
class Decision:
    """What to apply, and why: the fresh plan, or the current placement kept by the move rule."""

    plan: Plan  # to apply
    fresh: Plan  # what solving found
    kept_reason: str = ""  # why the current placement was kept ('' when it was not)

    @property
    def kept(self) -> bool:
        return bool(self.kept_reason)

    @property
    def fallback_reason(self) -> str | None:
        reason = self.plan.solution.details.get("fallbackReason")
        return None if reason is None else str(reason)


def keep_or_move(
    fresh: Plan, previous: tuple[int, ...] | None, min_savings_percent: float
) -> Decision:
    """Keep ``previous`` unless it became infeasible or the fresh plan saves at least
    ``min_savings_percent`` of its emissions (:func:`hysteresis`)."""
    keep, current, saving = hysteresis(
        fresh.problem, previous, fresh.solution.placement, fresh.emissions, min_savings_percent
    )
    if not keep or previous is None:
        return Decision(fresh, fresh)
    sol = fresh.solution
    kept_solution = replace(
        sol,
        placement=previous,
        emissions=current,
        gap=base.relative_gap(current, sol.optimum) if sol.optimum is not None else None,
        details={**sol.details, "keptCurrent": True},
    )
    reason = (
        f"kept the current placement ({current:.3f} gCO2e/h): the new optimum "
        f"({fresh.emissions:.3f}) would save {saving:.2f}%, below "
        f"spec.carbon.minSavingsPercent={min_savings_percent:g}"
    )
    return Decision(replace(fresh, solution=kept_solution), fresh, reason)


def decide(
    problem: model.Problem,
    config: SolverConfig,
    previous: tuple[int, ...] | None = None,
    min_savings_percent: float = 0.0,
) -> Decision:
    """Solve, add the baseline, then the move rule against ``previous`` (the operator passes a
    plan made under its bounds to :func:`keep_or_move` instead)."""
    return keep_or_move(plan(problem, config), previous, min_savings_percent)


def decide_inputs(
    deployment: model.DeploymentSpec,
    nodes: Iterable[model.NodeInfo],
    profile: model.GridProfile,
    hour: int,
    config: SolverConfig,
) -> Decision:
    """Build the problem from the three inputs at ``hour``, then :func:`decide`."""
    return decide(model.build_problem(deployment, nodes, profile, hour), config)


# ------------------------------------------------------------------ under a time bound


def _needs_exact_first(problem: model.Problem, config: SolverConfig) -> bool:
    """Whether the requested solver is something other than the exact one."""
    if config.algorithm == "exact" or problem.num_pools == 1:
        return False
    if config.algorithm == "auto":
        return registry.state_qubits(problem, config) <= config.max_qubits
    return True


def solve_within(
    problem: model.Problem, config: SolverConfig, deadline: float, send: Callable[[Any], None]
) -> None:
    """Every solve of one plan under ``deadline`` (time.monotonic()); ``send`` gets each answer
    as it comes: ("incumbent", first feasible, first feasible carbon-unaware), ("fallback", the
    exact solution) when another solver was asked for, ("solution", its solution), ("ok", the
    plan). :func:`from_partial` makes a plan of what came before a stop."""
    with exact.time_bound(deadline):
        unaware = problem.with_unit_intensity()
        send(("incumbent", exact.first_feasible(problem), exact.first_feasible(unaware)))
        reference = None  # the exact optimum, solved first: the fallback, then the reference
        if _needs_exact_first(problem, config):
            reference = exact.ExactSolver().solve(problem)
            send(("fallback", reference))
        solution = solve(problem, config, reference)
        if "timeBound" not in solution.details and time.monotonic() > deadline:
            # QAOA cannot be interrupted: an answer finished past the deadline is as late as if
            # the parent had stopped the child, whichever process got the CPU first.
            raise DeadlineExceededError(f"{config.algorithm} finished past the deadline")
        send(("solution", solution))
        send(("ok", Plan(problem, solution, baseline(problem))))


def with_reason(plan: Plan, solution: base.Solution, reason: str) -> Plan:
    """``plan`` with ``solution``, whose details say why it is not the asked-for answer."""
    solution = replace(solution, details={**solution.details, "fallbackReason": reason})
    return replace(plan, solution=solution)


def bound_note(solution: base.Solution, reason: str) -> str:
    """``reason``, and what the answer is worth when a bound stopped the search."""
    if solution.gap is None:
        return f"{reason}; best placement found so far, gap unknown"
    if solution.gap > 0:
        return f"{reason}; best placement found so far, within {solution.gap:.3%} of the optimum"
    return reason


def from_partial(problem: model.Problem, got: Mapping[str, Any], reason: str) -> Plan:
    """A plan from what :func:`solve_within` sent before it was stopped: the requested solver's
    answer, else the exact one (proven, or its best so far with the MILP's gap), else the first
    feasible placement (gap unknown). The baseline is the carbon-unaware first feasible
    placement when its exact solve did not finish."""
    incumbent, unaware = got.get("incumbent", (None, None))
    solution: base.Solution | None = None
    if "solution" in got:
        solution = got["solution"][0]
    elif "fallback" in got:
        solution = got["fallback"][0]
    elif incumbent is not None:
        solution = base.make_solution(problem, incumbent, "first-feasible", "incumbent")
    if solution is None:
        raise DeadlineExceededError(f"no feasible placement found in time: {reason}")
    note = bound_note(solution, reason)
    baseline_placement = unaware if unaware is not None else solution.placement
    unaware_solution = base.make_solution(problem, baseline_placement, "baseline", "baseline")
    return with_reason(Plan(problem, solution, unaware_solution), solution, note)
