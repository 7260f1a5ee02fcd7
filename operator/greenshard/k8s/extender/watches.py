"""Keeps a ClusterState current from the API server: Nodes and the named GridProfile, listed and
watched by :class:`greenshard.k8s.kube.ListWatch` (threads, resume, relist, backoff); this module
only maps what it sees onto the state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import structlog

from greenshard.k8s import resources
from greenshard.k8s.extender.state import ClusterState

log = structlog.get_logger("greenshard.extender")

Items = list[dict[str, Any]]


class Lister(Protocol):
    """What :class:`greenshard.k8s.kube.ListWatch` offers (a fake in the tests)."""

    def nodes(
        self,
        on_list: Callable[[Items, str], None],
        on_event: Callable[[str, dict[str, Any]], None],
        name: str = ...,
    ) -> None: ...

    def cluster_objects(
        self,
        plural: str,
        on_list: Callable[[Items, str], None],
        on_event: Callable[[str, dict[str, Any]], None],
        field_selector: str = ...,
        name: str = ...,
    ) -> None: ...

    def stop(self) -> None: ...


class Watches:
    """Keeps a :class:`ClusterState` current: every Node, and the GridProfile it names."""

    def __init__(self, state: ClusterState, lister: Lister) -> None:
        self.state = state
        self.lister = lister

    def start(self) -> None:
        self.lister.nodes(self.nodes_listed, self.node_event, name="watch-nodes")
        self.lister.cluster_objects(
            resources.GP_PLURAL,
            self.profiles_listed,
            self.profile_event,
            field_selector=f"metadata.name={self.state.grid_profile}",
            name="watch-gridprofile",
        )

    def stop(self) -> None:
        self.lister.stop()

    def nodes_listed(self, items: Items, version: str) -> None:
        self.state.replace_nodes(items)
        log.info("nodes listed", nodes=self.state.node_count, resource_version=version)

    def node_event(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.state.delete_node(obj.get("metadata", {}).get("name", ""))
        else:
            self.state.upsert_node(obj)

    def profiles_listed(self, items: Items, version: str) -> None:
        """The named GridProfile, or None (none by that name, or the CRD is not installed)."""
        self.state.set_profile(items[0] if items else None)

    def profile_event(self, kind: str, obj: dict[str, Any]) -> None:
        self.state.set_profile(None if kind == "DELETED" else obj)
