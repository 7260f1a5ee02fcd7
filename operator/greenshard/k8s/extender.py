"""`greenshard extender`: a kube-scheduler extender that filters and scores nodes by carbon.

The HTTP protocol is the one of ``k8s.io/kube-scheduler/extender/v1``: kube-scheduler POSTs an
``ExtenderArgs`` (``Pod``, and ``NodeNames`` when the extender is ``nodeCacheCapable``, else
``Nodes``) to ``/filter`` and ``/prioritize``; the answers are an ``ExtenderFilterResult``
(``NodeNames`` / ``Nodes``, ``FailedNodes``, ``FailedAndUnresolvableNodes``, ``Error``) and a
``HostPriorityList`` (``[{"Host", "Score"}]``, scores 0..10). The Go types carry no JSON tags, so
the keys are the Go field names; Go decodes them case-insensitively and so does this server.

Only pods labelled ``greenshard.io/carbon-aware: "true"`` are judged; every other pod gets all
its nodes back and an empty priority list (nothing added to any node's score), after one JSON
parse and one label lookup. Node facts and the GridProfile come from watches kept in memory
(:class:`ClusterState`), so a request never calls the API server.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import structlog
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from greenshard import carbon, carbon_score, model, parsing
from greenshard.carbon_score import NodeCarbon
from greenshard.errors import InputError
from greenshard.k8s import resources

CARBON_AWARE_LABEL = "greenshard.io/carbon-aware"
MAX_INTENSITY_ANNOTATION = "greenshard.io/max-intensity"
DEFAULT_PORT = 8888
PRIORITIZE_CACHE_SIZE = 256
DECISIONS = {
    "filter": ("passthrough", "no-profile", "passed", "filtered"),
    "prioritize": ("passthrough", "no-profile", "scored"),
}

log = structlog.get_logger("greenshard.extender")


class BadRequestError(Exception):
    """A request that is not a valid ExtenderArgs: answered 400 with a JSON error."""


# ------------------------------------------------------------------------------------ metrics


class ExtenderMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "greenshard_extender_requests",
            "Extender HTTP requests, by verb (filter, prioritize) and status code.",
            ["verb", "code"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "greenshard_extender_request_seconds",
            "Seconds to answer an extender request (body read to response built), by verb.",
            ["verb"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0),
            registry=self.registry,
        )
        self.decisions = Counter(
            "greenshard_extender_decisions",
            "Pods judged, by verb and decision: passthrough (not opted in), no-profile (every "
            "node passes), scored, passed (no node failed), filtered (some node failed).",
            ["verb", "decision"],
            registry=self.registry,
        )
        self.failed_nodes = Counter(
            "greenshard_extender_failed_nodes",
            "Nodes failed by /filter, by cause (unknown, ceiling, bad-annotation).",
            ["cause"],
            registry=self.registry,
        )
        for verb, decisions in DECISIONS.items():  # every series exported from the start
            for decision in decisions:
                self.decisions.labels(verb=verb, decision=decision)
        for cause in ("unknown", "ceiling", "bad-annotation"):
            self.failed_nodes.labels(cause=cause)
        self.nodes = Gauge(
            "greenshard_extender_nodes", "Nodes in the watch cache.", registry=self.registry
        )
        self.profile_loaded = Gauge(
            "greenshard_extender_grid_profile_loaded",
            "1 when the named GridProfile is known and valid, else 0 (every node passes).",
            registry=self.registry,
        )


# ------------------------------------------------------------------------------ cluster state


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
            entries = {name: _entries(name) for name in self._nodes}
            snap = Snapshot(self._generation, hour, profile, problem, facts, grams, entries)
            self._snapshot = snap
        return snap


def _entries(name: str) -> tuple[str, ...]:
    """The HostPriority JSON of a node for every score 0..10."""
    head = '{"Host":' + json.dumps(name) + ',"Score":'
    return tuple(f"{head}{score}}}" for score in range(carbon_score.MAX_SCORE + 1))


def _parse_node(body: Mapping[str, Any]) -> model.NodeInfo | None:
    try:
        return parsing.parse_node(body)
    except InputError as exc:
        log.warning("node ignored", error=str(exc))
        return None


# ------------------------------------------------------------------------------ the protocol


@dataclass(frozen=True)
class Args:
    """An ExtenderArgs: the pod's identity, opt-in and ceiling, and the candidate nodes."""

    pod: str  # namespace/name
    opted_in: bool
    ceiling: str | None  # the raw annotation
    names: list[str]
    nodes: list[Mapping[str, Any]] | None  # full Node objects when not nodeCacheCapable


def _field(obj: Mapping[str, Any], name: str) -> Any:
    """obj[name], matched case-insensitively as Go's encoding/json does."""
    if name in obj:
        return obj[name]
    lowered = name.lower()
    for key, value in obj.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return None


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadRequestError(f"{what} must be an object")
    return value


def parse_args(body: bytes) -> Args:
    """Parse an ExtenderArgs body; :class:`BadRequestError` says what is wrong."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"body is not JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise BadRequestError("body must be an ExtenderArgs object")
    pod = _field(data, "Pod")
    if not isinstance(pod, Mapping):
        raise BadRequestError("Pod is required (an object)")
    meta = _mapping(pod.get("metadata"), "Pod.metadata")
    labels = _mapping(meta.get("labels"), "Pod.metadata.labels")
    annotations = _mapping(meta.get("annotations"), "Pod.metadata.annotations")
    ceiling = annotations.get(MAX_INTENSITY_ANNOTATION)
    names_raw = _field(data, "NodeNames")
    nodes: list[Mapping[str, Any]] | None = None
    if names_raw is not None:
        if not isinstance(names_raw, list) or set(map(type, names_raw)) - {str}:
            raise BadRequestError("NodeNames must be a list of strings")
        names: list[str] = names_raw
    else:
        node_list = _field(data, "Nodes")
        if node_list is None:
            raise BadRequestError("NodeNames or Nodes is required")
        items = _mapping(node_list, "Nodes").get("items") or []
        if not isinstance(items, list) or not all(isinstance(n, Mapping) for n in items):
            raise BadRequestError("Nodes.items must be a list of Node objects")
        names = []
        for i, item in enumerate(items):
            name = _mapping(item.get("metadata"), f"Nodes.items[{i}].metadata").get("name")
            if not isinstance(name, str):
                raise BadRequestError(f"Nodes.items[{i}].metadata.name must be a string")
            names.append(name)
        nodes = items
    return Args(
        pod=f"{meta.get('namespace', '')}/{meta.get('name', '')}",
        opted_in=labels.get(CARBON_AWARE_LABEL) == "true",
        ceiling=None if ceiling is None else str(ceiling),
        names=names,
        nodes=nodes,
    )


def _ceiling(raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


class Extender:
    """The filter and prioritize verbs over a :class:`ClusterState` (no I/O)."""

    def __init__(self, state: ClusterState, metrics: ExtenderMetrics | None = None) -> None:
        self.state = state
        self.metrics = metrics or state.metrics or ExtenderMetrics()
        self._warned_generation = -1
        self._cache: OrderedDict[tuple[str, ...], bytes] = OrderedDict()
        self._cache_snapshot: Snapshot | None = None

    def _decide(self, verb: str, decision: str) -> None:
        self.metrics.decisions.labels(verb=verb, decision=decision).inc()

    def _profile_missing(self, snap: Snapshot, args: Args) -> bool:
        if snap.profile is not None:
            return False
        if self._warned_generation != snap.generation:
            self._warned_generation = snap.generation
            log.warning(
                "no usable GridProfile: carbon-aware pods are not filtered or scored",
                problem=snap.problem,
                pod=args.pod,
            )
        return True

    def filter(self, body: bytes) -> dict[str, Any]:
        args = parse_args(body)
        failed: dict[str, str] = {}
        if not args.opted_in:
            self._decide("filter", "passthrough")
            return self._filter_result(args, args.names, failed)
        snap = self.state.snapshot()
        if self._profile_missing(snap, args):
            self._decide("filter", "no-profile")
            return self._filter_result(args, args.names, failed)
        ceiling: float | None = None
        if args.ceiling is not None:
            ceiling = _ceiling(args.ceiling)
            if ceiling is None:
                reason = (
                    f"greenshard: pod annotation {MAX_INTENSITY_ANNOTATION}={args.ceiling!r} "
                    "is not a non-negative number (gCO2e/kWh)"
                )
                failed = dict.fromkeys(args.names, reason)
                self.metrics.failed_nodes.labels(cause="bad-annotation").inc(len(failed))
                self._decide("filter", "filtered")
                log.info("filter", pod=args.pod, passed=0, failed=len(failed), reason=reason)
                return self._filter_result(args, [], failed)
        passed: list[str] = []
        facts = snap.carbon
        for name in args.names:
            fact = facts.get(name)
            if fact is None:  # not in the watch cache yet: never block on our own lag
                passed.append(name)
            elif fact.reason:
                failed[name] = f"greenshard: {fact.reason}"
                self.metrics.failed_nodes.labels(cause="unknown").inc()
            elif ceiling is not None and carbon_score.exceeds_ceiling(fact, ceiling):
                failed[name] = (
                    f"greenshard: region {fact.region} intensity {fact.intensity:g} gCO2e/kWh "
                    f"is above the pod's {MAX_INTENSITY_ANNOTATION} {ceiling:g}"
                )
                self.metrics.failed_nodes.labels(cause="ceiling").inc()
            else:
                passed.append(name)
        self._decide("filter", "filtered" if failed else "passed")
        if failed:  # one line per pod that lost nodes; nothing per request otherwise (hot path)
            log.info("filter", pod=args.pod, hour=snap.hour, passed=len(passed), failed=len(failed))
        return self._filter_result(args, passed, failed)

    @staticmethod
    def _filter_result(args: Args, passed: list[str], failed: dict[str, str]) -> dict[str, Any]:
        # Unresolvable: preempting other pods never makes a node greener, so the scheduler
        # must not evict anything for these nodes.
        result: dict[str, Any] = {
            "NodeNames": passed,
            "FailedNodes": {},
            "FailedAndUnresolvableNodes": failed,
            "Error": "",
        }
        if args.nodes is not None:
            keep = set(passed)
            result["NodeNames"] = None
            result["Nodes"] = {
                "apiVersion": "v1",
                "kind": "NodeList",
                "metadata": {},
                "items": [
                    n for n, name in zip(args.nodes, args.names, strict=True) if name in keep
                ],
            }
        return result

    def prioritize(self, body: bytes) -> list[dict[str, Any]]:
        """The HostPriorityList for an ExtenderArgs body, as Python objects."""
        parsed: list[dict[str, Any]] = json.loads(self.prioritize_json(body))
        return parsed

    def prioritize_json(self, body: bytes) -> bytes:
        """The HostPriorityList as JSON. Scores depend only on the node names and the snapshot,
        so answers are kept per (snapshot, names): kube-scheduler sends the same feasible set
        for pod after pod."""
        args = parse_args(body)
        if not args.opted_in:
            self._decide("prioritize", "passthrough")
            return b"[]"
        snap = self.state.snapshot()
        if self._profile_missing(snap, args):
            self._decide("prioritize", "no-profile")
            return b"[]"
        self._decide("prioritize", "scored")
        if self._cache_snapshot is not snap:
            self._cache.clear()
            self._cache_snapshot = snap
        key = tuple(args.names)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        # Vectorised: 500 nodes in ~0.1 ms. Unknown emissions are inf: score 0.
        grams = np.fromiter(
            map(snap.grams.get, key, itertools.repeat(math.inf)), np.float64, len(key)
        )
        scores = carbon_score.scores_array(grams).tolist()
        found = list(map(snap.entries.get, key))
        rows = (  # nodes the watch has not seen yet get their entries made here
            [row or _entries(name) for row, name in zip(found, key, strict=True)]
            if None in found
            else cast(list[tuple[str, ...]], found)
        )
        data = ("[" + ",".join(map(tuple.__getitem__, rows, scores)) + "]").encode()
        self._cache[key] = data
        if len(self._cache) > PRIORITIZE_CACHE_SIZE:
            self._cache.popitem(last=False)
        return data

    def filter_json(self, body: bytes) -> bytes:
        return json.dumps(self.filter(body), separators=(",", ":")).encode()


# ---------------------------------------------------------------------------------- the server


def build_app(extender: Extender) -> web.Application:
    metrics = extender.metrics
    state = extender.state

    def verb(name: str, fn: Callable[[bytes], bytes]) -> Callable[[web.Request], Any]:
        requests = {code: metrics.requests.labels(verb=name, code=code) for code in ("200", "400")}
        seconds = metrics.seconds.labels(verb=name)

        async def handle(request: web.Request) -> web.Response:
            start = time.perf_counter()
            body = await request.read()
            status = 200
            try:
                data = fn(body)
            except BadRequestError as exc:
                status, data = 400, json.dumps({"error": str(exc)}).encode()
                log.warning("bad request", verb=name, error=str(exc))
            except Exception as exc:  # never crash the server on one request
                status, data = 500, json.dumps({"error": f"internal error: {exc}"}).encode()
                log.exception("request failed", verb=name)
            seconds.observe(time.perf_counter() - start)
            counter = requests.get(str(status)) or metrics.requests.labels(name, str(status))
            counter.inc()
            return web.Response(body=data, status=status, content_type="application/json")

        return handle

    async def healthz(_: web.Request) -> web.Response:
        snap = state.snapshot()
        return web.json_response(
            {
                "status": "ok",
                "nodesSynced": state.nodes_synced.is_set(),
                "nodes": state.node_count,
                "gridProfile": state.grid_profile,
                "gridProfileLoaded": snap.profile is not None,
                "hour": snap.hour,
            }
        )

    async def readyz(_: web.Request) -> web.Response:
        ready = state.nodes_synced.is_set() and state.profile_synced.is_set()
        return web.Response(text="ok" if ready else "not synced", status=200 if ready else 503)

    async def metrics_page(_: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(metrics.registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app = web.Application(client_max_size=256 * 2**20)
    app.router.add_post("/filter", verb("filter", extender.filter_json))
    app.router.add_post("/prioritize", verb("prioritize", extender.prioritize_json))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)
    return app


class Server:
    """The aiohttp app on its own event loop in a thread (tests, benchmarks) or the main one."""

    def __init__(self, extender: Extender, host: str = "127.0.0.1", port: int = 0) -> None:
        self.extender = extender
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    async def start_async(self) -> int:
        self._runner = web.AppRunner(build_app(self.extender), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        server: Any = site._server  # the bound port when port=0
        if server is not None and getattr(server, "sockets", None):
            self.port = int(server.sockets[0].getsockname()[1])
        return self.port

    async def stop_async(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def start_in_thread(self) -> int:
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def main() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.start_async())
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=main, name="extender-http", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the extender server did not start")
        return self.port

    def stop_thread(self) -> None:
        loop = self._loop
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop_async(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()


# ------------------------------------------------------------------------------------ watches


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


# -------------------------------------------------------------------------------------- main


def run(
    kubeconfig: str | None,
    port: int,
    grid_profile: str,
    log_format: str,
    address: str = "0.0.0.0",
    hour: int | None = None,
) -> int:
    from greenshard.k8s import kube  # noqa: PLC0415
    from greenshard.k8s.runner import configure_logging  # noqa: PLC0415

    configure_logging(log_format)
    metrics = ExtenderMetrics()
    clock: Callable[[], int] = carbon.current_utc_hour if hour is None else (lambda: hour)
    state = ClusterState(grid_profile, hour=clock, metrics=metrics)
    watches = Watches(state, kube.load_client(kubeconfig))
    watches.start()
    server = Server(Extender(state, metrics), host=address, port=port)

    async def serve() -> None:
        await server.start_async()
        log.info("extender serving", address=address, port=server.port, grid_profile=grid_profile)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop_async()

    try:
        asyncio.run(serve())
    finally:
        watches.stop()
    return 0
