"""Reading the three inputs: InferenceDeployment, NodeList and GridProfile documents (CR bodies
or the CLI's YAML files) into the cost model's types, with errors that name the field.

Pure functions over plain mappings: the standard library only, and :mod:`greenshard.model`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from greenshard import network
from greenshard.errors import InputError
from greenshard.model import (
    DEFAULT_MEMORY_OVERHEAD,
    DTYPE_BYTES,
    GPU_RESOURCE,
    DeploymentSpec,
    GridProfile,
    LabelSelector,
    LinkEnergy,
    NodeInfo,
    RegionCarbon,
)

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
        memory_overhead=model.number("memoryOverhead", 0.0, 10.0, default=DEFAULT_MEMORY_OVERHEAD),
        max_pipeline_latency_ms=(
            None
            if placement.raw("maxPipelineLatencyMs") is None
            else placement.number("maxPipelineLatencyMs", 0.0, network.MAX_LATENCY_MS)
        ),
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
    gpus: int | None = None
    if isinstance(alloc, Mapping) and alloc.get("memory") is not None:
        memory = parse_quantity(alloc["memory"], f"{path}.status.allocatable.memory")
    if isinstance(alloc, Mapping) and alloc.get(GPU_RESOURCE) is not None:
        here = f"{path}.status.allocatable.{GPU_RESOURCE}"
        gpus = max(0, math.floor(parse_quantity(alloc[GPU_RESOURCE], here) + 1e-9))
    pods: int | None = None
    if isinstance(alloc, Mapping) and alloc.get("pods") is not None:
        here = f"{path}.status.allocatable.pods"
        pods = max(0, math.floor(parse_quantity(alloc["pods"], here) + 1e-9))
    return NodeInfo(
        name,
        {str(k): str(v) for k, v in labels.items()},
        bool(spec.raw("unschedulable")),
        ready,
        memory,
        gpus,
        pods,
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
        network.parse_network(spec.raw("network")),
    )


_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def duration_seconds(text: str, field_name: str) -> float:
    match = _DURATION.match(text.strip())
    if not text.strip() or not match:
        raise InputError(field_name, f"{text!r} is not a duration like 15m, 1h or 90s")
    h, m, s = (int(g) if g else 0 for g in match.groups())
    return max(10.0, h * 3600.0 + m * 60.0 + s)
