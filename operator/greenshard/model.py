"""The placement problem and its cost model, as the contract docs/cost-model.md states it.

Pure data and pure functions: the standard library and numpy only. Everything that plans a
placement (solvers, the CLI, the operator, the scheduler extender) goes through :class:`Problem`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from greenshard.errors import InputError, NoCandidatePoolError

FloatArray = npt.NDArray[np.float64]

DTYPE_BYTES: Mapping[str, float] = {
    "float32": 4.0,
    "bfloat16": 2.0,
    "float16": 2.0,
    "float8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
}

REGION_LABEL = "topology.kubernetes.io/region"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_MEMORY_LABEL = "nvidia.com/gpu.memory"
GPU_COUNT_LABEL = "nvidia.com/gpu.count"
CPU_ACCELERATOR = "cpu"

#: Two emissions within this relative distance are a tie (the lexicographic rule decides).
TIE_RTOL = 1e-12


def is_tie(a: float, b: float) -> bool:
    """Whether two emissions values are equal up to floating-point noise."""
    return abs(a - b) <= TIE_RTOL * max(abs(a), abs(b), 1e-300)


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelSelector:
    """A Kubernetes LabelSelector (matchLabels and matchExpressions)."""

    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, value in self.match_labels.items():
            if labels.get(key) != value:
                return False
        for key, operator, values in self.match_expressions:
            present = key in labels
            if operator == "In" and not (present and labels[key] in values):
                return False
            if operator == "NotIn" and present and labels[key] in values:
                return False
            if operator == "Exists" and not present:
                return False
            if operator == "DoesNotExist" and present:
                return False
        return True


@dataclass(frozen=True)
class DeploymentSpec:
    """The parts of an InferenceDeployment spec that the cost model reads."""

    name: str
    namespace: str
    model_name: str
    layers: int
    hidden_size: int
    parameters_billions: float
    dtype: str
    shards: int
    replicas: int
    tokens_per_second: float
    selector: LabelSelector
    max_region_hops: int | None

    @property
    def bytes_per_value(self) -> float:
        return DTYPE_BYTES[self.dtype]


@dataclass(frozen=True)
class NodeInfo:
    """One node as the cost model sees it."""

    name: str
    labels: Mapping[str, str]
    unschedulable: bool
    ready: bool
    allocatable_memory_bytes: float

    @property
    def region(self) -> str:
        return self.labels.get(REGION_LABEL, "")

    @property
    def accelerator(self) -> str:
        return self.labels.get(GPU_PRODUCT_LABEL, CPU_ACCELERATOR)

    @property
    def memory_bytes(self) -> float:
        """Accelerator memory for GPU nodes (labels), allocatable memory for CPU nodes."""
        if self.accelerator == CPU_ACCELERATOR:
            return self.allocatable_memory_bytes
        mib = _label_number(self.labels.get(GPU_MEMORY_LABEL))
        count = _label_number(self.labels.get(GPU_COUNT_LABEL))
        return mib * 2**20 * count


@dataclass(frozen=True)
class RegionCarbon:
    intensity: tuple[float, ...]  # one value, or 24 hourly values (UTC hour 0..23)
    pue: float = 1.0

    def at(self, hour: int) -> float:
        if len(self.intensity) == 1:
            return self.intensity[0]
        return self.intensity[hour % 24]

    def mean_over(self, hour: int, hours: int = 1) -> float:
        """Mean CI over the window of ``hours`` UTC hours starting at ``hour``. Emissions are
        linear in CI, so minimising the sum over the window's hours is minimising the plan
        with this mean (and the result's g/h is the window's hourly average)."""
        if hours <= 1:
            return self.at(hour)
        return sum(self.at(hour + i) for i in range(hours)) / hours


@dataclass(frozen=True)
class LinkEnergy:
    same_pool: float
    same_region: float
    cross_region: float


@dataclass(frozen=True)
class GridProfile:
    """Carbon intensity and PUE per region, energy per accelerator, link energy."""

    name: str
    regions: Mapping[str, RegionCarbon]
    accelerators: Mapping[str, float]  # joules per teraflop
    links: LinkEnergy

    def with_intensities(self, intensities: Mapping[str, Sequence[float]]) -> GridProfile:
        """A copy whose regions take the given intensities (e.g. from a live provider)."""
        regions = dict(self.regions)
        for region, values in intensities.items():
            if region in regions:
                regions[region] = RegionCarbon(tuple(float(v) for v in values), regions[region].pue)
        return GridProfile(self.name, regions, self.accelerators, self.links)


# --------------------------------------------------------------------------------------------
# The problem
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shard:
    index: int
    first_layer: int
    last_layer: int
    layers: int
    flops_per_token: float
    weight_bytes: float
    memory_bytes: float  # replicas * weight_bytes


@dataclass(frozen=True)
class Pool:
    index: int
    region: str
    accelerator: str
    nodes: tuple[str, ...]
    capacity_bytes: float
    intensity: float  # gCO2e/kWh at the problem's hour
    pue: float
    joules_per_flop: float

    @property
    def key(self) -> str:
        return f"{self.region}/{self.accelerator}"


@dataclass(frozen=True)
class SkippedPool:
    region: str
    accelerator: str
    nodes: tuple[str, ...]
    reason: str

    @property
    def key(self) -> str:
        return f"{self.region}/{self.accelerator}"


@dataclass(frozen=True, eq=False)
class Problem:
    """Shards, pools and the emissions formula at one hour. Placements are pool indices."""

    name: str
    shards: tuple[Shard, ...]
    pools: tuple[Pool, ...]
    skipped: tuple[SkippedPool, ...]
    tokens_per_second: float
    activation_bytes: float
    max_region_hops: int | None
    hour: int
    links: LinkEnergy
    compute: FloatArray  # (S, K): compute(s, k) in g/h
    link: FloatArray  # (K, K): link(k, k') in g/h for one boundary
    region_of_pool: npt.NDArray[np.int64]  # (K,) region id per pool
    layer_bytes: float  # replicas * bytes of one layer's weights: memory is counted in layers
    capacity_layers: npt.NDArray[np.int64]  # (K,) whole layers each pool can hold

    @property
    def num_shards(self) -> int:
        return len(self.shards)

    @property
    def num_pools(self) -> int:
        return len(self.pools)

    @property
    def demand_layers(self) -> npt.NDArray[np.int64]:
        """(S,) layers per shard: shard s needs demand_layers[s] * layer_bytes of memory."""
        return np.array([s.layers for s in self.shards], dtype=np.int64)

    def memory_binding(self) -> bool:
        """Whether some pool cannot hold every layer (else memory never constrains)."""
        total = sum(s.layers for s in self.shards)
        return bool(np.any(self.capacity_layers < total))

    def hops_binding(self) -> bool:
        return self.max_region_hops is not None and self.max_region_hops < self.num_shards - 1

    def with_unit_intensity(self) -> Problem:
        """The same problem with every CI set to 1: what the carbon-unaware baseline minimises."""
        pools = tuple(
            Pool(
                p.index,
                p.region,
                p.accelerator,
                p.nodes,
                p.capacity_bytes,
                1.0,
                p.pue,
                p.joules_per_flop,
            )
            for p in self.pools
        )
        return _assemble(
            self.name,
            self.shards,
            pools,
            self.skipped,
            self.tokens_per_second,
            self.activation_bytes,
            self.max_region_hops,
            self.hour,
            self.links,
            self.layer_bytes,
        )

    def pool_keys(self) -> list[str]:
        return [p.key for p in self.pools]


def emissions(problem: Problem, placement: Sequence[int]) -> float:
    """gCO2e per hour of a placement, by the cost-model formula."""
    _check_placement(problem, placement)
    total = 0.0
    for s, k in enumerate(placement):
        total += float(problem.compute[s, k])
    for s in range(len(placement) - 1):
        total += float(problem.link[placement[s], placement[s + 1]])
    return total


def region_hops(problem: Problem, placement: Sequence[int]) -> int:
    regions = problem.region_of_pool
    return sum(
        1 for s in range(len(placement) - 1) if regions[placement[s]] != regions[placement[s + 1]]
    )


def pool_loads(problem: Problem, placement: Sequence[int]) -> npt.NDArray[np.int64]:
    """Layers placed on each pool."""
    loads = np.zeros(problem.num_pools, dtype=np.int64)
    for s, k in enumerate(placement):
        loads[k] += problem.shards[s].layers
    return loads


def violations(problem: Problem, placement: Sequence[int]) -> list[str]:
    """Human-readable reasons a placement is infeasible (empty when feasible)."""
    _check_placement(problem, placement)
    out: list[str] = []
    for k, load in enumerate(pool_loads(problem, placement)):
        if load > problem.capacity_layers[k]:
            out.append(
                f"pool {problem.pools[k].key} needs {_gib(load * problem.layer_bytes)} "
                f"but holds {_gib(problem.pools[k].capacity_bytes)}"
            )
    if problem.max_region_hops is not None:
        hops = region_hops(problem, placement)
        if hops > problem.max_region_hops:
            out.append(f"{hops} region hops exceed maxRegionHops={problem.max_region_hops}")
    return out


def feasible(problem: Problem, placement: Sequence[int]) -> bool:
    return not violations(problem, placement)


def _check_placement(problem: Problem, placement: Sequence[int]) -> None:
    if len(placement) != problem.num_shards:
        raise ValueError(
            f"placement has {len(placement)} entries, problem has {problem.num_shards} shards"
        )
    for k in placement:
        if not 0 <= k < problem.num_pools:
            raise ValueError(f"pool index {k} out of range 0..{problem.num_pools - 1}")


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def shard_layers(layers: int, shards: int) -> list[tuple[int, int]]:
    """(first, last) layer of each shard: floor(s*L/S) .. floor((s+1)*L/S) - 1."""
    return [((s * layers) // shards, ((s + 1) * layers) // shards - 1) for s in range(shards)]


def build_problem(
    deployment: DeploymentSpec,
    nodes: Iterable[NodeInfo],
    profile: GridProfile,
    hour: int,
    hours: int = 1,
) -> Problem:
    """Shards, candidate pools and the cost matrices at UTC ``hour``.

    ``hours`` > 1 plans for the window hour .. hour+hours-1 (wrapping at 24): each pool's CI is
    the window's mean, which minimises the sum of emissions over the window (they are linear in
    CI); reported g/h are then the window's hourly average.

    Raises :class:`NoCandidatePoolError` when no pool is left.
    """
    if not 0 <= hour <= 23:
        raise InputError("hour", f"must be 0..23 (got {hour})")
    if not 1 <= hours <= 24:
        raise InputError("hours", f"must be 1..24 (got {hours})")
    b = deployment.bytes_per_value
    per_layer = deployment.parameters_billions * 1e9 / deployment.layers
    shards = []
    for s, (first, last) in enumerate(shard_layers(deployment.layers, deployment.shards)):
        n_s = last - first + 1
        weight = per_layer * n_s * b
        shards.append(
            Shard(s, first, last, n_s, 2.0 * per_layer * n_s, weight, deployment.replicas * weight)
        )

    groups: dict[tuple[str, str], list[NodeInfo]] = {}
    for node in nodes:
        if node.unschedulable or not node.ready or not deployment.selector.matches(node.labels):
            continue
        groups.setdefault((node.region, node.accelerator), []).append(node)

    pools: list[Pool] = []
    skipped: list[SkippedPool] = []
    for region, accel in sorted(groups):
        members = sorted(groups[(region, accel)], key=lambda n: n.name)
        names = tuple(n.name for n in members)
        reason = ""
        if not region:
            reason = f"nodes have no {REGION_LABEL} label"
        elif region not in profile.regions:
            reason = f"region {region!r} is not in GridProfile {profile.name!r} spec.regions"
        elif accel not in profile.accelerators:
            reason = (
                f"accelerator {accel!r} is not in GridProfile {profile.name!r} spec.accelerators"
            )
        if reason:
            skipped.append(SkippedPool(region, accel, names, reason))
            continue
        carbon = profile.regions[region]
        pools.append(
            Pool(
                len(pools),
                region,
                accel,
                names,
                float(sum(n.memory_bytes for n in members)),
                carbon.mean_over(hour, hours),
                carbon.pue,
                profile.accelerators[accel] / 1e12,
            )
        )
    if not pools:
        detail = "; ".join(f"{p.key}: {p.reason}" for p in skipped) or (
            "no node matches spec.placement.nodeSelector, is schedulable and Ready"
        )
        raise NoCandidatePoolError(f"no candidate pool left ({detail})")
    return _assemble(
        deployment.name,
        tuple(shards),
        tuple(pools),
        tuple(skipped),
        deployment.tokens_per_second,
        deployment.hidden_size * b,
        deployment.max_region_hops,
        hour,
        profile.links,
        deployment.replicas * per_layer * b,
    )


def capacity_in_layers(capacity_bytes: float, layer_bytes: float) -> int:
    """Whole layers that fit: the memory rule sum(R * W_s) <= capacity, counted exactly."""
    return math.floor(capacity_bytes / layer_bytes * (1 + 1e-12))


def _assemble(
    name: str,
    shards: tuple[Shard, ...],
    pools: tuple[Pool, ...],
    skipped: tuple[SkippedPool, ...],
    tokens: float,
    activation_bytes: float,
    max_hops: int | None,
    hour: int,
    links: LinkEnergy,
    layer_bytes: float,
) -> Problem:
    k = len(pools)
    ci = np.array([p.intensity for p in pools])
    pue = np.array([p.pue for p in pools])
    joules = np.array([p.joules_per_flop for p in pools])
    flops = np.array([s.flops_per_token for s in shards])
    compute = np.outer(flops * tokens, joules * pue * ci) / 1000.0
    region_names = sorted({p.region for p in pools})
    region_id = np.array([region_names.index(p.region) for p in pools], dtype=np.int64)
    energy = np.full((k, k), links.cross_region)
    energy[region_id[:, None] == region_id[None, :]] = links.same_region
    np.fill_diagonal(energy, links.same_pool)
    link = (
        activation_bytes
        * tokens
        * energy
        * ((pue[:, None] + pue[None, :]) / 2)
        * ((ci[:, None] + ci[None, :]) / 2)
        / 1000.0
    )
    capacity = np.array(
        [capacity_in_layers(p.capacity_bytes, layer_bytes) for p in pools], dtype=np.int64
    )
    return Problem(
        name,
        shards,
        pools,
        skipped,
        tokens,
        activation_bytes,
        max_hops,
        hour,
        links,
        compute,
        link,
        region_id,
        layer_bytes,
        capacity,
    )


def _label_number(value: str | None) -> float:
    if value is None:
        return 0.0
    try:
        number = float(value)
    except ValueError:
        return 0.0
    return number if math.isfinite(number) and number > 0 else 0.0
