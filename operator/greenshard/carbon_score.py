"""Carbon cost of running on one node, for the scheduler extender (pure: model and numpy only).

A node's cost is what one unit of compute emits there, by the cost model's compute term
(docs/cost-model.md): ``F * J * PUE * CI / 1000`` g/h for F FLOP/s. Per 1e12 FLOPs that is

    grams per teraflop = joulesPerTeraflop * PUE * CI / 3.6e6      (J -> kWh: / 3.6e6)

and per token it is that times the model's teraflops per token, the same factor on every node,
so nodes rank the same by either. Region: label ``topology.kubernetes.io/region``; accelerator:
label ``nvidia.com/gpu.product``, else the profile's ``cpu`` entry (as in :mod:`greenshard.model`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from greenshard.model import REGION_LABEL, GridProfile, NodeInfo

#: The extender protocol's score range (k8s.io/kube-scheduler/extender/v1 MaxExtenderPriority).
MAX_SCORE = 10

JOULES_PER_KWH = 3.6e6


@dataclass(frozen=True)
class NodeCarbon:
    """One node's carbon facts at one hour; ``reason`` says why they are unknown."""

    name: str
    region: str
    accelerator: str
    intensity: float | None  # gCO2e/kWh of the region at the hour
    grams_per_teraflop: float | None  # gCO2e per 1e12 FLOPs, PUE included
    reason: str = ""

    @property
    def known(self) -> bool:
        return self.grams_per_teraflop is not None


def grams_per_teraflop(intensity: float, pue: float, joules_per_teraflop: float) -> float:
    """gCO2e emitted by 1e12 FLOPs: J/TFLOP x PUE (J) -> kWh, times gCO2e/kWh."""
    return joules_per_teraflop * pue * intensity / JOULES_PER_KWH


def node_carbon(node: NodeInfo, profile: GridProfile, hour: int) -> NodeCarbon:
    """The node's intensity and gCO2e per teraflop at UTC ``hour`` under ``profile``."""
    region, accel = node.region, node.accelerator
    if not region:
        return NodeCarbon(node.name, region, accel, None, None, f"node has no {REGION_LABEL} label")
    carbon = profile.regions.get(region)
    if carbon is None:
        return NodeCarbon(
            node.name,
            region,
            accel,
            None,
            None,
            f"region {region} is not in GridProfile {profile.name}",
        )
    intensity = carbon.at(hour)
    joules = profile.accelerators.get(accel)
    if joules is None:
        return NodeCarbon(
            node.name,
            region,
            accel,
            intensity,
            None,
            f"accelerator {accel} is not in GridProfile {profile.name}",
        )
    return NodeCarbon(
        node.name, region, accel, intensity, grams_per_teraflop(intensity, carbon.pue, joules)
    )


def grams_per_token(carbon: NodeCarbon, flops_per_token: float) -> float | None:
    """gCO2e per token of a model needing ``flops_per_token`` FLOPs, on this node."""
    if carbon.grams_per_teraflop is None:
        return None
    return carbon.grams_per_teraflop * flops_per_token / 1e12


def scores(grams: Sequence[float]) -> list[int]:
    """Extender scores 0..10: ``round(10 x greenest / this)``, so the greenest node gets 10,
    one that emits twice as much per token 5, ten times as much 1. Monotone non-increasing in
    the emissions; a zero-emission node gets 10 and, beside one, every other node 0."""
    if not grams:
        return []
    values = np.asarray(grams, dtype=np.float64)
    if np.any(~np.isfinite(values)) or np.any(values < 0):
        raise ValueError("emissions must be finite and non-negative")
    best = float(values.min())
    if best == 0.0:
        return [MAX_SCORE if v == 0.0 else 0 for v in values.tolist()]
    raw = np.floor(MAX_SCORE * best / values + 0.5)
    return [int(s) for s in raw.tolist()]


def scores_array(grams: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """:func:`scores` over an array in which ``inf`` marks a node of unknown emissions (score 0,
    and not the greenest); all ``inf``: all 0."""
    if grams.size == 0:
        return np.zeros(0, dtype=np.int64)
    best = float(grams.min())
    if not math.isfinite(best):
        return np.zeros(grams.size, dtype=np.int64)
    if best == 0.0:
        return np.where(grams == 0.0, MAX_SCORE, 0).astype(np.int64)
    return np.floor(MAX_SCORE * best / grams + 0.5).astype(np.int64)  # every g >= best > 0


def exceeds_ceiling(carbon: NodeCarbon, ceiling: float) -> bool:
    """Whether the node's region intensity is above a pod's gCO2e/kWh ceiling."""
    return carbon.intensity is not None and carbon.intensity > ceiling and math.isfinite(ceiling)
