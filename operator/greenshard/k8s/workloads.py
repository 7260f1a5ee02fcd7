"""Plan -> one Deployment per shard (pure functions, tested against YAML)."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from greenshard import model, planner

DEPLOYMENT_LABEL = "greenshard.io/deployment"
SHARD_LABEL = "greenshard.io/shard"
POOL_ANNOTATION = "greenshard.io/pool"
HASH_ANNOTATION = "greenshard.io/spec-hash"


def shard_name(owner_name: str, shard: int) -> str:
    return f"{owner_name}-shard-{shard}"


def selector_labels(owner_name: str, shard: int) -> dict[str, str]:
    return {DEPLOYMENT_LABEL: owner_name, SHARD_LABEL: str(shard)}


def common_labels(owner_name: str, shard: int) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "inference-shard",
        "app.kubernetes.io/instance": owner_name,
        "app.kubernetes.io/component": "shard",
        "app.kubernetes.io/part-of": "greenshard",
        "app.kubernetes.io/managed-by": "greenshard",
        **selector_labels(owner_name, shard),
    }


def pool_requirements(
    pool_region: str, accelerator: str, selector: model.LabelSelector
) -> list[dict[str, Any]]:
    """Node requirements that pin a pod to one pool and keep the deployment's node selector."""
    reqs: list[dict[str, Any]] = [
        {"key": model.REGION_LABEL, "operator": "In", "values": [pool_region]}
    ]
    if accelerator == model.CPU_ACCELERATOR:
        reqs.append({"key": model.GPU_PRODUCT_LABEL, "operator": "DoesNotExist"})
    else:
        reqs.append({"key": model.GPU_PRODUCT_LABEL, "operator": "In", "values": [accelerator]})
    for key, value in sorted(selector.match_labels.items()):
        reqs.append({"key": key, "operator": "In", "values": [value]})
    for key, operator, values in selector.match_expressions:
        req: dict[str, Any] = {"key": key, "operator": operator}
        if values:
            req["values"] = list(values)
        reqs.append(req)
    return reqs


def _with_affinity(pod_spec: dict[str, Any], reqs: list[dict[str, Any]]) -> None:
    """AND the pool requirements into every required node-selector term of the template."""
    affinity = pod_spec.setdefault("affinity", {})
    node = affinity.setdefault("nodeAffinity", {})
    required = node.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    terms = required.get("nodeSelectorTerms") or [{}]
    merged = []
    for term in terms:
        merged.append({**term, "matchExpressions": [*(term.get("matchExpressions") or []), *reqs]})
    required["nodeSelectorTerms"] = merged


def shard_env(shard: model.Shard, shard_count: int, pool: model.Pool) -> list[dict[str, str]]:
    return [
        {"name": "GREENSHARD_SHARD_INDEX", "value": str(shard.index)},
        {"name": "GREENSHARD_SHARD_COUNT", "value": str(shard_count)},
        {"name": "GREENSHARD_FIRST_LAYER", "value": str(shard.first_layer)},
        {"name": "GREENSHARD_LAST_LAYER", "value": str(shard.last_layer)},
        {"name": "GREENSHARD_POOL", "value": pool.key},
    ]


def spec_hash(manifest: Mapping[str, Any]) -> str:
    text = json.dumps(
        {"labels": manifest["metadata"].get("labels"), "spec": manifest["spec"]},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def shard_deployment(
    owner: Mapping[str, Any],
    template: Mapping[str, Any] | None,
    shard: model.Shard,
    shard_count: int,
    pool: model.Pool,
    replicas: int,
    selector: model.LabelSelector,
) -> dict[str, Any]:
    """The Deployment of one shard, owned (controller) by the InferenceDeployment ``owner``."""
    meta = owner["metadata"]
    name = str(meta["name"])
    labels = common_labels(name, shard.index)
    pod = copy.deepcopy(dict(template or {}))
    pod_meta = pod.setdefault("metadata", {})
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **labels}
    pod_meta["annotations"] = {**(pod_meta.get("annotations") or {}), POOL_ANNOTATION: pool.key}
    pod_spec = pod.setdefault("spec", {})
    _with_affinity(pod_spec, pool_requirements(pool.region, pool.accelerator, selector))
    env = shard_env(shard, shard_count, pool)
    names = {e["name"] for e in env}
    for container in pod_spec.get("containers") or []:
        kept = [e for e in container.get("env") or [] if e.get("name") not in names]
        container["env"] = [*kept, *env]
    manifest: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": shard_name(name, shard.index),
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": {POOL_ANNOTATION: pool.key},
            "ownerReferences": [
                {
                    "apiVersion": owner.get("apiVersion", "greenshard.io/v1alpha1"),
                    "kind": owner.get("kind", "InferenceDeployment"),
                    "name": name,
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector_labels(name, shard.index)},
            "template": pod,
        },
    }
    manifest["metadata"]["annotations"][HASH_ANNOTATION] = spec_hash(manifest)
    return manifest


def shard_names(owner_name: str, plan: planner.Plan) -> list[str]:
    """The Deployment name of each shard of ``plan``, in shard order."""
    return [shard_name(owner_name, s.index) for s in plan.problem.shards]


def desired_deployments(
    owner: Mapping[str, Any],
    template: Mapping[str, Any] | None,
    plan: planner.Plan,
    replicas: int,
    selector: model.LabelSelector,
) -> list[dict[str, Any]]:
    """One Deployment per shard of ``plan``, pinned to the pool the plan puts it on."""
    return [
        shard_deployment(
            owner,
            template,
            shard,
            len(plan.problem.shards),
            plan.problem.pools[k],
            replicas,
            selector,
        )
        for shard, k in zip(plan.problem.shards, plan.solution.placement, strict=True)
    ]
