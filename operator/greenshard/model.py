"""The placement problem, exactly as docs/cost-model.md states it.

Pure data and pure functions: the standard library and numpy only. Everything that plans a
placement (solvers, the CLI, the operator, the scheduler extender) goes through :class:`Problem`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

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


# --------------------------------------------------------------------------------------------
# Parsing: InferenceDeployment, NodeList, GridProfile (the CR bodies or the CLI's YAML files)
# --------------------------------------------------------------------------------------------

_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")
_SUFFIX = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}


def parse_quantity(value: object, field_name: str = "quantity") -> float:
    """A Kubernetes resource quantity ("64Gi", "128974848", "1.5e9", "500M") as a float."""
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if (
        not match
        or match.group(2) not in _SUFFIX
        or (match.group(2) and ("e" in match.group(1).lower()))
    ):
        raise InputError(field_name, f"{text!r} is not a Kubernetes quantity (e.g. 64Gi)")
    try:
        return float(Decimal(match.group(1)) * _SUFFIX[match.group(2)])
    except InvalidOperation as exc:
        raise InputError(field_name, f"{text!r} is not a Kubernetes quantity") from exc


def _label_number(value: str | None) -> float:
    if value is None:
        return 0.0
    try:
        number = float(value)
    except ValueError:
        return 0.0
    return number if math.isfinite(number) and number > 0 else 0.0


class _Reader:
    """Reads typed fields out of a nested mapping, with errors that name the field path."""

    def __init__(self, data: object, path: str) -> None:
        self.data = data
        self.path = path

    def _child(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def mapping(self, key: str, required: bool = True) -> _Reader:
        if not isinstance(self.data, Mapping):
            raise InputError(self.path or "(document)", "must be a mapping")
        value = self.data.get(key)
        if value is None:
            if required:
                raise InputError(self._child(key), "is required")
            value = {}
        if not isinstance(value, Mapping):
            raise InputError(self._child(key), f"must be a mapping (got {type(value).__name__})")
        return _Reader(value, self._child(key))

    def raw(self, key: str) -> object:
        return self.data.get(key) if isinstance(self.data, Mapping) else None

    def string(self, key: str, default: str | None = None) -> str:
        value = self.raw(key)
        if value is None:
            if default is None:
                raise InputError(self._child(key), "is required")
            return default
        if not isinstance(value, str) or not value:
            raise InputError(self._child(key), f"must be a non-empty string (got {value!r})")
        return value

    def integer(
        self,
        key: str,
        minimum: int,
        maximum: int,
        default: int | None = None,
        required: bool = True,
    ) -> int | None:
        value = self.raw(key)
        if value is None:
            if default is None and required:
                raise InputError(self._child(key), f"is required (an integer {minimum}..{maximum})")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(self._child(key), f"must be an integer (got {value!r})")
        if not minimum <= value <= maximum:
            raise InputError(self._child(key), f"must be in {minimum}..{maximum} (got {value})")
        return value

    def number(
        self,
        key: str,
        minimum: float,
        maximum: float,
        default: float | None = None,
        exclusive_minimum: bool = False,
    ) -> float:
        value = self.raw(key)
        if value is None:
            if default is None:
                raise InputError(self._child(key), "is required (a number)")
            return default
        return _number(value, self._child(key), minimum, maximum, exclusive_minimum)


def _number(
    value: object, path: str, minimum: float, maximum: float, exclusive_minimum: bool = False
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(path, f"must be a number (got {value!r})")
    number = float(value)
    low_ok = number > minimum if exclusive_minimum else number >= minimum
    if not math.isfinite(number) or not low_ok or number > maximum:
        bound = f"> {minimum:g}" if exclusive_minimum else f">= {minimum:g}"
        raise InputError(path, f"must be {bound} and <= {maximum:g} (got {value!r})")
    return number


def _kind_check(doc: object, kinds: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(doc, Mapping):
        raise InputError("(document)", f"must be a {' or '.join(kinds)} mapping")
    kind = doc.get("kind")
    if kind is not None and kind not in kinds:
        raise InputError("kind", f"must be {' or '.join(kinds)} (got {kind!r})")
    return doc


def parse_selector(data: object, path: str) -> LabelSelector:
    if data is None:
        return LabelSelector()
    if not isinstance(data, Mapping):
        raise InputError(path, "must be a LabelSelector mapping (matchLabels, matchExpressions)")
    labels = data.get("matchLabels") or {}
    if not isinstance(labels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise InputError(f"{path}.matchLabels", "must map label keys to string values")
    exprs = []
    raw_exprs = data.get("matchExpressions") or []
    if not isinstance(raw_exprs, list):
        raise InputError(f"{path}.matchExpressions", "must be a list")
    for i, expr in enumerate(raw_exprs):
        here = f"{path}.matchExpressions[{i}]"
        if not isinstance(expr, Mapping) or not isinstance(expr.get("key"), str):
            raise InputError(here, "must have a string key")
        op = expr.get("operator")
        values = expr.get("values") or []
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise InputError(
                f"{here}.operator", f"must be In, NotIn, Exists or DoesNotExist (got {op!r})"
            )
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise InputError(f"{here}.values", "must be a list of strings")
        if op in ("In", "NotIn") and not values:
            raise InputError(f"{here}.values", f"must not be empty for operator {op}")
        if op in ("Exists", "DoesNotExist") and values:
            raise InputError(f"{here}.values", f"must be empty for operator {op}")
        exprs.append((expr["key"], op, tuple(values)))
    return LabelSelector(dict(labels), tuple(exprs))


def parse_deployment(doc: object) -> DeploymentSpec:
    """An InferenceDeployment (CR body or YAML document) -> DeploymentSpec."""
    body = _kind_check(doc, ("InferenceDeployment",))
    root = _Reader(body, "")
    meta = root.mapping("metadata", required=False)
    spec = root.mapping("spec")
    model = spec.mapping("model")
    dtype = model.string("dtype", "bfloat16")
    if dtype not in DTYPE_BYTES:
        raise InputError(
            "spec.model.dtype", f"unknown dtype {dtype!r}; use one of {', '.join(DTYPE_BYTES)}"
        )
    layers = model.integer("layers", 1, 100_000)
    assert layers is not None
    sharding = spec.mapping("sharding")
    shards = sharding.integer("shards", 1, 1024)
    assert shards is not None
    if shards > layers:
        raise InputError(
            "spec.sharding.shards",
            f"{shards} shards exceed spec.model.layers={layers}; use at most {layers} shards",
        )
    placement = spec.mapping("placement", required=False)
    return DeploymentSpec(
        name=meta.string("name", "inference"),
        namespace=meta.string("namespace", "default"),
        model_name=model.string("name", "model"),
        layers=layers,
        hidden_size=int(model.integer("hiddenSize", 1, 1_000_000) or 0),
        parameters_billions=model.number(
            "parametersBillions", 0.0, 100_000.0, exclusive_minimum=True
        ),
        dtype=dtype,
        shards=shards,
        replicas=int(sharding.integer("replicas", 1, 1000, default=1) or 1),
        tokens_per_second=spec.mapping("workload").number(
            "tokensPerSecond", 0.0, 1e9, exclusive_minimum=True
        ),
        selector=parse_selector(placement.raw("nodeSelector"), "spec.placement.nodeSelector"),
        max_region_hops=placement.integer("maxRegionHops", 0, 1024, required=False),
    )


def parse_node(doc: object, path: str = "node") -> NodeInfo:
    if not isinstance(doc, Mapping):
        raise InputError(path, "must be a Node mapping")
    node = _Reader(doc, path)
    meta = node.mapping("metadata")
    name = meta.string("name")
    labels = meta.raw("labels") or {}
    if not isinstance(labels, Mapping):
        raise InputError(f"{path}.metadata.labels", "must be a mapping")
    spec = node.mapping("spec", required=False)
    status = node.mapping("status", required=False)
    ready = False
    conditions = status.raw("conditions") or []
    if isinstance(conditions, list):
        for cond in conditions:
            if isinstance(cond, Mapping) and cond.get("type") == "Ready":
                ready = cond.get("status") == "True"
    alloc = status.raw("allocatable") or {}
    memory = 0.0
    if isinstance(alloc, Mapping) and alloc.get("memory") is not None:
        memory = parse_quantity(alloc["memory"], f"{path}.status.allocatable.memory")
    return NodeInfo(
        name,
        {str(k): str(v) for k, v in labels.items()},
        bool(spec.raw("unschedulable")),
        ready,
        memory,
    )


def parse_nodes(doc: object) -> list[NodeInfo]:
    """A NodeList (what ``kubectl get nodes -o yaml`` prints), a List, or one Node."""
    body = _kind_check(doc, ("NodeList", "List", "Node"))
    if body.get("kind") == "Node":
        return [parse_node(body)]
    items = body.get("items")
    if not isinstance(items, list):
        raise InputError("items", "must be a list of Node objects")
    return [parse_node(item, f"items[{i}]") for i, item in enumerate(items)]


def parse_grid_profile(doc: object) -> GridProfile:
    body = _kind_check(doc, ("GridProfile",))
    root = _Reader(body, "")
    name = root.mapping("metadata", required=False).string("name", "default")
    spec = root.mapping("spec")
    regions_raw = spec.raw("regions")
    if not isinstance(regions_raw, Mapping) or not regions_raw:
        raise InputError("spec.regions", "must map each region name to {intensity, pue}")
    regions: dict[str, RegionCarbon] = {}
    for region, entry in regions_raw.items():
        here = f"spec.regions.{region}"
        reader = _Reader(entry, here)
        if not isinstance(entry, Mapping):
            raise InputError(here, "must be a mapping with intensity and pue")
        raw = entry.get("intensity")
        if isinstance(raw, list):
            if len(raw) != 24:
                raise InputError(
                    f"{here}.intensity", f"must be one number or 24 hourly values (got {len(raw)})"
                )
            values = tuple(
                _number(v, f"{here}.intensity[{i}]", 0.0, 1e5) for i, v in enumerate(raw)
            )
        elif raw is None:
            raise InputError(f"{here}.intensity", "is required (gCO2e/kWh)")
        else:
            values = (_number(raw, f"{here}.intensity", 0.0, 1e5),)
        regions[str(region)] = RegionCarbon(values, reader.number("pue", 1.0, 10.0, default=1.0))
    accel_raw = spec.raw("accelerators")
    if not isinstance(accel_raw, Mapping) or not accel_raw:
        raise InputError("spec.accelerators", "must map each accelerator to {joulesPerTeraflop}")
    accelerators: dict[str, float] = {}
    for accel, entry in accel_raw.items():
        reader = _Reader(entry, f"spec.accelerators.{accel}")
        if not isinstance(entry, Mapping):
            raise InputError(f"spec.accelerators.{accel}", "must be a mapping")
        accelerators[str(accel)] = reader.number(
            "joulesPerTeraflop", 0.0, 1e6, exclusive_minimum=True
        )
    links = spec.mapping("links")
    return GridProfile(
        name,
        regions,
        accelerators,
        LinkEnergy(
            links.number("samePoolJoulesPerByte", 0.0, 1e3),
            links.number("sameRegionJoulesPerByte", 0.0, 1e3),
            links.number("crossRegionJoulesPerByte", 0.0, 1e3),
        ),
    )
