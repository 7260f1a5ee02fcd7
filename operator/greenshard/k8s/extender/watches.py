"""Keeps a ClusterState current from the API server: list, then watch, Nodes and the named
GridProfile in daemon threads."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

import structlog

from greenshard.k8s import resources
from greenshard.k8s.extender.state import ClusterState

log = structlog.get_logger("greenshard.extender")


class Watches:
    """Keeps a :class:`ClusterState` current: Nodes and the named GridProfile, each listed
    and then watched from the list's resourceVersion in a daemon thread; a watch that ends
    or expires (410) is resumed or relisted, with a backoff after errors."""

    def __init__(self, state: ClusterState, api_client: Any) -> None:
        from kubernetes import client  # noqa: PLC0415 - only the served process needs it

        self.state = state
        self.api_client = api_client
        self.core: Any = client.CoreV1Api(api_client)
        self.custom: Any = client.CustomObjectsApi(api_client)
        self.group, self.version, self.plural = (
            resources.GROUP,
            resources.VERSION,
            resources.GP_PLURAL,
        )
        self.stopped = threading.Event()
        self._watches: list[Any] = []

    def start(self) -> None:
        for target, name in ((self._nodes, "watch-nodes"), (self._profile, "watch-gridprofile")):
            threading.Thread(target=self._loop, args=(target, name), name=name, daemon=True).start()

    def stop(self) -> None:
        self.stopped.set()
        for w in list(self._watches):
            w.stop()

    def _loop(self, body: Callable[[], None], name: str) -> None:
        delay = 0.5
        while not self.stopped.is_set():
            try:
                body()
                delay = 0.5
            except Exception as exc:
                log.warning("watch failed; retrying", watch=name, error=str(exc), delay=delay)
                self.stopped.wait(delay)
                delay = min(delay * 2, 30.0)

    def _stream(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Iterable[Any]:
        from kubernetes import watch  # noqa: PLC0415

        module: Any = watch
        w = module.Watch()
        self._watches.append(w)
        try:
            yield from w.stream(
                fn,
                *args,
                deserialize=False,
                allow_watch_bookmarks=True,
                timeout_seconds=300,
                _request_timeout=330,
                **kwargs,
            )
        finally:
            self._watches.remove(w)

    def _nodes(self) -> None:
        raw = self.core.list_node(_preload_content=False, _request_timeout=60)
        listed = json.loads(raw.data)
        self.state.replace_nodes(listed.get("items") or [])
        version = listed["metadata"]["resourceVersion"]
        log.info("nodes listed", nodes=self.state.node_count, resource_version=version)
        while not self.stopped.is_set():
            for event in self._stream(self.core.list_node, resource_version=version):
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    return  # 410 Gone and friends: relist
                version = obj.get("metadata", {}).get("resourceVersion", version)
                if kind in ("ADDED", "MODIFIED"):
                    self.state.upsert_node(obj)
                elif kind == "DELETED":
                    self.state.delete_node(obj.get("metadata", {}).get("name", ""))

    def _profile(self) -> None:
        from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

        name = self.state.grid_profile
        selector = f"metadata.name={name}"
        args = (self.group, self.version, self.plural)
        try:
            listed = self.custom.list_cluster_custom_object(
                *args, field_selector=selector, _request_timeout=60
            )
        except ApiException as exc:
            if exc.status != 404:  # 404: the CRD is not installed
                raise
            self.state.set_profile(None)
            self.stopped.wait(10)
            return
        items = listed.get("items") or []
        self.state.set_profile(items[0] if items else None)
        version = listed["metadata"]["resourceVersion"]
        while not self.stopped.is_set():
            for event in self._stream(
                self.custom.list_cluster_custom_object,
                *args,
                field_selector=selector,
                resource_version=version,
            ):
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    return
                version = obj.get("metadata", {}).get("resourceVersion", version)
                if kind in ("ADDED", "MODIFIED"):
                    self.state.set_profile(obj)
                elif kind == "DELETED":
                    self.state.set_profile(None)
