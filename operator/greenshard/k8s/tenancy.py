"""Several InferenceDeployments and other workloads share the GPUs: what each plan must count
as held by others (pure).

For the deployment being planned, a node's GPUs (memory on cpu nodes, and pod slots) are held by

* every pod bound to it that this deployment does not own (phase not Succeeded/Failed), except
  the pods of *other* InferenceDeployments, which are counted through their bookings instead:
* each other InferenceDeployment books, per node, the larger of what its plan packs there
  (``gpusPerReplica`` and ``memoryBytesPerReplica`` of each replica, and one pod slot each, from
  its in-memory plan when this operator made it in this pass, else from its ``status.packing``)
  and what its pods bound there request. So a plan
  made a moment ago but not yet created is booked, and so are pods still running where an
  older plan put them (a move in progress).

Two deployments planned in the same pass therefore never book the same GPU.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from greenshard import feasibility, pods
from greenshard.k8s import pipeline

Key = tuple[str, str]
REVISION_LABEL = "controller-revision-hash"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def pod_facts(body: Mapping[str, Any]) -> dict[str, Any]:
    """What capacity accounting and rollouts read from a pod (kept in the operator's index)."""
    meta = body.get("metadata") or {}
    labels = dict(meta.get("labels") or {})
    status = body.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    try:
        usage = pods.pod_usage(body)
        gpus, memory = usage.gpus, usage.memory_bytes
    except Exception:  # a malformed request is the scheduler's business, not ours
        gpus, memory = 0, 0.0
    return {
        "namespace": meta.get("namespace", ""),
        "name": meta.get("name", ""),
        "node": (body.get("spec") or {}).get("nodeName") or "",
        "phase": status.get("phase") or "Pending",
        "owner": labels.get(pods.OWNER_LABEL, ""),
        "controller": pipeline.controller_uid(meta),  # rollouts delete only their sets' pods
        "controllerRef": pipeline.controller_ref(meta),  # Kind/name (a pod left by a gone set)
        "shard": labels.get("greenshard.io/shard", ""),
        "podIndex": labels.get(POD_INDEX_LABEL, ""),
        "revision": labels.get(REVISION_LABEL, ""),
        "ready": ready,
        "deleting": bool(meta.get("deletionTimestamp")),
        "gpus": gpus,
        "memoryBytes": memory,
    }


def holds_capacity(facts: Mapping[str, Any]) -> bool:
    return bool(facts.get("node")) and facts.get("phase") not in pods.TERMINAL_PHASES


@dataclass
class Booking:
    """GPUs, cpu-pool memory and pod slots one deployment books per node."""

    gpus: dict[str, int] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)
    pods: dict[str, int] = field(default_factory=dict)

    def add(self, node: str, gpus: int, memory: float = 0.0) -> None:
        """One pod (a replica) on ``node``."""
        self.gpus[node] = self.gpus.get(node, 0) + gpus
        self.memory[node] = self.memory.get(node, 0.0) + memory
        self.pods[node] = self.pods.get(node, 0) + 1


def booking_from_status(status: Mapping[str, Any]) -> Booking:
    """What an InferenceDeployment's status says it packed: node -> GPUs, memory, pods."""
    booking = Booking()
    rows = [
        r
        for r in status.get("placement") or []
        if isinstance(r, Mapping) and isinstance(r.get("shard"), int)
    ]
    gpus = {int(r["shard"]): _count(r.get("gpusPerReplica")) for r in rows}
    memory = {int(r["shard"]): _count(r.get("memoryBytesPerReplica")) for r in rows}
    packing = status.get("packing") or {}
    if not isinstance(packing, Mapping):
        return booking
    for nodes in packing.values():
        if not isinstance(nodes, Mapping):
            continue
        for node, shards in nodes.items():
            for shard in shards or []:
                if isinstance(shard, int):
                    booking.add(str(node), gpus.get(shard, 0), memory.get(shard, 0))
    return booking


def _count(value: object) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def booking_from_packing(
    packing: Mapping[str, Mapping[str, list[int]]],
    gpus_per_replica: list[int],
    memory_per_replica: list[int] | None = None,
) -> Booking:
    booking = Booking()
    for nodes in packing.values():
        for node, shards in nodes.items():
            for shard in shards:
                memory = memory_per_replica[shard] if memory_per_replica else 0
                booking.add(node, gpus_per_replica[shard], memory)
    return booking


def held_by_others(
    key: Key,
    pod_facts_all: Iterable[Mapping[str, Any]],
    bookings: Mapping[Key, Booking],
) -> tuple[dict[str, feasibility.NodeUsage], dict[str, dict[str, int]]]:
    """(usage per node, holders per node: who -> GPUs) for the deployment ``key``.

    ``bookings`` holds every other InferenceDeployment that exists (pods labelled with an owner
    that is not in it are foreign workloads, counted like any other pod)."""
    bound: dict[Key, Booking] = {}
    usage: dict[str, feasibility.NodeUsage] = {}
    holders: dict[str, dict[str, int]] = {}

    def hold(node: str, who: str, gpus: int, memory: float, pods: int) -> None:
        usage[node] = usage.get(node, feasibility.NodeUsage()).plus(gpus, memory, pods)
        if gpus:
            holders.setdefault(node, {})[who] = holders.get(node, {}).get(who, 0) + gpus

    for facts in pod_facts_all:
        if not holds_capacity(facts):
            continue
        owner: Key = (str(facts.get("namespace")), str(facts.get("owner")))
        if facts.get("owner") and owner == key:
            continue  # ours
        if facts.get("owner") and owner in bookings:
            bound.setdefault(owner, Booking()).add(
                str(facts["node"]), int(facts.get("gpus", 0)), float(facts.get("memoryBytes", 0))
            )
            continue
        hold(
            str(facts["node"]),
            f"pod {facts.get('namespace')}/{facts.get('name')}",
            int(facts.get("gpus", 0)),
            float(facts.get("memoryBytes", 0.0)),
            1,
        )
    for other, booking in bookings.items():
        if other == key:
            continue
        pods_there = bound.get(other, Booking())
        who = f"InferenceDeployment {other[0]}/{other[1]}"
        for node in set(booking.pods) | set(pods_there.pods):
            gpus = max(booking.gpus.get(node, 0), pods_there.gpus.get(node, 0))
            memory = max(booking.memory.get(node, 0.0), pods_there.memory.get(node, 0.0))
            slots = max(booking.pods.get(node, 0), pods_there.pods.get(node, 0))
            hold(node, who, gpus, memory, slots)
    return usage, holders


def holders_by_pool(
    pool_nodes: Mapping[str, tuple[str, ...]], holders: Mapping[str, Mapping[str, int]]
) -> dict[str, str]:
    """Pool key -> 'who: n GPUs, ...' for the status."""
    out: dict[str, str] = {}
    for pool, nodes in pool_nodes.items():
        total: dict[str, int] = {}
        for node in nodes:
            for who, gpus in (holders.get(node) or {}).items():
                total[who] = total.get(who, 0) + gpus
        if total:
            out[pool] = ", ".join(f"{who}: {n}" for who, n in sorted(total.items()))
    return out
