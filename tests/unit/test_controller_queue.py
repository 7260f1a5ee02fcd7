"""The controller's queue: a pass visits only the InferenceDeployments an event marked or whose
time is due; a change every deployment reads (a node's parsed facts, another tenant's GPU pod, a
GridProfile, a deletion) visits them all; a heartbeat visits none; a periodic sweep visits all."""

from __future__ import annotations

import asyncio
import copy
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest
from test_controller import ROOT, FakeApi, infd

from greenshard.k8s import controller as ctl
from greenshard.k8s import handlers, workloads
from greenshard.k8s.errors import KubeError

COUNT = 200


def key(i: int) -> tuple[str, str]:
    return ("ml", f"m{i}")


def run(controller: ctl.Controller) -> list[tuple[str, str]]:
    asyncio.run(controller.pass_all())
    return list(controller.visited)


@pytest.fixture
def quiet(world: Any) -> tuple[ctl.Controller, FakeApi, Any]:
    """COUNT planned DryRun deployments (the reoptimizeInterval of m3: 5m, the others' 15m),
    converged: the last pass visited nothing."""
    controller, api, clock = world
    controller.sweep_seconds = 3600.0
    infds = api.caches.infds
    infds.clear()
    for i in range(COUNT):
        doc = infd(mode="DryRun")
        doc["metadata"] |= {"name": f"m{i}", "uid": f"u-{i}"}
        if i == 3:
            doc["spec"]["carbon"] = {**doc["spec"].get("carbon", {}), "reoptimizeInterval": "5m"}
        infds[key(i)] = doc
    assert len(run(controller)) == COUNT  # attach marked everything
    clock.now += 1
    run(controller)  # the status echoes: marked by the watch in the operator
    clock.now += 11  # past every status patch's re-check window
    run(controller)
    assert run(controller) == []
    assert all(infds[key(i)]["status"]["placement"] for i in range(COUNT))
    return controller, api, clock


def memo(controller: ctl.Controller) -> Any:
    return SimpleNamespace(controller=controller, refresher=None)


def test_one_changed_deployment_is_the_only_one_visited(quiet: Any) -> None:
    controller, api, _ = quiet
    api.caches.infds[key(7)]["metadata"]["generation"] = 2
    asyncio.run(handlers.attach(memo=memo(controller), name="m7", namespace="ml", type="MODIFIED"))
    assert run(controller) == [key(7)]
    assert api.caches.infds[key(7)]["status"]["observedGeneration"] == 2
    # an object it owns changed (a shard scaled by hand): only its owner
    body = {"metadata": {"labels": {workloads.DEPLOYMENT_LABEL: "m9"}}}
    asyncio.run(handlers.owned_event(namespace="ml", body=body, memo=memo(controller)))
    assert run(controller) == [key(9)]


def test_a_relabelled_node_visits_every_deployment(quiet: Any) -> None:
    controller, api, _ = quiet
    name = next(iter(api.caches.nodes))
    facts = copy.deepcopy(api.caches.nodes[name])
    facts["metadata"]["labels"]["example.com/rack"] = "r2"
    api.caches.nodes[name] = facts  # what the node index holds after the event
    assert len(run(controller)) == COUNT
    assert run(controller) == []


def test_a_heartbeat_visits_nothing(quiet: Any) -> None:
    controller, api, _ = quiet
    for name in list(api.caches.nodes):
        api.caches.nodes[name] = copy.deepcopy(api.caches.nodes[name])  # new, equal facts
    assert run(controller) == []
    assert controller.sweeps == 1


def test_a_due_reoptimize_interval_visits_that_one(quiet: Any) -> None:
    controller, _, clock = quiet
    clock.now += 300 - 12 - 1  # planned 12 s ago
    assert run(controller) == []
    clock.now += 1
    assert run(controller) == [key(3)]
    assert run(controller) == []
    clock.now += 900
    assert len(run(controller)) == COUNT  # the others' 15m, and m3's next 5m


def test_the_periodic_sweep_visits_all(quiet: Any) -> None:
    controller, _, clock = quiet
    controller.next_sweep = clock.now + 60
    clock.now += 59
    assert run(controller) == []
    clock.now += 1
    assert len(run(controller)) == COUNT
    assert run(controller) == []


def test_backoff_is_respected_whatever_marks_it(quiet: Any) -> None:
    controller, api, clock = quiet
    sent = api.patch_infd_status

    async def failing(namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        if name == "m5":
            raise KubeError(500, "InternalError", "etcd leader changed")
        return await sent(namespace, name, status)

    api.patch_infd_status = failing  # type: ignore[method-assign]
    api.caches.infds[key(5)]["metadata"]["generation"] = 2
    visits = []
    for step in range(12):  # marked every half second; 1, 2, 4 s back-off
        controller.mark(key(5))
        visits.append((step / 2, run(controller)))
        clock.now += 0.5
    at = [t for t, visited in visits if visited]
    assert all(v == [key(5)] for t, v in visits if v)
    assert at == [0.0, 1.0, 3.0]
    assert controller.records[key(5)].failures == 3
    api.patch_infd_status = sent  # type: ignore[method-assign]
    clock.now += 4
    assert run(controller) == [key(5)]  # due at its retry time, without a mark
    assert api.caches.infds[key(5)]["status"]["observedGeneration"] == 2


def gpu_pod(phase: str, node: str = "gpu-a", owner: str = "") -> dict[str, Any]:
    return {
        "namespace": "other" if not owner else "ml",
        "name": "trainer",
        "node": node,
        "phase": phase,
        "owner": owner,
        "gpus": 2,
        "memoryBytes": 0.0,
    }


def test_another_tenants_gpu_pod_visits_all_when_it_binds_or_goes(quiet: Any) -> None:
    controller, _, _ = quiet
    controller.pod_event(gpu_pod("Pending", node=""))
    assert run(controller) == []  # not bound: holds nothing yet
    controller.pod_event(gpu_pod("Pending"))
    assert len(run(controller)) == COUNT
    controller.pod_event(gpu_pod("Running"))  # a status update: still the same node
    assert run(controller) == []
    controller.pod_event(gpu_pod("Running"), deleted=True)
    assert len(run(controller)) == COUNT
    controller.pod_event(gpu_pod("Running", owner="m4"))  # ours: its owner only
    assert run(controller) == [key(4)]


def test_a_deleted_deployment_is_forgotten_and_the_others_visited(quiet: Any) -> None:
    controller, api, _ = quiet
    del api.caches.infds[key(8)]
    asyncio.run(handlers.attach(memo=memo(controller), name="m8", namespace="ml", type="DELETED"))
    assert len(run(controller)) == COUNT - 1
    assert key(8) not in controller.records and key(8) not in controller.due


def test_a_grid_profile_change_visits_all(quiet: Any) -> None:
    controller, _, _ = quiet
    asyncio.run(handlers.attach_profiles(memo=memo(controller)))
    assert len(run(controller)) == COUNT


def test_bench_queue_runs_small() -> None:
    """hack/bench_queue.py (make bench-queue) on a tiny cluster: the quiet pass visits nothing
    and nothing is written."""
    res = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "bench_queue.py"), "--nodes", "60",
         "--deployments", "4", "--passes", "1"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("60 nodes, 4 deployments (4 planned"), lines
    visited = {line[:30].strip(): line.split()[-1] for line in lines[2:6]}
    assert visited == {
        "BEFORE: every deployment": "4",
        "AFTER: quiet": "0",
        "AFTER: 100 nodes heartbeat": "0",
        "AFTER: one deployment marked": "1",
    }, lines
    assert lines[-1] == "API writes during the timed passes: 0"


def test_the_pods_of_a_deleted_deployment_going_visit_the_others(quiet: Any) -> None:
    controller, api, _ = quiet
    del api.caches.infds[key(8)]
    asyncio.run(handlers.attach(memo=memo(controller), name="m8", namespace="ml", type="DELETED"))
    assert len(run(controller)) == COUNT - 1  # its pods still hold the GPUs here
    # then its pods go: the GPUs they held are free for the others (e2e: three tenants)
    controller.pod_event(gpu_pod("Running", owner="m8"), deleted=True)
    assert len(run(controller)) == COUNT - 1
    controller.pod_event(gpu_pod("Running", owner="m4"), deleted=True)  # ours: its owner only
    assert run(controller) == [key(4)]
