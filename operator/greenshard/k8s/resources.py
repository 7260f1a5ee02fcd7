"""Custom-resource bodies <-> the domain, and the designed status, as plain dicts (pure)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from greenshard import model, parsing, planner
from greenshard.errors import InputError
from greenshard.solvers.registry import SolverConfig

GROUP = "greenshard.io"
VERSION = "v1alpha1"
INFD_PLURAL = "inferencedeployments"
GP_PLURAL = "gridprofiles"

CONDITION_TYPES = ("Ready", "Optimized", "Progressing", "Degraded")


def parse_duration(text: str, field: str = "spec.carbon.reoptimizeInterval") -> float:
    """'15m', '1h30m', '45s' -> seconds (at least 10 s: re-planning is not a busy loop)."""
    return parsing.duration_seconds(text, field)


@dataclass(frozen=True)
class Settings:
    """What the spec asks of the operator beyond the cost model."""

    grid_profile: str
    reoptimize_seconds: float
    min_savings_percent: float
    mode: str
    solver: SolverConfig
    forecast_hours: int = 1  # plan for the mean CI of the next N hours (1: the current hour)


def parse_settings(spec: Mapping[str, Any], max_qubits_cap: int = 24) -> Settings:
    """The operator-facing part of a spec; maxQubits is capped by what the operator's memory
    is sized for (the chart's solver.maxQubits, GREENSHARD_MAX_QUBITS)."""
    carbon = spec.get("carbon") or {}
    solver = spec.get("solver") or {}
    return Settings(
        grid_profile=str(carbon.get("gridProfile") or "default"),
        reoptimize_seconds=parse_duration(str(carbon.get("reoptimizeInterval") or "15m")),
        min_savings_percent=float(carbon.get("minSavingsPercent", 5.0)),
        mode=str(spec.get("mode") or "Apply"),
        forecast_hours=max(1, min(24, int(carbon.get("forecastHours", 1)))),
        solver=SolverConfig(
            algorithm=str(solver.get("algorithm") or "auto"),
            depth=int(solver.get("depth", 3)),
            shots=int(solver.get("shots", 2048)),
            seed=int(solver.get("seed", 0)),
            max_qubits=min(int(solver.get("maxQubits", 20)), max_qubits_cap),
        ),
    )


def check_template(template: Any, allowed_service_accounts: frozenset[str]) -> None:
    """What admission cannot know: the shard pods are created by the operator's ServiceAccount,
    so a template may only name a ServiceAccount the chart allows
    (workloads.allowedServiceAccounts); unset (the namespace's default) is always allowed."""
    spec = (template or {}).get("spec") if isinstance(template, Mapping) else None
    name = spec.get("serviceAccountName") if isinstance(spec, Mapping) else None
    if name in (None, "", "default") or name in allowed_service_accounts:
        return
    allowed = ", ".join(sorted(allowed_service_accounts)) or "none"
    raise InputError(
        "spec.template.spec.serviceAccountName",
        f"{name!r} is not allowed (allowed: {allowed}); remove it to run as the namespace's "
        "default ServiceAccount, or ask the cluster admin to add it to the chart's "
        "workloads.allowedServiceAccounts",
    )


def deployment_spec(body: Mapping[str, Any]) -> model.DeploymentSpec:
    """The cost-model view of an InferenceDeployment body (raises model.InputError)."""
    return parsing.parse_deployment(
        {
            "kind": "InferenceDeployment",
            "metadata": body["metadata"],
            "spec": body.get("spec") or {},
        }
    )


def grid_profile(body: Mapping[str, Any]) -> model.GridProfile:
    """A GridProfile body; live intensities in status.regions[*].intensity win over the spec."""
    profile = parsing.parse_grid_profile(
        {"kind": "GridProfile", "metadata": body["metadata"], "spec": body.get("spec") or {}}
    )
    live = ((body.get("status") or {}).get("regions")) or {}
    overrides: dict[str, Sequence[float]] = {}
    for region, entry in live.items():
        values = entry.get("intensity") if isinstance(entry, Mapping) else None
        if (
            isinstance(values, list)
            and len(values) == 24
            and all(isinstance(v, int | float) and v >= 0 for v in values)
        ):
            overrides[str(region)] = [float(v) for v in values]
    return profile.with_intensities(overrides) if overrides else profile


def node_info(body: Mapping[str, Any]) -> model.NodeInfo:
    return parsing.parse_node(body, f"node {body.get('metadata', {}).get('name', '?')}")


# ------------------------------------------------------------------------------ conditions


def now_iso(now: dt.datetime | None = None) -> str:
    moment = now or dt.datetime.now(dt.UTC)
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool | None
    reason: str
    message: str

    @property
    def status_text(self) -> str:
        return {True: "True", False: "False", None: "Unknown"}[self.status]


def merge_conditions(
    current: Sequence[Mapping[str, Any]], wanted: Sequence[Condition], generation: int, now: str
) -> list[dict[str, Any]]:
    """The whole conditions list (a merge patch replaces lists whole), keeping
    lastTransitionTime where the status did not change, in CONDITION_TYPES order."""
    old = {c.get("type"): c for c in current if isinstance(c, Mapping)}
    out = []
    for cond in sorted(
        wanted, key=lambda c: CONDITION_TYPES.index(c.type) if c.type in CONDITION_TYPES else 99
    ):
        prev = old.get(cond.type)
        changed = prev is None or prev.get("status") != cond.status_text
        out.append(
            {
                "type": cond.type,
                "status": cond.status_text,
                "reason": cond.reason,
                "message": cond.message,
                "lastTransitionTime": now
                if changed or prev is None
                else prev.get("lastTransitionTime", now),
                "observedGeneration": generation,
            }
        )
    return out


def _diff(current: Any, wanted: Any) -> Any:
    """JSON merge patch turning ``current`` into ``wanted`` (None: nothing to do).

    Keys of a nested object that ``wanted`` no longer has are set to null, so stale fields
    (an old fallbackReason, say) are removed rather than kept forever."""
    if isinstance(wanted, Mapping) and isinstance(current, Mapping):
        patch: dict[str, Any] = {}
        for key, value in wanted.items():
            sub = _diff(current.get(key), value)
            if sub is not _SAME:
                patch[key] = sub
        for key in current:
            if key not in wanted:
                patch[key] = None
        return patch or _SAME
    return _SAME if current == wanted else wanted


_SAME: Any = object()


@dataclass
class PatchGate:
    """Remembers the last status patch sent, so that a pass that runs before our own write
    comes back through the watch does not send it again."""

    patch: dict[str, Any] | None = None
    sent_at: float = float("-inf")
    window: float = 10.0  # seconds our own write may take to come back as an event

    def due(
        self, current: Mapping[str, Any], wanted: Mapping[str, Any], now: float
    ) -> dict[str, Any] | None:
        """The merge patch to send now, or None (nothing differs, or just sent)."""
        patch = status_patch(current, wanted)
        if patch is None or (patch == self.patch and now - self.sent_at < self.window):
            return None
        return patch

    def sent(self, patch: dict[str, Any], now: float) -> None:
        self.patch, self.sent_at = patch, now


def status_patch(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch of the keys of ``wanted`` (other top-level keys are left alone: a failed
    plan keeps the last good placement), or None when the status already says it all."""
    patch = {}
    for key, value in wanted.items():
        sub = _diff(current.get(key), value)
        if sub is not _SAME:
            patch[key] = sub
    return patch or None


# ---------------------------------------------------------------------------------- status


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
        )
        and v is not None
    }
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
