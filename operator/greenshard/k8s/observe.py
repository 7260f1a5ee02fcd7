"""Observe: one InferenceDeployment's body and the caches, read once into a typed value.

A pass reads cached state only (kopf indexes: nodes, GridProfiles, InferenceDeployments, shard
Deployments), so it costs no API call. :func:`observe` parses the spec, the GridProfile and the
candidate nodes once and fingerprints the inputs that planning reads; what it cannot parse is an
:class:`Invalid` with the condition reason and message the user will see.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from greenshard import model
from greenshard.errors import GreenShardError
from greenshard.k8s import resources, workloads
from greenshard.k8s.loop import fingerprint, first

Key = tuple[str, str]


@dataclass
class Caches:
    """Current cluster state, keyed as the kopf indexes key it."""

    nodes: Mapping[str, Any] = field(default_factory=dict)  # name -> node body
    profiles: Mapping[str, Any] = field(default_factory=dict)  # name -> GridProfile body
    infds: Mapping[Key, Any] = field(default_factory=dict)  # (ns, name) -> body
    shards: Any = field(default_factory=dict)  # .get((ns, owner)) -> {"Kind/name": facts}
    pods: Any = field(default_factory=dict)  # .get((ns, owner)) -> [pod facts]; owner "" foreign


def node_facts(body: Mapping[str, Any]) -> dict[str, Any]:
    """The facts of a node that planning reads (not heartbeats)."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return {
        "metadata": {"name": meta.get("name"), "labels": dict(meta.get("labels") or {})},
        "spec": {"unschedulable": bool((body.get("spec") or {}).get("unschedulable"))},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "allocatable": {
                k: v
                for k, v in (status.get("allocatable") or {"memory": "0"}).items()
                if k in ("memory", "nvidia.com/gpu")
            },
        },
    }


def deployment_facts(body: Mapping[str, Any]) -> dict[str, Any]:
    """The facts of a shard Deployment that applying and reporting read."""
    meta = body.get("metadata") or {}
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "generation": meta.get("generation", 0),
        "resourceVersion": meta.get("resourceVersion", ""),
        "annotations": dict(meta.get("annotations") or {}),
        "labels": dict(meta.get("labels") or {}),
        "replicas": (body.get("spec") or {}).get("replicas", 1),
        "status": dict(body.get("status") or {}),
    }


@dataclass(frozen=True)
class Shown:
    """What the InferenceDeployment's status shows now."""

    status: Mapping[str, Any]  # the whole status, for merge patches
    pools: tuple[Any, ...]  # status.placement[*].pool
    grams_per_hour: Any  # status.emissions.gramsPerHour (None when absent)
    optimized_at: Any  # status.lastOptimizedTime
    conditions: tuple[Mapping[str, Any], ...]

    def placement_in(self, problem: model.Problem) -> tuple[int, ...] | None:
        """The shown placement as pool indices of ``problem``, if it still maps onto it."""
        if len(self.pools) != problem.num_shards:
            return None
        keys = problem.pool_keys()
        try:
            return tuple(keys.index(pool) for pool in self.pools)
        except ValueError:
            return None


def generation_of(body: Mapping[str, Any]) -> int:
    return int(body["metadata"].get("generation", 1))


def shown(body: Mapping[str, Any]) -> Shown:
    status = body.get("status") or {}
    return Shown(
        status=status,
        pools=tuple(row.get("pool") for row in status.get("placement") or []),
        grams_per_hour=(status.get("emissions") or {}).get("gramsPerHour"),
        optimized_at=status.get("lastOptimizedTime"),
        conditions=tuple(status.get("conditions") or []),
    )


@dataclass(frozen=True)
class Invalid:
    """Inputs that cannot be planned: the Degraded reason and the message for the user."""

    reason: str
    message: str


@dataclass(frozen=True)
class Observed:
    """One InferenceDeployment and what planning it reads, parsed once."""

    key: Key
    body: Mapping[str, Any]  # the owner (Events, shard ownerReferences, the pod template)
    generation: int
    shown: Shown
    settings: resources.Settings
    deployment: model.DeploymentSpec
    profile: model.GridProfile
    nodes: tuple[model.NodeInfo, ...]
    inputs: str  # fingerprint of what planning reads

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def template(self) -> Any:
        return (self.body.get("spec") or {}).get("template")


def observe(
    key: Key,
    body: Mapping[str, Any],
    caches: Caches,
    max_qubits: int,
    allowed_service_accounts: frozenset[str] = frozenset(),
) -> Observed | Invalid:
    """The typed view of one InferenceDeployment against the caches (``max_qubits`` and
    ``allowed_service_accounts``: what this operator allows)."""
    spec = body.get("spec") or {}
    generation = generation_of(body)
    try:
        settings = resources.parse_settings(spec, max_qubits)
        resources.check_template(spec.get("template"), allowed_service_accounts)
        deployment = resources.deployment_spec(body)
    except GreenShardError as err:
        return Invalid("InvalidSpec", str(err))
    profile_body = first(caches.profiles.get(settings.grid_profile))
    if profile_body is None:
        return Invalid(
            "GridProfileNotFound",
            f"GridProfile {settings.grid_profile!r} not found: create it (e.g. kubectl apply "
            "-f crds/samples/gridprofile.yaml) or set spec.carbon.gridProfile",
        )
    try:
        profile = resources.grid_profile(profile_body)
    except GreenShardError as err:
        return Invalid("InvalidGridProfile", f"GridProfile {settings.grid_profile!r}: {err}")
    bodies = [first(v) for v in caches.nodes.values()]
    nodes = tuple(resources.node_info(n) for n in bodies if n is not None)
    candidates = sorted(
        (n.name, sorted(n.labels.items()), n.memory_bytes, n.gpu_count)
        for n in nodes
        if n.ready and not n.unschedulable and deployment.selector.matches(n.labels)
    )
    inputs = fingerprint(
        generation, spec, candidates, profile_body.get("spec"), live_intensities(profile_body)
    )
    return Observed(
        key, body, generation, shown(body), settings, deployment, profile, nodes, inputs
    )


def live_intensities(profile_body: Mapping[str, Any]) -> dict[str, Any]:
    """What planning reads from GridProfile status: the intensities (a refresh that only
    moves fetchedAt is no reason to re-plan)."""
    regions = (profile_body.get("status") or {}).get("regions") or {}
    if not isinstance(regions, Mapping):
        return {}
    return {
        str(r): e.get("intensity") if isinstance(e, Mapping) else None for r, e in regions.items()
    }


def shard_facts(caches: Caches, key: Key) -> dict[str, Any]:
    """The shard Deployments that exist now: name -> facts."""
    return dict(first(caches.shards.get(key)) or {})


def shard_available(facts: Mapping[str, Any], desired_hash: str) -> bool:
    """Whether a shard Deployment runs the desired spec, rolled out and available."""
    status = facts.get("status") or {}
    replicas = facts.get("replicas", 1)
    return bool(
        facts.get("annotations", {}).get(workloads.HASH_ANNOTATION) == desired_hash
        and status.get("observedGeneration", 0) >= facts.get("generation", 0)
        and status.get("updatedReplicas", 0) == replicas
        and status.get("availableReplicas", 0) == replicas
        and status.get("replicas", 0) == replicas
    )
