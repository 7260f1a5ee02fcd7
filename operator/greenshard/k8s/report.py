"""Report: the InferenceDeployment status and its conditions, built from plain values (pure).

:func:`planned_status` is the status of a deployment with a plan (placement, emissions, solver,
pools, and the Optimized/Degraded/Ready/Progressing conditions); :func:`failed_status` is the
status after a failure (Degraded with the error; the last good placement stays). The Event
texts are here too. Nothing here reads the API or the clock: ``now`` is an argument.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from greenshard import planner
from greenshard.k8s.conditions import Condition, merge_conditions

# ------------------------------------------------------------------------------ the plan


def plan_status(
    plan: planner.Plan, placement_names: Sequence[str], optimized_at: str
) -> dict[str, Any]:
    """The plan part of status: placement, emissions, solver, pools."""
    data = plan.to_dict()
    rows = []
    for row, deployment in zip(data["placement"], placement_names, strict=True):
        rows.append({**row, "gramsPerHour": _round(row["gramsPerHour"]), "deployment": deployment})
    solver = {
        k: v
        for k, v in data["solver"].items()
        if k
        in (
            "algorithm",
            "method",
            "qubits",
            "depth",
            "optimumGramsPerHour",
            "gap",
            "wallSeconds",
            "fallbackReason",
            "reason",
            "ansatz",
            "probabilityOfOptimum",
            "samplingFoundOptimum",
            "feasibleSetRatio",
            "rounds",
            "oracleQueries",
        )
        and v is not None
    }
    for key in ("probabilityOfOptimum", "feasibleSetRatio"):
        if key in solver:
            solver[key] = float(f"{float(solver[key]):.4g}")
    if "optimumGramsPerHour" in solver:
        solver["optimumGramsPerHour"] = _round(solver["optimumGramsPerHour"])
    solver["wallSeconds"] = round(float(solver.get("wallSeconds", 0.0)), 3)
    pools_in_order: list[str] = []
    for row in data["placement"]:
        if row["pool"] not in pools_in_order:
            pools_in_order.append(row["pool"])
    return {
        "placement": rows,
        "emissions": {
            "gramsPerHour": _round(data["emissionsGramsPerHour"]),
            "baselineGramsPerHour": _round(data["baselineGramsPerHour"]),
            "savingsPercent": round(data["savingsPercent"], 3),
            "hour": data["hour"],
        },
        "solver": solver,
        "pools": {
            "considered": data["pools"],
            "skipped": [{"pool": s["pool"], "reason": s["reason"]} for s in data["skippedPools"]],
        },
        "poolsSummary": ",".join(pools_in_order),
        "lastOptimizedTime": optimized_at,
        "packing": data["packing"],
        "pipelineLatencyMs": data["pipelineLatencyMs"],
        "capacity": data["capacity"],
    }


def _round(value: float) -> float:
    """Status numbers for people: 6 significant digits (the plan itself is exact)."""
    return float(f"{value:.6g}")


def optimized_condition(plan: planner.Plan, kept_reason: str = "") -> Condition:
    sol = plan.solution
    if sol.gap == 0.0:
        reason, text = "ExactOptimum", "the exact optimum"
    elif sol.gap is None:
        reason, text = "Unverified", "a placement whose gap to the optimum is unknown"
    else:
        reason, text = "WithinGap", f"a placement {sol.gap:.3%} above the optimum"
    if "fallbackReason" in sol.details:
        why = sol.details["fallbackReason"]
        if sol.gap == 0.0:
            reason, text = "ExactFallback", f"the exact optimum ({why})"
        else:
            # the time or memory bound stopped the solve: the best placement it had
            reason, text = "BestWithinBound", f"a placement whose optimality is not proven ({why})"
    message = (
        f"{sol.method} found {text}: {plan.emissions:.3f} gCO2e/h vs "
        f"{plan.baseline_emissions:.3f} carbon-unaware ({plan.savings_percent:.1f}% saved)"
    )
    if kept_reason:
        reason, message = "KeptCurrent", kept_reason
    return Condition("Optimized", True, reason, message)


def rollout_conditions(
    dry_run: bool, names: Sequence[str], ready: Sequence[str]
) -> list[Condition]:
    """Ready and Progressing: DryRun, every shard StatefulSet Ready, or which are not."""
    if dry_run:
        return [
            Condition(
                "Ready", True, "DryRun", "planned only (spec.mode: DryRun): no workloads created"
            ),
            Condition("Progressing", False, "DryRun", "nothing to roll out"),
        ]
    total = len(names)
    if len(ready) == total:
        return [
            Condition(
                "Ready",
                True,
                "AllShardsAvailable",
                f"{total}/{total} shard StatefulSets Ready on their chosen nodes",
            ),
            Condition("Progressing", False, "RolledOut", "every shard runs where the plan puts it"),
        ]
    waiting = [n for n in names if n not in ready]
    return [
        Condition(
            "Ready",
            False,
            "ShardsNotAvailable",
            f"{len(ready)}/{total} shard StatefulSets Ready; "
            f"waiting for {', '.join(waiting[:5])}" + (" ..." if len(waiting) > 5 else ""),
        ),
        Condition(
            "Progressing", True, "RollingOut", f"rolling out {len(waiting)} shard StatefulSet(s)"
        ),
    ]


def planned_status(
    plan: planner.Plan,
    names: Sequence[str],
    optimized_at: str,
    kept_reason: str,
    forecast_hours: int,
    dry_run: bool,
    ready: Sequence[str],
    current_conditions: Sequence[Mapping[str, Any]],
    generation: int,
    now: str,
    degraded: Condition | None = None,
) -> dict[str, Any]:
    """The whole status of a planned deployment (``ready``: the shard StatefulSets Ready;
    ``degraded``: what applying the plan ran into, if anything)."""
    wanted = plan_status(plan, names, optimized_at)
    # g/h are the hourly average over this many hours from emissions.hour
    wanted["emissions"]["forecastHours"] = forecast_hours
    conditions = [
        optimized_condition(plan, kept_reason),
        degraded or Condition("Degraded", False, "AsExpected", "no error"),
        *rollout_conditions(dry_run, names, ready),
    ]
    wanted["conditions"] = merge_conditions(current_conditions, conditions, generation, now)
    wanted["observedGeneration"] = generation
    return wanted


def degraded_condition(troubles: Sequence[tuple[str, str]]) -> Condition | None:
    """Degraded for what applying a good plan ran into ((reason, message) pairs, the first
    shown; None when there is nothing): the plan stays Optimized, Ready says what runs."""
    if not troubles:
        return None
    reason, message = troubles[0]
    if len(troubles) > 1:
        message += f" (and {len(troubles) - 1} more: see the Warning Events)"
    return Condition("Degraded", True, reason, message)


def failed_status(
    reason: str,
    message: str,
    current_conditions: Sequence[Mapping[str, Any]],
    generation: int,
    now: str,
) -> dict[str, Any]:
    """Degraded with the error; Ready and Progressing stay as they were (the last good plan and
    workloads are kept), or say there is no placement."""
    conditions = [
        Condition("Degraded", True, reason, message),
        Condition("Optimized", False, reason, message),
    ]
    old = {c.get("type"): c for c in current_conditions}
    for kind in ("Ready", "Progressing"):
        if kind in old:
            prev = old[kind]
            conditions.append(
                Condition(
                    kind,
                    {"True": True, "False": False}.get(prev.get("status", "")),
                    prev.get("reason", "Unknown"),
                    prev.get("message", ""),
                )
            )
        else:
            conditions.append(
                Condition(kind, False, reason, "no placement: see the Degraded condition")
            )
    return {
        "conditions": merge_conditions(current_conditions, conditions, generation, now),
        "observedGeneration": generation,
    }


# -------------------------------------------------------------------------------- events


def pools_text(plan: planner.Plan) -> str:
    seen: list[str] = []
    for k in plan.solution.placement:
        key = plan.problem.pools[k].key
        if key not in seen:
            seen.append(key)
    return ", ".join(seen)


def planned_message(plan: planner.Plan) -> str:
    """The Planned Event: where the shards go and what that saves."""
    return (
        f"placed {plan.problem.num_shards} shards on {pools_text(plan)}: "
        f"{plan.emissions:.3f} gCO2e/h ({plan.savings_percent:.1f}% below the "
        f"carbon-unaware {plan.baseline_emissions:.3f})"
    )


def moved_message(
    before_keys: Sequence[Any], after_keys: Sequence[str], before_grams: Any, plan: planner.Plan
) -> str:
    """The Moved Event: the shards' old and new pools, and the saving."""
    moves = [
        f"shard {s}: {a} -> {b}"
        for s, (a, b) in enumerate(zip(before_keys, after_keys, strict=False))
        if a != b
    ]
    if len(before_keys) != len(after_keys):
        moves.append(f"{len(before_keys)} -> {len(after_keys)} shards")
    saving = ""
    if isinstance(before_grams, int | float) and before_grams > 0:
        saving = (
            f"; {before_grams:.3f} -> {plan.emissions:.3f} gCO2e/h "
            f"({100.0 * (before_grams - plan.emissions) / before_grams:.1f}% saved)"
        )
    return "; ".join(moves) + saving
