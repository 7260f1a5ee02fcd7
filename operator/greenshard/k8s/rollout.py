"""Moving running shards without dropping a pipeline stage (pure decisions).

The shard StatefulSets use ``updateStrategy: OnDelete``: a new template (a shard moved) changes
no pod until the operator deletes it. Each pass, :func:`decide` looks at the StatefulSets and
their pods and returns what to do next:

* **Surge** (when free GPUs allow one more pipeline replica on the new placement): every
  StatefulSet is scaled to R + 1, so pipeline replica R starts on the new placement; once it is
  Ready, the old pipeline replicas are replaced one at a time (highest index first), each only
  when every other pipeline is Ready; then the StatefulSets go back to R. Serving capacity never
  drops below R pipelines: new pods are Ready before old ones go.
* **OneAtATime** (no room for a spare): the old pipeline replicas are replaced one at a time,
  each only when every other pipeline is Ready, so R - 1 pipelines keep serving.

A pipeline replica is the unit because its stages form one process group: replacing one stage
restarts the whole pipeline anyway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SURGE = "Surge"
ONE_AT_A_TIME = "OneAtATime"


@dataclass(frozen=True)
class StageState:
    """One shard's StatefulSet as observed."""

    shard: int
    name: str
    replicas: int  # spec.replicas
    update_revision: str  # status.updateRevision ('' until the controller saw this spec)
    current: bool  # status.observedGeneration >= metadata.generation


@dataclass(frozen=True)
class PodState:
    name: str
    shard: int
    pipeline: int
    revision: str
    ready: bool
    deleting: bool = False


@dataclass
class Decision:
    replicas: int  # what every StatefulSet's spec.replicas should be
    delete: list[str] = field(default_factory=list)  # pods to delete now
    strategy: str = ""  # '' when nothing is moving
    message: str = ""

    @property
    def moving(self) -> bool:
        return bool(self.strategy)


def decide(
    stages: Sequence[StageState], pods: Sequence[PodState], replicas: int, surge_fits: bool
) -> Decision:
    """The next step of the move (see the module docstring). ``replicas`` is R."""
    if not stages or any(not s.current or not s.update_revision for s in stages):
        return Decision(max([replicas, *(s.replicas for s in stages)]))  # wait for the controller
    revision = {s.shard: s.update_revision for s in stages}
    by_pipeline: dict[int, list[PodState]] = {}
    for pod in pods:
        by_pipeline.setdefault(pod.pipeline, []).append(pod)

    def outdated(r: int) -> list[PodState]:
        return [p for p in by_pipeline.get(r, []) if p.revision != revision.get(p.shard)]

    def ready(r: int) -> bool:
        members = by_pipeline.get(r, [])
        return len(members) == len(stages) and all(
            p.ready and not p.deleting and p.revision == revision.get(p.shard) for p in members
        )

    old = [r for r in range(replicas) if outdated(r)]
    surging = any(s.replicas > replicas for s in stages)
    if not old:
        if surging and all(ready(r) for r in range(replicas)):
            return Decision(replicas, strategy=SURGE, message="move done: removing the spare")
        return Decision(replicas + 1 if surging else replicas)
    strategy = SURGE if (surging or surge_fits) else ONE_AT_A_TIME
    target = replicas + 1 if strategy == SURGE else replicas
    done = replicas - len(old)
    if strategy == SURGE and not ready(replicas):
        stale = outdated(replicas)
        if stale and not any(p.deleting for p in by_pipeline.get(replicas, [])):
            # Left over from a larger R (say 2 -> 1 with a move): on OnDelete it would keep its
            # old template forever and the spare would never be Ready. R pipelines still serve.
            return Decision(
                target,
                delete=sorted(p.name for p in stale),
                strategy=strategy,
                message=f"replacing pipeline replica {replicas}, left from the previous "
                f"replica count, as the spare ({done}/{replicas} replaced)",
            )
        return Decision(
            target,
            strategy=strategy,
            message=f"starting spare pipeline replica {replicas} on the new placement "
            f"({done}/{replicas} replaced)",
        )
    r = max(old)
    if any(p.deleting for p in by_pipeline.get(r, [])):
        return Decision(
            target, strategy=strategy, message=f"replacing pipeline replica {r} ({done}/{replicas})"
        )
    others = [q for q in range(target) if q != r]
    waiting = [q for q in others if not ready(q) and not outdated(q)]
    if waiting:
        return Decision(
            target,
            strategy=strategy,
            message=f"waiting for pipeline replica {waiting[0]} to be Ready before replacing "
            f"replica {r} ({done}/{replicas} replaced)",
        )
    # Every other pipeline serves (old or new): replace pipeline r, all its stages at once.
    return Decision(
        target,
        delete=sorted(p.name for p in outdated(r)),
        strategy=strategy,
        message=f"replacing pipeline replica {r} ({done}/{replicas} replaced, "
        + ("a spare pipeline serves meanwhile" if strategy == SURGE else "no GPUs for a spare")
        + ")",
    )


def stage_state(facts: Mapping[str, Any]) -> StageState:
    status = facts.get("status") or {}
    return StageState(
        shard=int((facts.get("labels") or {}).get("greenshard.io/shard", -1)),
        name=str(facts.get("name")),
        replicas=int(facts.get("replicas", 0)),
        update_revision=str(status.get("updateRevision") or ""),
        current=int(status.get("observedGeneration", 0)) >= int(facts.get("generation", 0)),
    )


def pod_state(facts: Mapping[str, Any]) -> PodState | None:
    try:
        return PodState(
            name=str(facts["name"]),
            shard=int(facts["shard"]),
            pipeline=int(facts["podIndex"]),
            revision=str(facts.get("revision", "")),
            ready=bool(facts.get("ready")),
            deleting=bool(facts.get("deleting")),
        )
    except (KeyError, ValueError):
        return None
