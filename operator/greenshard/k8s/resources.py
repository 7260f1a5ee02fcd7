"""Custom-resource bodies -> the domain (pure): the spec's operator settings, the cost-model view
of an InferenceDeployment, a GridProfile with its live intensities, a node."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from greenshard import model, parsing
from greenshard.errors import InputError
from greenshard.solvers import registry
from greenshard.solvers.registry import SolverConfig

GROUP = "greenshard.io"
VERSION = "v1alpha1"
INFD_PLURAL = "inferencedeployments"
GP_PLURAL = "gridprofiles"


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
        solver=_capped(registry.config_from_spec(solver), max_qubits_cap),
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


def _capped(config: SolverConfig, max_qubits_cap: int) -> SolverConfig:
    return dataclasses.replace(config, max_qubits=min(config.max_qubits, max_qubits_cap))


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
