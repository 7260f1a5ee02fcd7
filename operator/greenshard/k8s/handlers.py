"""kopf wiring: indexes as the controller's caches, a probe, startup and cleanup.

No handler writes to the API: kopf keeps caches (indexes, fully listed before any handler runs)
and the event handlers tell the controller which InferenceDeployments an event concerns (its
queue: :meth:`.controller.Controller.mark`, ``mark_all``); :mod:`greenshard.k8s.controller` does
the work. Node events do not even wake it: the controller looks at the parsed nodes' version at
every pass (at least once a second), so a heartbeat marks nothing. No daemons or timers (kopf
would put a finalizer on every object for them): the controller loop runs as one task.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from typing import Any

import kopf

from greenshard import carbon
from greenshard.k8s import controller as ctl
from greenshard.k8s import (
    gridprofiles,
    kube,
    observe,
    resources,
    shardsets,
    solving,
    tenancy,
    workloads,
)
from greenshard.k8s.metrics import Metrics

LOOP_STALE_SECONDS = 120.0


def _controller(memo: Any) -> ctl.Controller | None:
    return getattr(memo, "controller", None)


class Backoffs:
    """kopf's retry delays for its API requests (the watches), without an end: 1, 1, 2, 3, 5, 8,
    13, 21, then every 30 s for as long as the API server is away.

    kopf retries a failing request over ``settings.networking.error_backoffs`` and then gives
    up; a watch that gives up stops the whole operator. Its default (8 retries, 54 s) was
    shorter than the API outages that restarting kube-apiserver and etcd a few times in a row
    makes: the operator stopped, and its process then hung without a controller (the chaos
    restart scenario at full numbers). Not ``Sized``, and iterable again per request, as kopf
    reads it."""

    FIRST = (1.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0)
    THEN = 30.0

    def __iter__(self) -> Iterator[float]:
        yield from self.FIRST
        while True:
            yield self.THEN


def configure(settings: kopf.OperatorSettings) -> None:
    """kopf's settings for this operator."""
    settings.posting.enabled = False  # our own Events only; never log lines as Events
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.networking.error_backoffs = Backoffs()  # watches outlast any API outage
    # If kopf stops anyway and its shutdown hangs, exit after the cleanup's own bounds (30 s
    # for the controller loop, 30 s for the refresher) instead of kopf's default 10 minutes.
    settings.process.ultimate_exiting_timeout = 90


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure(settings)
    metrics: Metrics = memo.get("metrics") or Metrics()
    api = kube.KubeApi(
        kube.load_client(os.environ.get("KUBECONFIG")),
        on_write=metrics.wrote,
        request_timeout=float(os.environ.get("GREENSHARD_API_TIMEOUT", "30")),
    )
    runner = solving.SolverRunner(
        timeout_seconds=float(os.environ.get("GREENSHARD_SOLVER_TIMEOUT", "30")),
        memory_bytes=int(float(os.environ.get("GREENSHARD_SOLVER_MEMORY_GIB", "2")) * 2**30),
    )
    hour_file = os.environ.get("GREENSHARD_HOUR_FILE")
    hour = _hour_from_file(hour_file) if hour_file else carbon.current_utc_hour
    memo.api = api
    memo.runner = runner
    memo.controller = ctl.Controller(
        api,
        runner,
        metrics,
        hour=hour,
        max_qubits=int(os.environ.get("GREENSHARD_MAX_QUBITS", "24")),
        allowed_service_accounts=frozenset(
            n.strip()
            for n in os.environ.get("GREENSHARD_ALLOWED_SERVICE_ACCOUNTS", "").split(",")
            if n.strip()
        ),
        sweep_seconds=float(
            os.environ.get("GREENSHARD_FULL_SWEEP_SECONDS", str(ctl.FULL_SWEEP_SECONDS))
        ),
    )
    memo.stopped = asyncio.Event()
    memo.loop_task = asyncio.create_task(memo.controller.run(memo.stopped))
    memo.refresher = gridprofiles.Refresher(api, metrics=metrics)
    memo.refresh_task = asyncio.create_task(memo.refresher.run(memo.stopped))


def _hour_from_file(path: str) -> Callable[[], int]:
    """For demos and tests: the UTC hour comes from a file (re-read at every plan)."""

    def hour() -> int:
        try:
            with open(path, encoding="utf-8") as handle:
                return int(handle.read().strip()) % 24
        except (OSError, ValueError):
            return carbon.current_utc_hour()

    return hour


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    stopped = getattr(memo, "stopped", None)
    if stopped is not None:
        stopped.set()
        await asyncio.wait_for(memo.loop_task, timeout=30)
        refresh_task = getattr(memo, "refresh_task", None)
        if refresh_task is not None:
            await asyncio.wait_for(refresh_task, timeout=30)
    runner = getattr(memo, "runner", None)
    if runner is not None:
        await asyncio.to_thread(runner.close)


@kopf.on.probe(id="controllerLoop")
def controller_loop(memo: kopf.Memo, **_: Any) -> str:
    ctrl = getattr(memo, "controller", None)
    if ctrl is None:
        return "starting"
    age = ctrl.clock() - ctrl.heartbeat
    if age > LOOP_STALE_SECONDS:
        raise kopf.PermanentError(f"controller loop stalled for {age:.0f} s")
    return f"heartbeat {age:.1f} s ago"


# ----------------------------------------------------------------------------- indexes


@kopf.index("", "v1", "nodes")
async def node_index(name: str, body: kopf.Body, **_: Any) -> dict[str, Any]:
    """Node facts, one new object per event. No wake-up: most node events are heartbeats, and
    the controller's pass (at least once a second) sees a real change by the parsed nodes'
    version."""
    return {name: observe.node_facts(body)}


@kopf.index(resources.GROUP, resources.VERSION, resources.GP_PLURAL)
def profile_index(name: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    return {
        name: {
            "metadata": dict(body.metadata),
            "spec": dict(body.spec),
            "status": dict(body.status),
        }
    }


@kopf.on.event(resources.GROUP, resources.VERSION, resources.GP_PLURAL)
async def attach_profiles(memo: kopf.Memo, **kwargs: Any) -> None:
    """Hand the GridProfile index to the refresher (live carbon data); later events wake it.
    Any GridProfile change (deletion included) may change every deployment's plan."""
    ctrl = _controller(memo)
    if ctrl is not None:
        ctrl.mark_all()
    refresher = getattr(memo, "refresher", None)
    if refresher is None:
        return
    if refresher.profiles is not kwargs["profile_index"]:
        refresher.attach(kwargs["profile_index"])
    refresher.wake.set()


@kopf.index(resources.GROUP, resources.VERSION, resources.INFD_PLURAL)
def infd_index(
    namespace: str | None, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> dict[Any, Any]:
    return {
        (namespace, name): {
            "apiVersion": body.get("apiVersion"),
            "kind": body.get("kind"),
            "metadata": dict(body.metadata),
            "spec": dict(body.spec),
            "status": dict(body.status),
        }
    }


def _owned(
    kind: str, namespace: str | None, name: str, body: kopf.Body, memo: kopf.Memo
) -> dict[Any, Any]:
    """One object the operator made, keyed by the InferenceDeployment its label names."""
    facts = shardsets.object_facts({"kind": kind, **body})
    return {
        (namespace, body.metadata.labels[workloads.DEPLOYMENT_LABEL]): {f"{kind}/{name}": facts}
    }


@kopf.index("apps", "v1", "deployments", labels={workloads.DEPLOYMENT_LABEL: kopf.PRESENT})
def shard_index(
    namespace: str | None, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> dict[Any, Any]:
    """The previous version's per-shard Deployments (replaced by StatefulSets on upgrade)."""
    return _owned("Deployment", namespace, name, body, memo)


@kopf.index("apps", "v1", "statefulsets", labels={workloads.DEPLOYMENT_LABEL: kopf.PRESENT})
def statefulset_index(
    namespace: str | None, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> dict[Any, Any]:
    return _owned("StatefulSet", namespace, name, body, memo)


@kopf.index("", "v1", "services", labels={workloads.DEPLOYMENT_LABEL: kopf.PRESENT})
def service_index(
    namespace: str | None, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> dict[Any, Any]:
    return _owned("Service", namespace, name, body, memo)


@kopf.index(
    "policy", "v1", "poddisruptionbudgets", labels={workloads.DEPLOYMENT_LABEL: kopf.PRESENT}
)
def pdb_index(
    namespace: str | None, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> dict[Any, Any]:
    """A PodDisruptionBudget per shard StatefulSet."""
    return _owned("PodDisruptionBudget", namespace, name, body, memo)


@kopf.index("", "v1", "pods")
def pod_index(namespace: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> dict[Any, Any]:
    """Every pod (what other workloads hold on each node; our pods, for rollouts)."""
    facts = tenancy.pod_facts(body)
    return {(namespace, facts["owner"]): facts}


# ------------------------------------------------------------- events -> the controller's queue
# Event handlers (not the index handlers) mark the queue: kopf calls them for deletions too.


def _owner_key(namespace: str | None, body: kopf.Body) -> tuple[str, str] | None:
    owner = (body.get("metadata") or {}).get("labels", {}).get(workloads.DEPLOYMENT_LABEL)
    return (namespace or "", str(owner)) if owner else None


@kopf.on.event("apps", "v1", "deployments", labels={workloads.DEPLOYMENT_LABEL: kopf.PRESENT})
@kopf.on.event("apps", "v1", "statefulsets", labels={workloads.DEPLOYMENT_LABEL: kopf.PRESENT})
@kopf.on.event("", "v1", "services", labels={workloads.DEPLOYMENT_LABEL: kopf.PRESENT})
@kopf.on.event(
    "policy", "v1", "poddisruptionbudgets", labels={workloads.DEPLOYMENT_LABEL: kopf.PRESENT}
)
async def owned_event(namespace: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """An object we made changed or went away: its InferenceDeployment is visited."""
    ctrl, key = _controller(memo), _owner_key(namespace, body)
    if ctrl is not None and key is not None:
        ctrl.mark(key)


@kopf.on.event("", "v1", "pods")
async def pod_event(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """Our pods mark their InferenceDeployment; another tenant's GPU pod that starts or stops
    holding a node marks every one."""
    ctrl = _controller(memo)
    if ctrl is not None:
        ctrl.pod_event(tenancy.pod_facts(body), deleted=kwargs.get("type") == "DELETED")


@kopf.on.event(resources.GROUP, resources.VERSION, resources.INFD_PLURAL)
async def attach(memo: kopf.Memo, **kwargs: Any) -> None:
    """Hand the (fully listed) indexes to the controller once; later events mark the
    InferenceDeployment (a deletion marks every one: the GPUs it booked are free)."""
    ctrl = getattr(memo, "controller", None)
    if ctrl is None:
        return
    if not ctrl.attached:
        ctrl.attach(
            observe.Caches(
                nodes=kwargs["node_index"],
                profiles=kwargs["profile_index"],
                infds=kwargs["infd_index"],
                shards=_ShardView(
                    kwargs["shard_index"],
                    kwargs["statefulset_index"],
                    kwargs["service_index"],
                    kwargs["pdb_index"],
                ),
                pods=_PodView(kwargs["pod_index"]),
            )
        )
    ctrl.mark((kwargs.get("namespace") or "", kwargs["name"]))
    if kwargs.get("type") == "DELETED":
        ctrl.mark_all()


class _ShardView:
    """(ns, owner) -> {deployment name: facts}, merging the index's per-deployment entries."""

    def __init__(self, *indexes: kopf.Index[Any, Any]) -> None:
        self.indexes = indexes

    def get(self, key: Any, default: Any = None) -> Any:
        merged: dict[str, Any] = {}
        for index in self.indexes:
            for entry in index.get(key) or ():
                merged.update(entry)
        return merged or default


class _PodView:
    """(ns, owner) -> [pod facts], and every pod."""

    def __init__(self, index: kopf.Index[Any, Any]) -> None:
        self.index = index

    def get(self, key: Any, default: Any = None) -> Any:
        store = self.index.get(key)
        return default if store is None else list(store)

    def all(self) -> list[Any]:
        return [facts for store in self.index.values() for facts in store]
