"""The watch cache: nodes and the named GridProfile, read as immutable per-hour snapshots of
each node's carbon facts (thread-safe)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from greenshard import carbon, carbon_score, model, parsing
from greenshard.carbon_score import NodeCarbon
from greenshard.errors import InputError
from greenshard.k8s import resources
from greenshard.k8s.extender.metrics import ExtenderMetrics

log = structlog.get_logger("greenshard.extender")


@dataclass(frozen=True)
class Snapshot:
    """Every cached node's carbon facts at one hour under one GridProfile version."""

    generation: int
    hour: int
    profile: model.GridProfile | None
    problem: str  # why there is no profile ("" when there is one)
    carbon: Mapping[str, NodeCarbon]
    grams: Mapping[str, float]  # gCO2e per teraflop of the nodes whose facts are known
    entries: Mapping[str, tuple[str, ...]]  # '{"Host":<name>,"Score":<k>}' for k = 0..10


class ClusterState:
    """Nodes and the named GridProfile as the watches last saw them (thread-safe).

    Readers get an immutable :class:`Snapshot`, rebuilt only when a node or the profile changed
    or the UTC hour moved on."""

    def __init__(
        self,
        grid_profile: str,
        hour: Callable[[], int] = carbon.current_utc_hour,
        metrics: ExtenderMetrics | None = None,
    ) -> None:
        self.grid_profile = grid_profile
        self.hour = hour
        self.metrics = metrics
        self._lock = threading.Lock()
        self._nodes: dict[str, model.NodeInfo] = {}
        self._profile: model.GridProfile | None = None
        self._problem = f"GridProfile {grid_profile} not seen yet"
        self._generation = 0
        self._snapshot: Snapshot | None = None
        self.nodes_synced = threading.Event()
        self.profile_synced = threading.Event()

    # -- writes (the watches) ------------------------------------------------------------
    def replace_nodes(self, bodies: Iterable[Mapping[str, Any]]) -> None:
        nodes = {}
        for body in bodies:
            node = _parse_node(body)
            if node is not None:
                nodes[node.name] = node
        with self._lock:
            self._nodes = nodes
            self._changed()
        self.nodes_synced.set()

    def upsert_node(self, body: Mapping[str, Any]) -> None:
        node = _parse_node(body)
        if node is None:
            return
        with self._lock:
            if self._nodes.get(node.name) == node:
                return
            self._nodes[node.name] = node
            self._changed()

    def delete_node(self, name: str) -> None:
        with self._lock:
            if self._nodes.pop(name, None) is not None:
                self._changed()

    def set_profile(self, body: Mapping[str, Any] | None) -> None:
        """The GridProfile body, or None when it does not exist."""
        profile: model.GridProfile | None = None
        problem = ""
        if body is None:
            problem = f"GridProfile {self.grid_profile} not found"
        else:
            try:  # as the planner reads it: live status intensities win over the spec
                profile = resources.grid_profile(body)
            except (InputError, KeyError, TypeError, AttributeError) as exc:
                problem = f"GridProfile {self.grid_profile} is invalid: {exc!s}"
        with self._lock:
            unchanged = (profile, problem) == (self._profile, self._problem)
            if not unchanged:  # a status write or a no-op edit changes nothing here
                self._profile, self._problem = profile, problem
                self._changed()
        first = not self.profile_synced.is_set()
        self.profile_synced.set()
        if unchanged and not first:
            return
        if problem:
            log.warning("grid profile unusable: every node passes", problem=problem)
        else:
            log.info("grid profile loaded", grid_profile=self.grid_profile)
        if self.metrics is not None:
            self.metrics.profile_loaded.set(0 if profile is None else 1)

    def _changed(self) -> None:
        self._generation += 1
        if self.metrics is not None:
            self.metrics.nodes.set(len(self._nodes))

    # -- reads (the requests) ------------------------------------------------------------
    @property
    def node_count(self) -> int:
        return len(self._nodes)

    def snapshot(self) -> Snapshot:
        hour = self.hour()
        snap = self._snapshot
        if snap is not None and snap.hour == hour and snap.generation == self._generation:
            return snap
        with self._lock:
            profile, problem = self._profile, self._problem
            facts: dict[str, NodeCarbon] = {}
            if profile is not None:
                for name, node in self._nodes.items():
                    facts[name] = carbon_score.node_carbon(node, profile, hour)
            grams = {
                name: fact.grams_per_teraflop
                for name, fact in facts.items()
                if fact.grams_per_teraflop is not None
            }
            entries = {name: host_entries(name) for name in self._nodes}
            snap = Snapshot(self._generation, hour, profile, problem, facts, grams, entries)
            self._snapshot = snap
        return snap


def host_entries(name: str) -> tuple[str, ...]:
    """The HostPriority JSON of a node for every score 0..10."""
    head = '{"Host":' + json.dumps(name) + ',"Score":'
    return tuple(f"{head}{score}}}" for score in range(carbon_score.MAX_SCORE + 1))


def _parse_node(body: Mapping[str, Any]) -> model.NodeInfo | None:
    try:
        return parsing.parse_node(body)
    except InputError as exc:
        log.warning("node ignored", error=str(exc))
        return None
