"""A plan -> the objects that run it as pipelines the serving engines can form (pure builders).

Shard s of pipeline replica r is the pod ``<name>-shard-<s>-<r>``: one StatefulSet per shard
(``<name>-shard-<s>``, ordinal = pipeline index r, ``podManagementPolicy: Parallel``,
``updateStrategy: OnDelete`` so that the operator replaces pods one pipeline replica at a time),
with a PodDisruptionBudget of the same name (drains take one replica of a shard at a time),
governed by a headless Service of the same name, so every pod has a stable DNS name
``<name>-shard-<s>-<r>.<name>-shard-<s>.<namespace>.svc.<cluster domain>``. A Service named
after the InferenceDeployment selects the stage-0 pods: the pipeline's front door.

Every container gets the pipeline's wiring as environment variables (the values that depend on
r come from the pod-index label through the downward API and ``$(VAR)`` expansion, so they are
defined before the template's own variables, which may use them in turn):

``GREENSHARD_PIPELINE_INDEX`` (r), ``GREENSHARD_PIPELINE_COUNT`` (R), ``GREENSHARD_SHARD_INDEX``,
``GREENSHARD_SHARD_COUNT``, ``GREENSHARD_FIRST_LAYER``, ``GREENSHARD_LAST_LAYER``,
``GREENSHARD_LAYER_PARTITION`` and ``VLLM_PP_LAYER_PARTITION`` (layers per shard, comma
separated), ``GREENSHARD_LEADER_ADDRESS`` (stage 0 of the same pipeline),
``GREENSHARD_PREV_ADDRESS`` / ``GREENSHARD_NEXT_ADDRESS`` (empty at the ends),
``GREENSHARD_GPUS`` (GPUs of this stage's pod), ``GREENSHARD_POOL``, ``GREENSHARD_POD_NAME``.

The shard container (the template's first container) gets ``limits["nvidia.com/gpu"] = g`` on a
GPU pool, or a memory request of at least the replica's bytes on a CPU pool; a template that asks
for fewer GPUs than the plan needs (or more than it booked) is refused
(:func:`template_gpu_problem`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from greenshard import model, parsing, pods

DEPLOYMENT_LABEL = pods.OWNER_LABEL
SHARD_LABEL = "greenshard.io/shard"
POOL_ANNOTATION = "greenshard.io/pool"
HASH_ANNOTATION = "greenshard.io/spec-hash"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
DEFAULT_CLUSTER_DOMAIN = "cluster.local"
DEFAULT_PORT = {"name": "http", "port": 8000, "targetPort": 8000, "protocol": "TCP"}

ENV_NAMES = (
    "GREENSHARD_POD_NAME",
    "GREENSHARD_PIPELINE_INDEX",
    "GREENSHARD_PIPELINE_COUNT",
    "GREENSHARD_SHARD_INDEX",
    "GREENSHARD_SHARD_COUNT",
    "GREENSHARD_FIRST_LAYER",
    "GREENSHARD_LAST_LAYER",
    "GREENSHARD_LAYER_PARTITION",
    "VLLM_PP_LAYER_PARTITION",
    "GREENSHARD_GPUS",
    "GREENSHARD_POOL",
    "GREENSHARD_LEADER_ADDRESS",
    "GREENSHARD_PREV_ADDRESS",
    "GREENSHARD_NEXT_ADDRESS",
)


@dataclass(frozen=True)
class Stage:
    """One shard of the plan: where its replicas go and what each needs."""

    shard: int
    first_layer: int
    last_layer: int
    region: str
    accelerator: str
    gpus: int  # per replica; 0 on a cpu pool
    memory_bytes: int  # per replica on a cpu pool (0 on GPU pools)
    nodes: tuple[str, ...]  # the nodes the packing put this shard's replicas on

    @property
    def pool(self) -> str:
        return f"{self.region}/{self.accelerator}"

    @property
    def layers(self) -> int:
        return self.last_layer - self.first_layer + 1


@dataclass(frozen=True)
class Pipeline:
    """Everything the builders need: the owner, the stages in order and the replica count."""

    name: str
    namespace: str
    uid: str
    stages: tuple[Stage, ...]
    replicas: int
    selector: model.LabelSelector = field(default_factory=model.LabelSelector)
    api_version: str = "greenshard.io/v1alpha1"
    kind: str = "InferenceDeployment"
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN

    @property
    def partition(self) -> str:
        return ",".join(str(s.layers) for s in self.stages)


# ------------------------------------------------------------------------------------ names


def stage_name(owner: str, shard: int) -> str:
    """StatefulSet and headless Service of shard ``shard``."""
    return f"{owner}-shard-{shard}"


def pod_name(owner: str, shard: int, replica: int | str) -> str:
    return f"{stage_name(owner, shard)}-{replica}"


def pod_address(p: Pipeline, shard: int, replica: int | str) -> str:
    svc = stage_name(p.name, shard)
    return f"{pod_name(p.name, shard, replica)}.{svc}.{p.namespace}.svc.{p.cluster_domain}"


def selector_labels(owner: str, shard: int | None = None) -> dict[str, str]:
    labels = {DEPLOYMENT_LABEL: owner}
    if shard is not None:
        labels[SHARD_LABEL] = str(shard)
    return labels


def common_labels(owner: str, shard: int | None, component: str = "shard") -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "inference-shard",
        "app.kubernetes.io/instance": owner,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "greenshard",
        "app.kubernetes.io/managed-by": "greenshard",
        **selector_labels(owner, shard),
    }


def owner_reference(p: Pipeline) -> dict[str, Any]:
    return {
        "apiVersion": p.api_version,
        "kind": p.kind,
        "name": p.name,
        "uid": p.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _controller(meta: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """An object's controller ownerReference (None when nothing controls it)."""
    for ref in meta.get("ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("controller"):
            return ref
    return None


def controller_uid(meta: Mapping[str, Any]) -> str:
    """The uid of an object's controller ownerReference ('' when nothing controls it)."""
    ref = _controller(meta)
    return "" if ref is None else str(ref.get("uid") or "")


def controller_ref(meta: Mapping[str, Any]) -> str:
    """``Kind/name`` of an object's controller ownerReference ('' when nothing controls it)."""
    ref = _controller(meta)
    return "" if ref is None else f"{ref.get('kind') or ''}/{ref.get('name') or ''}"


def spec_hash(manifest: Mapping[str, Any]) -> str:
    text = json.dumps(
        {"labels": manifest["metadata"].get("labels"), "spec": manifest["spec"]},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _pruned(value: Any) -> Any:
    """Without the empty lists, maps and nulls the API server leaves out when it answers."""
    if isinstance(value, Mapping):
        out = {str(k): _pruned(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, [], {})}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def _amount(value: Any) -> Any:
    try:
        return parsing.parse_quantity(value)  # "80Gi" and "85899345920" are the same amount
    except Exception:
        return str(value)


def template_digest(template: Mapping[str, Any] | None) -> str:
    """A digest of the pod template fields people change by hand and the operator sets: the
    required node affinity (the pool and the packed nodes) and every container's resources.
    Computed alike on what we send and on what the API server answers, whose defaults do not
    touch these fields and whose quantities are compared as amounts, so that only a real
    change differs."""
    spec = (template or {}).get("spec") or {}
    affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
    resources = {}
    for kind in ("initContainers", "containers"):
        for container in spec.get(kind) or []:
            res = container.get("resources") or {}
            resources[f"{kind}/{container.get('name')}"] = {
                part: {str(r): _amount(v) for r, v in (res.get(part) or {}).items()}
                for part in ("limits", "requests")
            }
    text = json.dumps(
        {
            "required": _pruned(affinity.get("requiredDuringSchedulingIgnoredDuringExecution")),
            "resources": _pruned(resources),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _stamp(manifest: dict[str, Any]) -> dict[str, Any]:
    manifest["metadata"].setdefault("annotations", {})[HASH_ANNOTATION] = spec_hash(manifest)
    return manifest


# --------------------------------------------------------------------------------- the env


def pipeline_env(p: Pipeline, stage: Stage) -> list[dict[str, Any]]:
    """The wiring of one stage; r comes from the pod-index label, the rest are literals.

    ``$(GREENSHARD_PIPELINE_INDEX)`` in the address values is expanded by the kubelet because
    the variable is defined earlier in the same list."""
    s, count = stage.shard, len(p.stages)
    r = "$(GREENSHARD_PIPELINE_INDEX)"

    def address(shard: int) -> str:
        return pod_address(p, shard, r)

    return [
        {"name": "GREENSHARD_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {
            "name": "GREENSHARD_PIPELINE_INDEX",
            "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{POD_INDEX_LABEL}']"}},
        },
        {"name": "GREENSHARD_PIPELINE_COUNT", "value": str(p.replicas)},
        {"name": "GREENSHARD_SHARD_INDEX", "value": str(s)},
        {"name": "GREENSHARD_SHARD_COUNT", "value": str(count)},
        {"name": "GREENSHARD_FIRST_LAYER", "value": str(stage.first_layer)},
        {"name": "GREENSHARD_LAST_LAYER", "value": str(stage.last_layer)},
        {"name": "GREENSHARD_LAYER_PARTITION", "value": p.partition},
        {"name": "VLLM_PP_LAYER_PARTITION", "value": p.partition},
        {"name": "GREENSHARD_GPUS", "value": str(stage.gpus)},
        {"name": "GREENSHARD_POOL", "value": stage.pool},
        {"name": "GREENSHARD_LEADER_ADDRESS", "value": address(0)},
        {"name": "GREENSHARD_PREV_ADDRESS", "value": address(s - 1) if s > 0 else ""},
        {"name": "GREENSHARD_NEXT_ADDRESS", "value": address(s + 1) if s < count - 1 else ""},
    ]


# ---------------------------------------------------------------------- template checking


def template_gpus(template: Mapping[str, Any] | None) -> int | None:
    """GPUs the template's shard container (its first) asks for, None when it does not say."""
    containers = ((template or {}).get("spec") or {}).get("containers") or []
    if not containers or not isinstance(containers[0], Mapping):
        return None
    res = containers[0].get("resources") or {}
    for kind in ("limits", "requests"):
        values = res.get(kind) or {}
        if isinstance(values, Mapping) and values.get(pods.GPU_RESOURCE) is not None:
            return math.ceil(parsing.parse_quantity(values[pods.GPU_RESOURCE]) - 1e-9)
    return None


def template_gpu_problem(template: Mapping[str, Any] | None, stages: Sequence[Stage]) -> str:
    """'' when the template leaves GPUs to GreenShard (or asks exactly what every stage needs);
    else the reason, for a condition. Fewer GPUs than a stage needs cannot hold its weights;
    more would book GPUs that the plan's packing did not count."""
    asked = template_gpus(template)
    if asked is None:
        return ""
    wrong = [st for st in stages if st.gpus != asked]
    if not wrong:
        return ""
    short = [st for st in wrong if st.gpus > asked]
    worst = max(short, key=lambda st: st.gpus) if short else wrong[0]
    verb = "needs" if short else "is planned with"
    return (
        f"spec.template.spec.containers[0] asks for nvidia.com/gpu: {asked}, but shard "
        f"{worst.shard} {verb} {worst.gpus} GPUs per replica on {worst.pool} (ceil(weights x "
        "(1 + spec.model.memoryOverhead) / GPU memory)): remove the nvidia.com/gpu request, "
        "GreenShard sets it per shard (raise spec.model.memoryOverhead for more room)"
    )


# -------------------------------------------------------------------------------- builders


def _node_terms(p: Pipeline, stage: Stage, pod_spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The template's required node terms, each ANDed with the pool and the packed nodes."""
    reqs: list[dict[str, Any]] = [
        {"key": model.REGION_LABEL, "operator": "In", "values": [stage.region]}
    ]
    if stage.accelerator == model.CPU_ACCELERATOR:
        reqs.append({"key": model.GPU_PRODUCT_LABEL, "operator": "DoesNotExist"})
    else:
        reqs.append(
            {"key": model.GPU_PRODUCT_LABEL, "operator": "In", "values": [stage.accelerator]}
        )
    for key, value in sorted(p.selector.match_labels.items()):
        reqs.append({"key": key, "operator": "In", "values": [value]})
    for key, operator, values in p.selector.match_expressions:
        req: dict[str, Any] = {"key": key, "operator": operator}
        if values:
            req["values"] = list(values)
        reqs.append(req)
    fields = []
    if stage.nodes:
        fields = [{"key": "metadata.name", "operator": "In", "values": sorted(set(stage.nodes))}]
    affinity = pod_spec.get("affinity") or {}
    required = (affinity.get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or [{}]
    out = []
    for term in terms:
        merged = {**term, "matchExpressions": [*(term.get("matchExpressions") or []), *reqs]}
        if fields:
            merged["matchFields"] = [*(term.get("matchFields") or []), *fields]
        out.append(merged)
    return out


def _shard_resources(container: dict[str, Any], stage: Stage) -> None:
    res = container.setdefault("resources", {})
    if stage.gpus > 0:
        res.setdefault("limits", {})[pods.GPU_RESOURCE] = str(stage.gpus)
        if pods.GPU_RESOURCE in (res.get("requests") or {}):
            res["requests"][pods.GPU_RESOURCE] = str(stage.gpus)
    elif stage.memory_bytes > 0:
        requests = res.setdefault("requests", {})
        current = requests.get("memory")
        if current is None or parsing.parse_quantity(current) < stage.memory_bytes:
            requests["memory"] = str(stage.memory_bytes)
        limit = (res.get("limits") or {}).get("memory")
        if limit is not None and parsing.parse_quantity(limit) < stage.memory_bytes:
            res["limits"]["memory"] = str(stage.memory_bytes)


def stage_pod_template(
    p: Pipeline, stage: Stage, template: Mapping[str, Any] | None
) -> dict[str, Any]:
    pod = copy.deepcopy(dict(template or {}))
    meta = pod.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), **common_labels(p.name, stage.shard)}
    meta["annotations"] = {**(meta.get("annotations") or {}), POOL_ANNOTATION: stage.pool}
    spec = pod.setdefault("spec", {})
    terms = _node_terms(p, stage, spec)
    affinity = spec.setdefault("affinity", {})
    node = affinity.setdefault("nodeAffinity", {})
    node["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": terms}
    env = pipeline_env(p, stage)
    names = set(ENV_NAMES)
    for kind in ("initContainers", "containers"):
        for container in spec.get(kind) or []:
            kept = [e for e in container.get("env") or [] if e.get("name") not in names]
            container["env"] = [*env, *kept]  # ours first: the template's may use $(OURS)
    containers = spec.get("containers") or []
    if containers:
        _shard_resources(containers[0], stage)
    return pod


def stage_statefulset(
    p: Pipeline, stage: Stage, template: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The StatefulSet of one shard: ordinal r is stage ``stage.shard`` of pipeline r."""
    name = stage_name(p.name, stage.shard)
    return _stamp(
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {
                "name": name,
                "namespace": p.namespace,
                "labels": common_labels(p.name, stage.shard),
                "annotations": {POOL_ANNOTATION: stage.pool},
                "ownerReferences": [owner_reference(p)],
            },
            "spec": {
                "serviceName": name,
                "replicas": p.replicas,
                "podManagementPolicy": "Parallel",
                "updateStrategy": {"type": "OnDelete"},
                "selector": {"matchLabels": selector_labels(p.name, stage.shard)},
                "template": stage_pod_template(p, stage, template),
            },
        }
    )


def _stage_metadata(p: Pipeline, stage: Stage) -> dict[str, Any]:
    """Name, labels and owner of one shard's Service and PodDisruptionBudget (the
    StatefulSet's name)."""
    return {
        "name": stage_name(p.name, stage.shard),
        "namespace": p.namespace,
        "labels": common_labels(p.name, stage.shard),
        "ownerReferences": [owner_reference(p)],
    }


def stage_service(p: Pipeline, stage: Stage) -> dict[str, Any]:
    """Headless Service governing one shard's StatefulSet: per-pod DNS, even before Ready
    (a pipeline's stages find each other while they start)."""
    return _stamp(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _stage_metadata(p, stage),
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": True,
                "selector": selector_labels(p.name, stage.shard),
            },
        }
    )


def stage_disruption_budget(p: Pipeline, stage: Stage) -> dict[str, Any]:
    """PodDisruptionBudget of one shard: voluntary disruptions (node drains, evictions) take at
    most one of its replicas at a time, so with R > 1 its layers always keep R - 1 replicas.

    ``maxUnavailable: 1`` rather than ``minAvailable``: with R == 1, ``minAvailable: 1`` would
    block every drain of that node forever (the one pod can only move by being evicted), while
    ``maxUnavailable: 1`` lets the drain take it, as it must. It is 1 for every R, so the
    budget needs no change when R does, and also caps a Surge move's R + 1 replicas. A pod
    that is not Ready may always be evicted (``unhealthyPodEvictionPolicy: AlwaysAllow``): a
    crash-looping shard never blocks a drain. The operator's own rollouts delete pods directly,
    which budgets do not limit (they keep their own pace: one pipeline replica at a time)."""
    return _stamp(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": _stage_metadata(p, stage),
            "spec": {
                "maxUnavailable": 1,
                "selector": {"matchLabels": selector_labels(p.name, stage.shard)},
                "unhealthyPodEvictionPolicy": "AlwaysAllow",
            },
        }
    )


def service_ports(template: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The shard container's declared ports, else 8000 (vLLM's and SGLang's usual)."""
    containers = ((template or {}).get("spec") or {}).get("containers") or []
    ports = (containers[0].get("ports") or []) if containers else []
    out = []
    for i, port in enumerate(ports):
        number = port.get("containerPort")
        if not isinstance(number, int):
            continue
        out.append(
            {
                "name": str(port.get("name") or f"port-{i}"),
                "port": number,
                "targetPort": number,
                "protocol": str(port.get("protocol") or "TCP"),
            }
        )
    return out or [dict(DEFAULT_PORT)]


def front_service(p: Pipeline, template: Mapping[str, Any] | None) -> dict[str, Any]:
    """The pipeline's front door: a Service named after the InferenceDeployment, selecting
    stage 0 of every pipeline replica."""
    return _stamp(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": p.name,
                "namespace": p.namespace,
                "labels": common_labels(p.name, None, "frontend"),
                "ownerReferences": [owner_reference(p)],
            },
            "spec": {
                "type": "ClusterIP",
                "selector": selector_labels(p.name, 0),
                "ports": service_ports(template),
            },
        }
    )


def build_all(p: Pipeline, template: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Every object of the pipeline: Services first (names resolve as pods start), then the
    StatefulSets in shard order, then their PodDisruptionBudgets."""
    out = [front_service(p, template)]
    out += [stage_service(p, st) for st in p.stages]
    out += [stage_statefulset(p, st, template) for st in p.stages]
    out += [stage_disruption_budget(p, st) for st in p.stages]
    return out
