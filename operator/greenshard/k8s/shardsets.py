"""A plan -> the running pipeline: the objects to create, replace or delete, the rollout step,
and how Ready it is. Pure except :func:`apply`, which talks to the API through ``api``.

Objects of the previous version (one Deployment per shard) are deleted once the StatefulSets
replacing them exist, so an upgrade leaves nothing orphaned (their pods go with them through
garbage collection).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from greenshard import feasibility, model, planner
from greenshard.k8s import pipeline, rollout, tenancy
from greenshard.k8s.errors import KubeError


class Api(Protocol):
    async def create_object(self, manifest: dict[str, Any]) -> None: ...

    async def replace_object(self, manifest: dict[str, Any], current: dict[str, Any]) -> None: ...

    async def delete_object(self, kind: str, namespace: str, name: str) -> None: ...

    async def delete_pod(self, namespace: str, name: str) -> None: ...


def object_facts(body: Mapping[str, Any]) -> dict[str, Any]:
    """What applying and reporting read from a StatefulSet, Service or (legacy) Deployment."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    return {
        "kind": body.get("kind") or "",
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "generation": meta.get("generation", 0),
        "resourceVersion": meta.get("resourceVersion", ""),
        "annotations": dict(meta.get("annotations") or {}),
        "labels": dict(meta.get("labels") or {}),
        "replicas": spec.get("replicas", 1),
        "clusterIP": spec.get("clusterIP"),
        "status": dict(body.get("status") or {}),
    }


def pipeline_of(
    body: Mapping[str, Any], plan: planner.Plan, selector: model.LabelSelector
) -> pipeline.Pipeline:
    """The pipeline a plan describes: per shard its pool, GPUs and the nodes it was packed on."""
    meta = body["metadata"]
    problem, placement = plan.problem, plan.solution.placement
    gpus = model.gpus_per_replica(problem, placement)
    packing = model.packing(problem, placement)
    stages = []
    for shard, k in zip(problem.shards, placement, strict=True):
        pool = problem.pools[k]
        nodes = tuple(sorted(n for n, shards in packing[pool.key].items() if shard.index in shards))
        cpu = problem.capacity.pools[k].unit == feasibility.BYTES
        stages.append(
            pipeline.Stage(
                shard=shard.index,
                first_layer=shard.first_layer,
                last_layer=shard.last_layer,
                region=pool.region,
                accelerator=pool.accelerator,
                gpus=gpus[shard.index],
                memory_bytes=problem.capacity.demand[shard.index][k] if cpu else 0,
                nodes=nodes,
            )
        )
    return pipeline.Pipeline(
        name=str(meta["name"]),
        namespace=str(meta["namespace"]),
        uid=str(meta.get("uid", "")),
        stages=tuple(stages),
        replicas=problem.replicas,
        selector=selector,
        api_version=str(body.get("apiVersion") or "greenshard.io/v1alpha1"),
        kind=str(body.get("kind") or "InferenceDeployment"),
    )


def surge_fits(plan: planner.Plan, own_pods: Sequence[Mapping[str, Any]]) -> bool:
    """Whether R + 1 pipeline replicas of the plan pack into what is free with this
    deployment's own running pods still holding their GPUs: then a spare pipeline can start on
    the new placement and the old pipelines still have room to come back there one by one.
    (Conservative: own pods already on the new placement are counted twice.)"""
    problem = plan.problem
    cap = problem.capacity
    held: dict[str, int] = {}
    for facts in own_pods:
        if tenancy.holds_capacity(facts):
            held[str(facts["node"])] = held.get(str(facts["node"]), 0) + int(facts.get("gpus", 0))
    pools = [
        replace(
            p,
            free=tuple(max(0, f - held.get(n, 0)) for n, f in zip(p.names, p.free, strict=True)),
        )
        for p in cap.pools
    ]
    more = feasibility.Capacity.build(pools, cap.demand, cap.replicas + 1)
    return all(
        more.fits_shards(k, shards)
        for k, shards in model.shards_by_pool(plan.solution.placement).items()
    )


@dataclass
class Applied:
    """What one apply did and saw."""

    names: list[str]  # StatefulSet per shard, in shard order
    ready: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    rollout: rollout.Decision | None = None
    writes: int = 0


async def apply(
    api: Api,
    p: pipeline.Pipeline,
    template: Mapping[str, Any] | None,
    existing: Mapping[str, Mapping[str, Any]],  # "Kind/name" -> object_facts
    pods: Sequence[Mapping[str, Any]],  # tenancy.pod_facts of this deployment's pods
    spare_fits: bool,
) -> Applied:
    """Create or replace what differs, take the next rollout step, delete what is no longer
    planned (other shards' objects, the previous version's Deployments)."""
    sets = [pipeline.stage_statefulset(p, st, template) for st in p.stages]
    names = [s["metadata"]["name"] for s in sets]
    stages = [
        rollout.stage_state(existing[f"StatefulSet/{n}"])
        for n in names
        if f"StatefulSet/{n}" in existing
    ]
    pod_states = [s for s in (rollout.pod_state(f) for f in pods) if s is not None]
    decision = rollout.decide(stages, pod_states, p.replicas, spare_fits)
    if len(stages) < len(sets):
        decision = rollout.Decision(p.replicas)  # first creation: nothing moves yet
    desired: list[dict[str, Any]] = [pipeline.front_service(p, template)]
    desired += [pipeline.stage_service(p, st) for st in p.stages]
    for manifest in sets:
        if decision.replicas != p.replicas:
            manifest["spec"]["replicas"] = decision.replicas
            manifest["metadata"]["annotations"][pipeline.HASH_ANNOTATION] = pipeline.spec_hash(
                {**manifest, "metadata": {**manifest["metadata"], "annotations": {}}}
            )
        desired.append(manifest)
    out = Applied(names, rollout=decision)
    wanted = set()
    for manifest in desired:
        key = f"{manifest['kind']}/{manifest['metadata']['name']}"
        wanted.add(key)
        current = existing.get(key)
        want_hash = manifest["metadata"]["annotations"][pipeline.HASH_ANNOTATION]
        if current is None:
            await _create(api, manifest)
            out.writes += 1
        elif current.get("annotations", {}).get(pipeline.HASH_ANNOTATION) != want_hash:
            await api.replace_object(manifest, dict(current))
            out.writes += 1
    for name in decision.delete:
        await api.delete_pod(p.namespace, name)
        out.writes += 1
    all_sets_exist = all(f"StatefulSet/{n}" in existing for n in names)
    for key in sorted(existing):
        if key in wanted:
            continue
        kind, name = key.split("/", 1)
        if kind == "Deployment" and not all_sets_exist:
            continue  # the previous version's pods serve until the StatefulSets exist
        await api.delete_object(kind, p.namespace, name)
        out.writes += 1
    for manifest in sets:
        name = manifest["metadata"]["name"]
        if stage_ready(existing.get(f"StatefulSet/{name}"), manifest, p.replicas):
            out.ready.append(name)
        else:
            out.waiting.append(name)
    return out


async def _create(api: Api, manifest: dict[str, Any]) -> None:
    try:
        await api.create_object(manifest)
    except KubeError as err:
        if err.status != 409:
            raise
        # created by an earlier pass whose watch event has not arrived yet: next pass


def stage_ready(
    facts: Mapping[str, Any] | None, manifest: Mapping[str, Any], replicas: int
) -> bool:
    """The StatefulSet runs the desired template with R Ready pods on the update revision."""
    if facts is None:
        return False
    status = facts.get("status") or {}
    want = manifest["metadata"]["annotations"][pipeline.HASH_ANNOTATION]
    spec_replicas = int(facts.get("replicas", 0))
    return bool(
        facts.get("annotations", {}).get(pipeline.HASH_ANNOTATION) == want
        and status.get("observedGeneration", 0) >= facts.get("generation", 0)
        and spec_replicas == replicas
        and status.get("readyReplicas", 0) >= replicas
        and status.get("updatedReplicas", 0) >= replicas  # OnDelete: currentRevision lags
    )
