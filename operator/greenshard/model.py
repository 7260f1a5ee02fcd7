"""The placement problem and its cost model, as the contract docs/cost-model.md states it.

Pure data and pure functions: the standard library and numpy only. Everything that plans a
placement (solvers, the CLI, the operator, the scheduler extender) goes through :class:`Problem`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from greenshard import feasibility, network
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
GPU_RESOURCE = "nvidia.com/gpu"
CPU_ACCELERATOR = "cpu"
DEFAULT_MEMORY_OVERHEAD = 0.2
#: Latency sums within this many ms of spec.placement.maxPipelineLatencyMs still fit.
LATENCY_TOL_MS = 1e-9

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
    memory_overhead: float = DEFAULT_MEMORY_OVERHEAD  # spec.model.memoryOverhead
    max_pipeline_latency_ms: float | None = None  # spec.placement.maxPipelineLatencyMs

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
    allocatable_gpus: int | None = None  # status.allocatable["nvidia.com/gpu"], None if absent
    allocatable_pods: int | None = None  # status.allocatable.pods, None if absent (no limit)

    @property
    def gpu_count(self) -> int:
        """Allocatable GPUs, else the nvidia.com/gpu.count label."""
        if self.allocatable_gpus is not None:
            return self.allocatable_gpus
        return int(_label_number(self.labels.get(GPU_COUNT_LABEL)))

    @property
    def gpu_memory_bytes(self) -> float:
        """Memory of one GPU (nvidia.com/gpu.memory, MiB), 0 when the label is missing."""
        return _label_number(self.labels.get(GPU_MEMORY_LABEL)) * 2**20

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
        return self.gpu_memory_bytes * self.gpu_count


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
    network: network.Network = field(default_factory=network.Network)

    def with_intensities(self, intensities: Mapping[str, Sequence[float]]) -> GridProfile:
        """A copy whose regions take the given intensities (e.g. from a live provider)."""
        regions = dict(self.regions)
        for region, values in intensities.items():
            if region in regions:
                regions[region] = RegionCarbon(tuple(float(v) for v in values), regions[region].pue)
        return GridProfile(self.name, regions, self.accelerators, self.links, self.network)


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
    needed_bytes: float = 0.0  # weight_bytes * (1 + memoryOverhead): what one replica needs


@dataclass(frozen=True)
class Pool:
    index: int
    region: str
    accelerator: str
    nodes: tuple[str, ...]
    capacity_bytes: float  # summed accelerator memory (informative; feasibility is per node)
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
    capacity: feasibility.Capacity  # whole GPUs (bytes on cpu) node by node, exact packing
    latency: FloatArray  # (K, K) boundary RTT in ms; NaN where the profile has no entry
    max_latency_ms: float | None  # spec.placement.maxPipelineLatencyMs

    @property
    def num_shards(self) -> int:
        return len(self.shards)

    @property
    def num_pools(self) -> int:
        return len(self.pools)

    @property
    def replicas(self) -> int:
        return self.capacity.replicas

    @property
    def load_weight(self) -> npt.NDArray[np.int64]:
        """(S,) what shard s adds to the load index of its pool (see feasibility.Capacity):
        pool k holds a set of shards iff ``capacity.fits(k, sum of their weights)``."""
        return self.capacity.weight

    def capacity_pools(self) -> list[int]:
        """Pools whose capacity can bind (some set of shards does not fit them)."""
        return [k for k in range(self.num_pools) if not self.capacity.always_fits(k)]

    def capacity_binding(self) -> bool:
        return bool(self.capacity_pools())

    def hops_binding(self) -> bool:
        return self.max_region_hops is not None and self.max_region_hops < self.num_shards - 1

    def latency_binding(self) -> bool:
        """Whether the latency limit can bind: some pipeline would exceed it, or some boundary
        has no RTT in the profile (then it is not allowed)."""
        if self.max_latency_ms is None or self.num_shards < 2:
            return False
        lat = self.latency
        if bool(np.isnan(lat).any()):
            return True
        return float(np.nanmax(lat)) * (self.num_shards - 1) > self.max_latency_ms + LATENCY_TOL_MS

    def latency_allowed(self) -> npt.NDArray[np.bool_]:
        """(K, K) whether a boundary k -> k' may be used at all."""
        if self.max_latency_ms is None:
            return np.ones_like(self.latency, dtype=np.bool_)
        return ~np.isnan(self.latency) & (self.latency <= self.max_latency_ms + LATENCY_TOL_MS)

    def latency_or_zero(self) -> FloatArray:
        """The latency matrix with unknown pairs as 0 (for sums when no limit is set)."""
        return np.nan_to_num(self.latency, nan=0.0)

    def with_unit_intensity(self) -> Problem:
        """The same problem with every CI set to 1: what the carbon-unaware baseline minimises."""
        pools = tuple(replace(p, intensity=1.0) for p in self.pools)
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
            self.capacity,
            self.latency,
            self.max_latency_ms,
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


def pipeline_latency(problem: Problem, placement: Sequence[int]) -> float | None:
    """Sum of the boundary RTTs in ms; None when a boundary's region pair has no entry."""
    total = 0.0
    for s in range(len(placement) - 1):
        ms = float(problem.latency[placement[s], placement[s + 1]])
        if np.isnan(ms):
            return None
        total += ms
    return total


def shards_by_pool(placement: Sequence[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for s, k in enumerate(placement):
        out.setdefault(int(k), []).append(s)
    return out


def pool_loads(problem: Problem, placement: Sequence[int]) -> npt.NDArray[np.int64]:
    """Load index of each pool (see :attr:`Problem.load_weight`)."""
    loads = np.zeros(problem.num_pools, dtype=np.int64)
    weight = problem.load_weight
    for s, k in enumerate(placement):
        loads[k] += weight[s]
    return loads


def violations(problem: Problem, placement: Sequence[int]) -> list[str]:
    """Human-readable reasons a placement is infeasible (empty when feasible)."""
    _check_placement(problem, placement)
    out: list[str] = []
    for k, shards in sorted(shards_by_pool(placement).items()):
        if not problem.capacity.fits_shards(k, shards):
            out.append(f"pool {problem.pools[k].key}: {problem.capacity.shortfall(k, shards)}")
    if problem.max_region_hops is not None:
        hops = region_hops(problem, placement)
        if hops > problem.max_region_hops:
            out.append(f"{hops} region hops exceed maxRegionHops={problem.max_region_hops}")
    if problem.max_latency_ms is not None:
        for s in range(len(placement) - 1):
            if np.isnan(problem.latency[placement[s], placement[s + 1]]):
                a, b = problem.pools[placement[s]].region, problem.pools[placement[s + 1]].region
                out.append(
                    f"shards {s}-{s + 1} cross {a} -> {b}, which has no round-trip time in the "
                    f'GridProfile (spec.network.latencyMs["{a}/{b}"]) while '
                    "spec.placement.maxPipelineLatencyMs is set"
                )
        total = pipeline_latency(problem, placement)
        if total is not None and total > problem.max_latency_ms + LATENCY_TOL_MS:
            out.append(
                f"pipeline latency {total:g} ms exceeds maxPipelineLatencyMs="
                f"{problem.max_latency_ms:g}"
            )
    return out


def feasible(problem: Problem, placement: Sequence[int]) -> bool:
    return not violations(problem, placement)


def violation_counts(problem: Problem, placements: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Violations per row of an (N, S) array of placements, vectorised: pools whose shards do
    not pack, hops over the limit, latency over the limit (0: feasible)."""
    rows = placements.shape[0]
    weight = problem.load_weight
    out = np.zeros(rows, dtype=np.int64)
    for k in problem.capacity_pools():
        load = ((placements == k) * weight[None, :]).sum(axis=1)
        out += ~problem.capacity.fit_table(k)[load]
    if problem.max_region_hops is not None:
        regions = problem.region_of_pool[placements]
        hops = (regions[:, :-1] != regions[:, 1:]).sum(axis=1)
        out += hops > problem.max_region_hops
    if problem.latency_binding() and problem.max_latency_ms is not None:
        lat = np.where(problem.latency_allowed(), problem.latency_or_zero(), np.inf)
        total = lat[placements[:, :-1], placements[:, 1:]].sum(axis=1)
        out += total > problem.max_latency_ms + LATENCY_TOL_MS
    return out


def gpus_per_replica(problem: Problem, placement: Sequence[int]) -> list[int]:
    """g_s of each shard's pool (0 on cpu pools)."""
    cap = problem.capacity
    return [
        cap.demand[s][k] if cap.pools[k].unit == feasibility.GPU else 0
        for s, k in enumerate(placement)
    ]


def memory_per_replica(problem: Problem, placement: Sequence[int]) -> list[int]:
    """Bytes one replica of each shard holds on its cpu pool (0 on GPU pools)."""
    cap = problem.capacity
    return [
        cap.demand[s][k] if cap.pools[k].unit == feasibility.BYTES else 0
        for s, k in enumerate(placement)
    ]


def packing(problem: Problem, placement: Sequence[int]) -> dict[str, dict[str, list[int]]]:
    """Per pool key: node name -> shard indices placed there, one entry per replica.

    Raises ValueError when a pool's shards do not pack (an infeasible placement)."""
    out: dict[str, dict[str, list[int]]] = {}
    for k, shards in sorted(shards_by_pool(placement).items()):
        found = problem.capacity.pack(k, shards)
        if found is None:
            raise ValueError(
                f"pool {problem.pools[k].key}: {problem.capacity.shortfall(k, shards)}"
            )
        out[problem.pools[k].key] = found
    return out


def infeasible_message(problem: Problem) -> str:
    """Why no placement is feasible, with the numbers: the shards that fit no pool alone, else
    each pool's free capacity against what all shards together need."""
    cap = problem.capacity
    lines: list[str] = []
    everything = list(range(problem.num_shards))
    for s in everything:
        if not any(cap.fits_shards(k, [s]) for k in range(problem.num_pools)):
            per_pool = "; ".join(
                f"{p.key}: {cap.shortfall(k, [s])}" for k, p in enumerate(problem.pools)
            )
            lines.append(f"shard {s} fits no pool ({per_pool})")
            break
    if not lines:
        lines.append(
            "no pool combination holds every shard: "
            + "; ".join(
                f"{p.key}: {cap.pools[k].amount(cap.pools[k].free_sum)} free of "
                f"{cap.pools[k].amount(sum(cap.pools[k].total))} (at most "
                f"{cap.pools[k].amount(cap.pools[k].free_max)} on one node, "
                f"{cap.pools[k].amount(cap.demand[0][k])} per replica of shard 0"
                + (
                    ""
                    if cap.pools[k].slots is None
                    else f", {cap.pools[k].slots_sum} free pod slots"
                )
                + ")"
                for k, p in enumerate(problem.pools)
            )
            + f"; {problem.replicas} replica(s) of {problem.num_shards} shards"
        )
    limits = []
    if problem.max_region_hops is not None:
        limits.append(f"maxRegionHops={problem.max_region_hops}")
    if problem.max_latency_ms is not None:
        limits.append(f"maxPipelineLatencyMs={problem.max_latency_ms:g}")
    if limits:
        lines.append("with " + " and ".join(limits))
    return (
        "no feasible placement: "
        + "; ".join(lines)
        + ". Free GPUs (add nodes, or wait for other workloads to finish), lower "
        "spec.sharding.replicas or spec.model.memoryOverhead, use more shards or a smaller "
        "dtype, or relax the placement limits"
    )


def _check_placement(problem: Problem, placement: Sequence[int]) -> None:
    if len(placement) != problem.num_shards:
        raise ValueError(
            f"placement has {len(placement)} entries, problem has {problem.num_shards} shards"
        )
    for k in placement:
        if not 0 <= k < problem.num_pools:
            raise ValueError(f"pool index {k} out of range 0..{problem.num_pools - 1}")


def shard_layers(layers: int, shards: int) -> list[tuple[int, int]]:
    """(first, last) layer of each shard: floor(s*L/S) .. floor((s+1)*L/S) - 1."""
    return [((s * layers) // shards, ((s + 1) * layers) // shards - 1) for s in range(shards)]


def build_problem(
    deployment: DeploymentSpec,
    nodes: Iterable[NodeInfo],
    profile: GridProfile,
    hour: int,
    hours: int = 1,
    held: Mapping[str, feasibility.NodeUsage] | None = None,
) -> Problem:
    """Shards, candidate pools and the cost matrices at UTC ``hour``.

    ``hours`` > 1 plans for the window hour .. hour+hours-1 (wrapping at 24): each pool's CI is
    the window's mean, which minimises the sum of emissions over the window (they are linear in
    CI); reported g/h are then the window's hourly average.

    ``held``: per node name, the GPUs and memory that others hold (pods this deployment does
    not own, other deployments' plans); without it every allocatable GPU is free.

    Raises :class:`NoCandidatePoolError` when no pool is left.
    """
    if not 0 <= hour <= 23:
        raise InputError("hour", f"must be 0..23 (got {hour})")
    if not 1 <= hours <= 24:
        raise InputError("hours", f"must be 1..24 (got {hours})")
    held = held or {}
    overhead = deployment.memory_overhead
    b = deployment.bytes_per_value
    per_layer = deployment.parameters_billions * 1e9 / deployment.layers
    shards = []
    for s, (first, last) in enumerate(shard_layers(deployment.layers, deployment.shards)):
        n_s = last - first + 1
        weight = per_layer * n_s * b
        shards.append(
            Shard(
                s,
                first,
                last,
                n_s,
                2.0 * per_layer * n_s,
                weight,
                deployment.replicas * weight,
                weight * (1.0 + overhead),
            )
        )

    groups: dict[tuple[str, str], list[NodeInfo]] = {}
    for node in nodes:
        if node.unschedulable or not node.ready or not deployment.selector.matches(node.labels):
            continue
        groups.setdefault((node.region, node.accelerator), []).append(node)

    pools: list[Pool] = []
    skipped: list[SkippedPool] = []
    pool_nodes: list[feasibility.PoolNodes] = []
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
        elif accel != CPU_ACCELERATOR and any(n.gpu_memory_bytes <= 0 for n in members):
            reason = f"nodes have no {GPU_MEMORY_LABEL} label (MiB per GPU)"
        if reason:
            skipped.append(SkippedPool(region, accel, names, reason))
            continue
        pool_nodes.append(_pool_nodes(members, accel, held, len(shards) * deployment.replicas))
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
    demand = [
        [
            feasibility.gpus_per_replica(shard.weight_bytes, overhead, pn.gpu_memory_bytes)
            if pn.unit == feasibility.GPU
            else feasibility.replica_bytes(shard.weight_bytes, overhead)
            for pn in pool_nodes
        ]
        for shard in shards
    ]
    capacity = feasibility.Capacity.build(pool_nodes, demand, deployment.replicas)
    latency = np.array(
        network.latency_matrix(profile.network, [p.region for p in pools]), dtype=np.float64
    )
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
        capacity,
        latency,
        deployment.max_pipeline_latency_ms,
    )


def _pool_nodes(
    members: Sequence[NodeInfo],
    accel: str,
    held: Mapping[str, feasibility.NodeUsage],
    pods: int,
) -> feasibility.PoolNodes:
    """Free GPUs (bytes on cpu) and pod slots per node: allocatable minus what others hold,
    never negative. A node that does not report ``allocatable.pods`` (real nodes do) has a slot
    for each of the deployment's ``pods``, so it never limits and messages show a real count.
    A pool's per-GPU memory is its smallest node's (nodes of one product normally agree)."""
    names = tuple(n.name for n in members)
    if accel == CPU_ACCELERATOR:
        total = tuple(int(n.allocatable_memory_bytes) for n in members)
        used = tuple(int(held.get(n.name, feasibility.NodeUsage()).memory_bytes) for n in members)
        unit, gpu_memory = feasibility.BYTES, 0.0
    else:
        total = tuple(n.gpu_count for n in members)
        used = tuple(held.get(n.name, feasibility.NodeUsage()).gpus for n in members)
        unit, gpu_memory = feasibility.GPU, min(n.gpu_memory_bytes for n in members)
    free = tuple(max(0, t - u) for t, u in zip(total, used, strict=True))
    slots: tuple[int, ...] | None = None
    if any(n.allocatable_pods is not None for n in members):
        slots = tuple(
            pods
            if n.allocatable_pods is None
            else max(0, n.allocatable_pods - held.get(n.name, feasibility.NodeUsage()).pods)
            for n in members
        )
    return feasibility.PoolNodes(names, free, total, unit, gpu_memory, slots)


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
    capacity: feasibility.Capacity,
    latency: FloatArray,
    max_latency_ms: float | None,
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
        capacity,
        latency,
        max_latency_ms,
    )


def _label_number(value: str | None) -> float:
    if value is None:
        return 0.0
    try:
        number = float(value)
    except ValueError:
        return 0.0
    return number if math.isfinite(number) and number > 0 else 0.0
