"""What other pods hold on each node: GPUs and memory requested (cost-model.md, "Free capacity").

A pod counts when it is bound to a node (``spec.nodeName``), its phase is not Succeeded or
Failed, and the InferenceDeployment being planned does not own it. A container's GPU request is
its ``resources.limits["nvidia.com/gpu"]`` (else ``requests``); a pod's is the sum over its
containers, or its largest init container if that is larger (init containers run one at a time,
before the others). Memory requests follow the same rule. Pure: plain mappings in, numbers out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from greenshard import feasibility, model, parsing
from greenshard.errors import InputError

GPU_RESOURCE = model.GPU_RESOURCE
#: The label that marks the pods (and workloads) of an InferenceDeployment: its name.
OWNER_LABEL = "greenshard.io/deployment"
TERMINAL_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class PodUsage:
    """One pod as capacity accounting sees it."""

    namespace: str
    name: str
    node: str  # "" when not bound
    phase: str
    owner: str  # OWNER_LABEL value, "" when none
    gpus: int
    memory_bytes: float

    @property
    def holds_capacity(self) -> bool:
        return bool(self.node) and self.phase not in TERMINAL_PHASES

    def owned_by(self, namespace: str, name: str) -> bool:
        return self.namespace == namespace and self.owner == name


def _container_amount(container: object, resource: str, path: str, gpu: bool) -> float:
    if not isinstance(container, Mapping):
        return 0.0
    res = container.get("resources") or {}
    if not isinstance(res, Mapping):
        return 0.0
    # GPUs: limits (extended resources must have limits == requests), else requests.
    # Memory: what the scheduler counts, the request (else the limit, which defaults it).
    order = ("limits", "requests") if gpu else ("requests", "limits")
    for kind in order:
        values = res.get(kind) or {}
        if isinstance(values, Mapping) and values.get(resource) is not None:
            return parsing.parse_quantity(values[resource], f"{path}.resources.{kind}.{resource}")
    return 0.0


def pod_request(pod_spec: Mapping[str, Any], resource: str, path: str = "spec") -> float:
    """Sum over containers, or the largest init container when larger."""
    gpu = resource == GPU_RESOURCE
    containers = pod_spec.get("containers") or []
    inits = pod_spec.get("initContainers") or []
    total = sum(
        _container_amount(c, resource, f"{path}.containers[{i}]", gpu)
        for i, c in enumerate(containers if isinstance(containers, list) else [])
    )
    largest_init = max(
        (
            _container_amount(c, resource, f"{path}.initContainers[{i}]", gpu)
            for i, c in enumerate(inits if isinstance(inits, list) else [])
        ),
        default=0.0,
    )
    return max(total, largest_init)


def pod_usage(pod: Mapping[str, Any], path: str = "pod") -> PodUsage:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    if not isinstance(meta, Mapping) or not isinstance(spec, Mapping):
        raise InputError(path, "must be a Pod with metadata and spec")
    labels = meta.get("labels") or {}
    gpus = pod_request(spec, GPU_RESOURCE, f"{path}.spec")
    return PodUsage(
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name") or "?"),
        node=str(spec.get("nodeName") or ""),
        phase=str((status if isinstance(status, Mapping) else {}).get("phase") or "Pending"),
        owner=str(labels.get(OWNER_LABEL, "")) if isinstance(labels, Mapping) else "",
        gpus=math.ceil(gpus - 1e-9),
        memory_bytes=pod_request(spec, "memory", f"{path}.spec"),
    )


def parse_pods(doc: object) -> list[PodUsage]:
    """A PodList / List (``kubectl get pods -A -o yaml``) or one Pod."""
    if not isinstance(doc, Mapping):
        raise InputError("(document)", "must be a PodList mapping")
    kind = doc.get("kind")
    if kind == "Pod":
        return [pod_usage(doc)]
    if kind not in (None, "PodList", "List"):
        raise InputError("kind", f"must be PodList, List or Pod (got {kind!r})")
    items = doc.get("items")
    if not isinstance(items, list):
        raise InputError("items", "must be a list of Pod objects")
    return [
        pod_usage(item, f"items[{i}]")
        for i, item in enumerate(items)
        if isinstance(item, Mapping) and item.get("kind", "Pod") == "Pod"
    ]


def usage_by_node(
    pods: Iterable[PodUsage], exclude: tuple[str, str] | None = None
) -> dict[str, feasibility.NodeUsage]:
    """GPUs, memory and pod slots held on each node by pods that hold capacity, except those
    that the InferenceDeployment ``exclude`` = (namespace, name) owns."""
    out: dict[str, feasibility.NodeUsage] = {}
    for pod in pods:
        if not pod.holds_capacity:
            continue
        if exclude is not None and pod.owned_by(*exclude):
            continue
        out[pod.node] = out.get(pod.node, feasibility.NodeUsage()).plus(
            pod.gpus, pod.memory_bytes, 1
        )
    return out
