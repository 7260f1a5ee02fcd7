"""A plan -> the running pipeline: the objects to create, replace or delete, the rollout step,
and how Ready it is. Pure except :func:`apply`, which talks to the API through ``api``.

Only objects whose controller ownerReference is the InferenceDeployment are ever replaced or
deleted: the label that files an object under a deployment is a hint anyone can set. An object
that has a name the plan needs but another owner (or none) is left alone and reported as a
conflict.

Objects of the previous version (one Deployment per shard) are deleted once the StatefulSets
replacing them exist, so an upgrade leaves nothing orphaned (their pods go with them through
garbage collection).

What the API refuses does not escape :func:`apply`: the first refused call stops the writes
(what follows would mostly be refused the same way: RBAC, quota, an API server that is down),
and :func:`troubles` turns it and the conflicts into the Degraded reasons the user sees.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from greenshard import feasibility, model, planner
from greenshard.k8s import pipeline, rollout, tenancy
from greenshard.k8s.errors import KubeError

T = TypeVar("T")


class Api(Protocol):
    async def read_object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def create_object(self, manifest: dict[str, Any]) -> None: ...

    async def replace_object(self, manifest: dict[str, Any], current: dict[str, Any]) -> None: ...

    async def delete_object(self, kind: str, namespace: str, name: str) -> None: ...

    async def delete_pod(self, namespace: str, name: str) -> None: ...


def object_facts(body: Mapping[str, Any]) -> dict[str, Any]:
    """What applying and reporting read from a StatefulSet, Service, PodDisruptionBudget or
    (legacy) Deployment."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    return {
        "kind": body.get("kind") or "",
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid") or "",
        "owner": pipeline.controller_uid(meta),  # the controller ownerReference's uid: ours or not
        "generation": meta.get("generation", 0),
        "resourceVersion": meta.get("resourceVersion", ""),
        "annotations": dict(meta.get("annotations") or {}),
        "labels": dict(meta.get("labels") or {}),
        "replicas": spec.get("replicas", 1),
        # the live template's fields that drift by hand (None for a kind without a template)
        "template": pipeline.template_digest(spec["template"]) if "template" in spec else None,
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
    pods: dict[str, int] = {}
    for facts in own_pods:
        if tenancy.holds_capacity(facts):
            node = str(facts["node"])
            held[node] = held.get(node, 0) + int(facts.get("gpus", 0))
            pods[node] = pods.get(node, 0) + 1
    pools = [
        replace(
            p,
            free=tuple(max(0, f - held.get(n, 0)) for n, f in zip(p.names, p.free, strict=True)),
            slots=None
            if p.slots is None
            else tuple(max(0, x - pods.get(n, 0)) for n, x in zip(p.names, p.slots, strict=True)),
        )
        for p in cap.pools
    ]
    more = feasibility.Capacity.build(pools, cap.demand, cap.replicas + 1)
    return all(
        more.fits_shards(k, shards)
        for k, shards in model.shards_by_pool(plan.solution.placement).items()
    )


@dataclass(frozen=True)
class Refused:
    """A call of :func:`apply` that the API refused (``verb`` as RBAC names it)."""

    verb: str  # create, update, delete, get
    kind: str
    namespace: str
    name: str
    error: KubeError


@dataclass
class Applied:
    """What one apply did and saw."""

    names: list[str]  # StatefulSet per shard, in shard order
    ready: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    rollout: rollout.Decision | None = None
    writes: int = 0
    refused: Refused | None = None  # the call that stopped the writes
    conflicts: list[str] = field(default_factory=list)  # "Kind/name" we need but do not own
    nudged: list[str] = field(default_factory=list)  # "Kind/name" of what stale_objects acted on


class _RefusedError(Exception):
    def __init__(self, refused: Refused) -> None:
        self.refused = refused


async def _call(verb: str, kind: str, namespace: str, name: str, call: Awaitable[T]) -> T:
    try:
        return await call
    except KubeError as err:
        raise _RefusedError(Refused(verb, kind, namespace, name, err)) from err


def owned_by(p: pipeline.Pipeline, existing: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The objects of ``existing`` that the InferenceDeployment controls."""
    return {k: f for k, f in existing.items() if p.uid and f.get("owner") == p.uid}


async def apply(
    api: Api,
    p: pipeline.Pipeline,
    template: Mapping[str, Any] | None,
    existing: Mapping[str, Mapping[str, Any]],  # "Kind/name" -> object_facts
    pods: Sequence[Mapping[str, Any]],  # tenancy.pod_facts of this deployment's pods
    spare_fits: bool,
    nudge: frozenset[str] = frozenset(),
) -> Applied:
    """Create or replace what differs, take the next rollout step, delete what is no longer
    planned (other shards' objects, the previous version's Deployments). Only objects the
    InferenceDeployment controls are replaced or deleted; a refused call stops the writes and
    is in :attr:`Applied.refused`. What ``nudge`` names (see :func:`stale_objects`): a
    StatefulSet is replaced unchanged but for :data:`RESYNC_ANNOTATION` (when nothing else is
    written to it), a pod is deleted."""
    ours = owned_by(p, existing)
    sets = [pipeline.stage_statefulset(p, st, template) for st in p.stages]
    names = [s["metadata"]["name"] for s in sets]
    stages = [
        rollout.stage_state(ours[f"StatefulSet/{n}"]) for n in names if f"StatefulSet/{n}" in ours
    ]
    set_uids = {f["uid"] for f in ours.values() if f.get("kind") == "StatefulSet" and f["uid"]}
    own_pods = [f for f in pods if f.get("controller") in set_uids]  # not a look-alike's
    pod_states = [s for s in (rollout.pod_state(f) for f in own_pods) if s is not None]
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
    # after the StatefulSets: a budget refused (a chart whose RBAC predates it) stops no shard
    desired += [pipeline.stage_disruption_budget(p, st) for st in p.stages]
    out = Applied(names, rollout=decision)
    try:
        await _write(api, p, desired, existing, ours, decision, names, out, nudge)
    except _RefusedError as stop:
        out.refused = stop.refused
    for manifest in sets:
        name = manifest["metadata"]["name"]
        if stage_ready(ours.get(f"StatefulSet/{name}"), manifest, p.replicas):
            out.ready.append(name)
        else:
            out.waiting.append(name)
    return out


async def _write(
    api: Api,
    p: pipeline.Pipeline,
    desired: Sequence[dict[str, Any]],
    existing: Mapping[str, Mapping[str, Any]],
    ours: Mapping[str, Mapping[str, Any]],
    decision: rollout.Decision,
    names: Sequence[str],
    out: Applied,
    nudge: frozenset[str] = frozenset(),
) -> None:
    wanted = set()
    for manifest in desired:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        key = f"{kind}/{name}"
        wanted.add(key)
        current = ours.get(key)
        want_hash = manifest["metadata"]["annotations"][pipeline.HASH_ANNOTATION]
        if current is None and key in existing:
            out.conflicts.append(key)  # labelled as ours, controlled by another (or nobody)
        elif current is None:
            if not await _create(api, p, manifest):
                out.conflicts.append(key)
            out.writes += 1
        elif current.get("annotations", {}).get(pipeline.HASH_ANNOTATION) != want_hash or (
            drifted(current, manifest)
        ):
            await _call(
                "update", kind, p.namespace, name, api.replace_object(manifest, dict(current))
            )
            out.writes += 1
        elif key in nudge:
            await _call(
                "update",
                kind,
                p.namespace,
                name,
                api.replace_object(resynced(manifest, current), dict(current)),
            )
            out.nudged.append(key)
            out.writes += 1
    for name in decision.delete:
        await _call("delete", "Pod", p.namespace, name, api.delete_pod(p.namespace, name))
        out.writes += 1
    for key in sorted(k for k in nudge if k.startswith("Pod/")):
        name = key.removeprefix("Pod/")
        await _call("delete", "Pod", p.namespace, name, api.delete_pod(p.namespace, name))
        out.nudged.append(key)
        out.writes += 1
    all_sets_exist = all(f"StatefulSet/{n}" in ours for n in names)
    for key in sorted(ours):
        if key in wanted:
            continue
        kind, name = key.split("/", 1)
        if kind == "Deployment" and not all_sets_exist:
            continue  # the previous version's pods serve until the StatefulSets exist
        await _call("delete", kind, p.namespace, name, api.delete_object(kind, p.namespace, name))
        out.writes += 1


# Touched (its value counts up) on a StatefulSet whose status stopped following its spec or its
# pods: see :func:`stale_objects`.
RESYNC_ANNOTATION = "greenshard.io/resync"


def stale_objects(
    p: pipeline.Pipeline,
    existing: Mapping[str, Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
) -> dict[str, str]:
    """What kube-controller-manager should have fixed and has not yet, each ("Kind/name") with
    what is wrong:

    * one of our StatefulSets whose status lags what the API already shows:
      ``status.observedGeneration`` behind ``metadata.generation``, or ``status.readyReplicas``
      below the number of its pods that are Ready;
    * a pod named as one of our StatefulSets' pods but controlled by an earlier StatefulSet of
      that name, which is gone (its uid is not the set's): garbage by the garbage collector's
      rules, and until it goes the set cannot create its pod ("already exists").

    A lag of seconds is normal; one that lasts means the controller stopped looking: kube-
    controller-manager's controllers retry a failed sync with a per-object backoff that doubles
    up to 1000 s (client-go's default controller rate limiter), so after a few API server
    restarts in a row a set or an orphan may wait up to 16.7 minutes with nothing changing. The
    caller acts once a lag has lasted: it touches the set (an update queues it in the
    StatefulSet controller at once) or deletes the orphan (what the garbage collector would)."""
    sets = {
        str(f["name"]): f for f in owned_by(p, existing).values() if f.get("kind") == "StatefulSet"
    }
    ready: dict[str, int] = {}
    out: dict[str, str] = {}
    for facts in pods:
        uid = str(facts.get("controller") or "")
        if facts.get("ready") and not facts.get("deleting"):
            ready[uid] = ready.get(uid, 0) + 1
        name = str(facts.get("name") or "")
        owner = sets.get(name.rsplit("-", 1)[0])
        if (
            owner is not None
            and uid
            and uid != owner["uid"]
            and facts.get("controllerRef") == f"StatefulSet/{owner['name']}"
            and not facts.get("deleting")
        ):
            out[f"Pod/{name}"] = (
                f"controlled by StatefulSet {owner['name']} uid {uid}, which is gone (the set of "
                f"that name is uid {owner['uid']})"
            )
    for name, facts in sets.items():
        status = facts.get("status") or {}
        generation = int(facts.get("generation") or 0)
        observed = int(status.get("observedGeneration") or 0)
        shown = int(status.get("readyReplicas") or 0)
        seen = ready.get(str(facts.get("uid") or ""), 0)
        if observed < generation:
            out[f"StatefulSet/{name}"] = (
                f"status.observedGeneration {observed} is behind generation {generation}"
            )
        elif shown < seen:
            out[f"StatefulSet/{name}"] = (
                f"status.readyReplicas {shown} but {seen} of its pods are Ready"
            )
    return dict(sorted(out.items()))


def resynced(manifest: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """``manifest`` (the live spec, as the spec-hash says) with the resync annotation counted up
    from the live one: an update that changes no spec (no new generation) but is an event."""
    live = str((current.get("annotations") or {}).get(RESYNC_ANNOTATION) or "0")
    count = int(live) + 1 if live.isdigit() else 1
    meta = manifest["metadata"]
    return {
        **manifest,
        "metadata": {
            **meta,
            "annotations": {**meta.get("annotations", {}), RESYNC_ANNOTATION: str(count)},
        },
    }


def drifted(current: Mapping[str, Any], manifest: Mapping[str, Any]) -> bool:
    """Whether a StatefulSet whose spec-hash annotation is ours was changed by hand since:
    scaled (``kubectl scale``), or its pods' node affinity or resources edited. The annotation
    alone does not notice: it stays as we wrote it."""
    if manifest["kind"] != "StatefulSet":
        return False
    spec = manifest["spec"]
    return bool(
        current.get("replicas") != spec["replicas"]
        or current.get("template") != pipeline.template_digest(spec["template"])
    )


async def _create(api: Api, p: pipeline.Pipeline, manifest: dict[str, Any]) -> bool:
    """Create; False when an object of that name exists and is not ours."""
    kind, name = manifest["kind"], manifest["metadata"]["name"]
    try:
        await api.create_object(manifest)
    except KubeError as err:
        if err.status != 409:
            raise _RefusedError(Refused("create", kind, p.namespace, name, err)) from err
        # Ours, created by an earlier pass whose watch event has not arrived yet (next pass
        # sees it), or someone else's that our index does not see (it lacks our label).
        live = await _call("get", kind, p.namespace, name, api.read_object(kind, p.namespace, name))
        if live is not None and pipeline.controller_uid(live.get("metadata") or {}) != p.uid:
            return False
    return True


# --------------------------------------------------------------------------- what went wrong

RESOURCES = {  # kind -> resource as RBAC rules and `kubectl auth can-i` name it
    "StatefulSet": "statefulsets.apps",
    "Deployment": "deployments.apps",
    "Service": "services",
    "Pod": "pods",
    "PodDisruptionBudget": "poddisruptionbudgets.policy",
}


@dataclass(frozen=True)
class Trouble:
    """One thing an apply could not do: the Degraded reason and message, and what makes it
    distinct (one Warning Event per key). A transient one is retried quietly at first."""

    reason: str  # Conflict, Forbidden, ApplyFailed, ApiUnavailable
    message: str
    key: str
    transient: bool = False


def troubles(p: pipeline.Pipeline, applied: Applied) -> list[Trouble]:
    """The refused call (if any) first, then each object we need but do not own."""
    out = [refusal(applied.refused)] if applied.refused else []
    for key in applied.conflicts:
        kind, name = key.split("/", 1)
        out.append(
            Trouble(
                "Conflict",
                f"{kind} {p.namespace}/{name} exists and is not controlled by {p.kind} "
                f"{p.name}: delete or rename it",
                f"Conflict/{key}",
            )
        )
    return out


def transient(refused: Refused) -> bool:
    """Errors that usually pass by themselves: the API server busy, down or slow; a replace
    that raced another write (409, stale resourceVersion) or a deletion (404); the read after a
    409 on create finding nothing; a 403 because the namespace is being deleted (no rights
    are missing: the InferenceDeployment goes with it)."""
    status = refused.error.status
    if status == 403 and "being terminated" in refused.error.message:
        return True
    if status in (404, 409):
        return refused.verb in ("update", "get")
    return status in (0, 408, 429) or status >= 500


def refusal(refused: Refused) -> Trouble:
    err = refused.error
    what = f"{refused.verb} {refused.kind} {refused.namespace}/{refused.name}"
    if transient(refused):
        return Trouble("ApiUnavailable", f"{what} failed ({err})", f"ApiUnavailable/{what}", True)
    if err.status == 403:
        resource = RESOURCES.get(refused.kind, refused.kind.lower())
        return Trouble(
            "Forbidden",
            f"{what} was refused ({err}): the operator may not {refused.verb} {resource} in "
            f"namespace {refused.namespace}; check the chart's RBAC (its ClusterRole; `kubectl "
            f"auth can-i {refused.verb} {resource} -n {refused.namespace} "
            "--as=system:serviceaccount:<namespace>:<name>`) and the namespace's ResourceQuota "
            "and admission policies",
            f"Forbidden/{what}",
        )
    # 422 Invalid / 400 BadRequest name the field; anything else is shown as the API said it
    return Trouble("ApplyFailed", f"{what} was rejected ({err})", f"ApplyFailed/{what}")


def unavailable(last: Trouble, attempts: int) -> Trouble:
    """Transient failures that did not pass: ``attempts`` passes in a row failed."""
    return Trouble(
        "ApiUnavailable",
        f"the Kubernetes API failed {attempts} or more attempts in a row, the last: "
        f"{last.message}; retrying with backoff (up to 5 minutes apart)",
        "ApiUnavailable",
    )


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
