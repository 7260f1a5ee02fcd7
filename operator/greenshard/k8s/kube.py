"""The one place that calls the Kubernetes API (official client, in threads) and turns
ApiException into :class:`KubeError`. Every write goes through here, so it is counted.
:class:`ListWatch` keeps local copies current for the extender (list, then watch, in threads)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import structlog
import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from greenshard.k8s import resources, workloads
from greenshard.k8s.errors import KubeError

T = TypeVar("T")


def load_client(kubeconfig: str | None = None) -> client.ApiClient:
    """A client from KUBECONFIG / ``kubeconfig``, or the in-cluster ServiceAccount."""
    try:
        if kubeconfig:
            config.load_kube_config(config_file=kubeconfig)
        else:
            config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config(config_file=kubeconfig)
    return client.ApiClient()


def _message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


class KubeApi:
    """Async facade over the sync client; counts writes by verb and kind."""

    def __init__(
        self,
        api_client: client.ApiClient,
        on_write: Callable[[str], None] | None = None,
        request_timeout: float = 30.0,
    ) -> None:
        self.api_client = api_client
        # Every call is bounded: a request the server (or a proxy) never answers would otherwise
        # hold the controller loop forever (the client's default is no timeout at all).
        self.request_timeout = (min(10.0, request_timeout), request_timeout)
        self.on_write = on_write
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.policy = client.PolicyV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.writes: Counter[str] = Counter()

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        kwargs.setdefault("_request_timeout", self.request_timeout)
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except ApiException as exc:
            raise KubeError(exc.status or 0, str(exc.reason), _message(exc)) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:  # timeouts, resets, refused
            raise KubeError(0, "Unreachable", f"{type(exc).__name__}: {exc}") from exc

    async def _write(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self.writes[what] += 1
        if self.on_write is not None:
            self.on_write(what)
        return await self._call(fn, *args, **kwargs)

    # ------------------------------------------------------------------------------ reads

    async def list_nodes(self) -> list[dict[str, Any]]:
        result = await self._call(self.core.list_node)
        return [self.api_client.sanitize_for_serialization(n) for n in result.items]

    async def list_custom(self, plural: str) -> list[dict[str, Any]]:
        result = await self._call(
            self.custom.list_cluster_custom_object, resources.GROUP, resources.VERSION, plural
        )
        return list(result.get("items", [])) if isinstance(result, dict) else []

    async def list_shard_deployments(self) -> list[dict[str, Any]]:
        result = await self._call(
            self.apps.list_deployment_for_all_namespaces, label_selector=workloads.DEPLOYMENT_LABEL
        )
        return [self.api_client.sanitize_for_serialization(d) for d in result.items]

    async def read_secret(self, namespace: str, name: str) -> dict[str, str]:
        """One Secret's data, decoded (the chart grants `get` on that Secret only, by name).
        The values are API keys: callers never log them or put them into messages."""
        result = await self._call(self.core.read_namespaced_secret, name, namespace)
        data = getattr(result, "data", None) or {}
        out: dict[str, str] = {}
        for key, value in data.items():
            try:
                out[str(key)] = base64.b64decode(value).decode().strip()
            except (ValueError, UnicodeDecodeError):
                continue
        return out

    # ----------------------------------------------------------------------------- writes

    async def patch_gp_status(self, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch a (cluster-scoped) GridProfile's status through the status subresource."""
        result = await self._write(
            "gridprofile.status",
            self.custom.patch_cluster_custom_object_status,
            resources.GROUP,
            resources.VERSION,
            resources.GP_PLURAL,
            name,
            {"status": status},
        )
        return dict(result) if isinstance(result, dict) else {}

    async def patch_infd_status(
        self, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        result = await self._write(
            "status",
            self.custom.patch_namespaced_custom_object_status,
            resources.GROUP,
            resources.VERSION,
            namespace,
            resources.INFD_PLURAL,
            name,
            {"status": status},
        )
        return dict(result) if isinstance(result, dict) else {}

    async def create_deployment(self, manifest: dict[str, Any]) -> None:
        await self._write(
            "deployment.create",
            self.apps.create_namespaced_deployment,
            manifest["metadata"]["namespace"],
            manifest,
        )

    async def replace_deployment(self, manifest: dict[str, Any], resource_version: str) -> None:
        body = {
            **manifest,
            "metadata": {**manifest["metadata"], "resourceVersion": resource_version},
        }
        await self._write(
            "deployment.replace",
            self.apps.replace_namespaced_deployment,
            manifest["metadata"]["name"],
            manifest["metadata"]["namespace"],
            body,
        )

    async def delete_deployment(self, namespace: str, name: str) -> None:
        try:
            await self._write(
                "deployment.delete",
                self.apps.delete_namespaced_deployment,
                name,
                namespace,
                propagation_policy="Background",
            )
        except KubeError as err:
            if err.status != 404:
                raise

    # ------------------------- pipeline objects (StatefulSet, Service, PodDisruptionBudget)

    async def read_object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One object of a managed kind (None when there is none): who controls it, when a
        create found its name taken."""
        read = {
            "StatefulSet": self.apps.read_namespaced_stateful_set,
            "Service": self.core.read_namespaced_service,
            "Deployment": self.apps.read_namespaced_deployment,
            "PodDisruptionBudget": self.policy.read_namespaced_pod_disruption_budget,
        }.get(kind)
        if read is None:
            raise ValueError(f"unmanaged kind {kind}")
        try:
            result = await self._call(read, name, namespace)
        except KubeError as err:
            if err.status == 404:
                return None
            raise
        body = self.api_client.sanitize_for_serialization(result)
        return dict(body) if isinstance(body, dict) else None

    def _kind_calls(self, kind: str) -> tuple[Callable[..., Any], Callable[..., Any], Any]:
        """(create, replace, delete) of a namespaced kind the operator manages."""
        if kind == "StatefulSet":
            return (
                self.apps.create_namespaced_stateful_set,
                self.apps.replace_namespaced_stateful_set,
                self.apps.delete_namespaced_stateful_set,
            )
        if kind == "Service":
            return (
                self.core.create_namespaced_service,
                self.core.replace_namespaced_service,
                self.core.delete_namespaced_service,
            )
        if kind == "Deployment":
            return (
                self.apps.create_namespaced_deployment,
                self.apps.replace_namespaced_deployment,
                self.apps.delete_namespaced_deployment,
            )
        if kind == "PodDisruptionBudget":
            return (
                self.policy.create_namespaced_pod_disruption_budget,
                self.policy.replace_namespaced_pod_disruption_budget,
                self.policy.delete_namespaced_pod_disruption_budget,
            )
        raise ValueError(f"unmanaged kind {kind}")

    async def create_object(self, manifest: dict[str, Any]) -> None:
        kind = manifest["kind"]
        create, _, _ = self._kind_calls(kind)
        await self._write(
            f"{kind.lower()}.create", create, manifest["metadata"]["namespace"], manifest
        )

    async def replace_object(self, manifest: dict[str, Any], current: dict[str, Any]) -> None:
        """Replace with the current resourceVersion (a Service keeps its clusterIP)."""
        kind = manifest["kind"]
        _, replace, _ = self._kind_calls(kind)
        body = {
            **manifest,
            "metadata": {**manifest["metadata"], "resourceVersion": current.get("resourceVersion")},
        }
        if kind == "Service" and current.get("clusterIP"):
            body["spec"] = {**body["spec"], "clusterIP": current["clusterIP"]}
        await self._write(
            f"{kind.lower()}.replace",
            replace,
            manifest["metadata"]["name"],
            manifest["metadata"]["namespace"],
            body,
        )

    async def delete_object(self, kind: str, namespace: str, name: str) -> None:
        _, _, delete = self._kind_calls(kind)
        try:
            await self._write(
                f"{kind.lower()}.delete", delete, name, namespace, propagation_policy="Background"
            )
        except KubeError as err:
            if err.status != 404:
                raise

    async def delete_pod(self, namespace: str, name: str) -> None:
        try:
            await self._write("pod.delete", self.core.delete_namespaced_pod, name, namespace)
        except KubeError as err:
            if err.status != 404:
                raise

    async def post_event(
        self, owner: dict[str, Any], reason: str, message: str, event_type: str = "Normal"
    ) -> None:
        meta = owner["metadata"]
        now = dt.datetime.now(dt.UTC)
        body = {
            "metadata": {
                "name": f"{meta['name']}.{uuid.uuid4().hex[:12]}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": f"{resources.GROUP}/{resources.VERSION}",
                "kind": "InferenceDeployment",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "reason": reason,
            "message": message[:1024],
            "type": event_type,
            "source": {"component": "greenshard"},
            "firstTimestamp": now.isoformat(),
            "lastTimestamp": now.isoformat(),
            "count": 1,
            "reportingComponent": "greenshard.io/operator",
            "reportingInstance": "greenshard",
        }
        await self._write("event", self.core.create_namespaced_event, meta["namespace"], body)


# ------------------------------------------------------------------------ list and watch

Items = list[dict[str, Any]]
OnList = Callable[[Items, str], None]  # every object, as dicts; the list's resourceVersion
OnEvent = Callable[[str, dict[str, Any]], None]  # ADDED | MODIFIED | DELETED, the object

WATCH_SECONDS = 300  # the server ends a watch after this; it is resumed from the last version
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0  # seconds after a failure, doubling
NOT_SERVED_WAIT = 10.0  # a kind that is not served (its CRD not installed) is listed again then


class ListWatch:
    """Keeps local copies current, each in a daemon thread: list (``on_list`` gets every object,
    as dicts), then watch from the list's resourceVersion (``on_event`` per ADDED, MODIFIED or
    DELETED). A watch the server ends is resumed from the last resourceVersion seen (bookmarks
    included); one whose version expired (410 Gone) or that fails otherwise is relisted, after
    0.5 s doubling to 30 s while failures repeat. Objects stay raw JSON: no model classes, so
    thousands of Nodes cost little."""

    def __init__(self, api_client: client.ApiClient, log: Any = None) -> None:
        # Any: the list calls ask for raw JSON (_preload_content=False), not the typed models
        self.core: Any = client.CoreV1Api(api_client)
        self.custom: Any = client.CustomObjectsApi(api_client)
        self.log = log if log is not None else structlog.get_logger("greenshard.kube")
        self.stopped = threading.Event()
        self.threads: list[threading.Thread] = []
        self._watches: list[Any] = []

    def nodes(self, on_list: OnList, on_event: OnEvent, name: str = "watch-nodes") -> None:
        """Every Node."""

        def list_items() -> tuple[Items, str] | None:
            raw = self.core.list_node(_preload_content=False, _request_timeout=60)
            listed = json.loads(raw.data)
            return listed.get("items") or [], listed["metadata"]["resourceVersion"]

        self._start(name, list_items, self.core.list_node, (), {}, on_list, on_event)

    def cluster_objects(
        self,
        plural: str,
        on_list: OnList,
        on_event: OnEvent,
        field_selector: str = "",
        name: str = "",
    ) -> None:
        """GreenShard's cluster-scoped objects of ``plural`` (e.g. one GridProfile by
        ``metadata.name=...``); while the kind is not served, an empty list every 10 s."""
        args = (resources.GROUP, resources.VERSION, plural)
        kwargs: dict[str, Any] = {"field_selector": field_selector} if field_selector else {}

        def list_items() -> tuple[Items, str] | None:
            try:
                listed = self.custom.list_cluster_custom_object(
                    *args, _request_timeout=60, **kwargs
                )
            except ApiException as exc:
                if exc.status != 404:  # 404: the CRD is not installed
                    raise
                return None
            return listed.get("items") or [], listed["metadata"]["resourceVersion"]

        fn = self.custom.list_cluster_custom_object
        self._start(name or f"watch-{plural}", list_items, fn, args, kwargs, on_list, on_event)

    def stop(self) -> None:
        self.stopped.set()
        for w in list(self._watches):
            w.stop()

    def _start(
        self,
        name: str,
        list_items: Callable[[], tuple[Items, str] | None],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        on_list: OnList,
        on_event: OnEvent,
    ) -> None:
        def once() -> None:
            self._list_then_watch(list_items, fn, args, kwargs, on_list, on_event)

        thread = threading.Thread(target=self._loop, args=(once, name), name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _loop(self, once: Callable[[], None], name: str) -> None:
        delay = BACKOFF_FIRST
        while not self.stopped.is_set():
            try:
                once()
                delay = BACKOFF_FIRST
            except Exception as exc:
                self.log.warning("watch failed; retrying", watch=name, error=str(exc), delay=delay)
                self.stopped.wait(delay)
                delay = min(delay * 2, BACKOFF_MAX)

    def _list_then_watch(
        self,
        list_items: Callable[[], tuple[Items, str] | None],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        on_list: OnList,
        on_event: OnEvent,
    ) -> None:
        listed = list_items()
        if listed is None:
            on_list([], "")
            self.stopped.wait(NOT_SERVED_WAIT)
            return
        items, version = listed
        on_list(items, version)
        while not self.stopped.is_set():
            for event in self._stream(fn, *args, resource_version=version, **kwargs):
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    # 410 Gone and friends: relist. (The client raises on an ERROR event before
                    # it gets here: a 410 is relisted through the backoff, logged as a failure.)
                    return
                version = obj.get("metadata", {}).get("resourceVersion", version)
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    on_event(kind, obj)

    def _stream(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Iterator[Any]:
        w = watch.Watch()
        self._watches.append(w)
        try:
            yield from w.stream(
                fn,
                *args,
                deserialize=False,
                allow_watch_bookmarks=True,
                timeout_seconds=WATCH_SECONDS,
                _request_timeout=WATCH_SECONDS + 30,
                **kwargs,
            )
        finally:
            self._watches.remove(w)
