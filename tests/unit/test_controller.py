"""The reconcile logic against an in-memory API: plan, apply, report, stay quiet, hysteresis."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from greenshard import model, parsing, planner
from greenshard.k8s import conditions, loop, observe, pipeline, resources, shardsets, workloads
from greenshard.k8s import controller as ctl
from greenshard.k8s.errors import KubeError
from greenshard.solvers.registry import SolverConfig

ROOT = Path(__file__).resolve().parents[2]
KEY = ("ml", "llama")


def merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            merge(target[k], v)
        else:
            target[k] = copy.deepcopy(v)


class FakeApi:
    """Applies writes to the caches, as the watch events would."""

    def __init__(self, caches: observe.Caches) -> None:
        self.caches = caches
        self.writes: list[tuple[str, Any]] = []
        self.events: list[tuple[str, str]] = []
        self.reads: list[str] = []
        # objects the index does not see (they lack our label): "Kind/name" -> object_facts
        self.unlabelled: dict[str, dict[str, Any]] = {}

    async def patch_infd_status(
        self, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        self.writes.append(("status", status))
        body = self.caches.infds[(namespace, name)]
        body.setdefault("status", {})
        merge(body["status"], status)
        return body

    async def read_object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads.append(f"{kind}/{name}")
        facts = self._find(kind, namespace, name)
        if facts is None:
            return None
        refs = [{"uid": facts["owner"], "controller": True}] if facts["owner"] else []
        return {"metadata": {"name": name, "namespace": namespace, "ownerReferences": refs}}

    def _find(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """An object of that name in the namespace, labelled for any owner or for none."""
        key = f"{kind}/{name}"
        for (ns, _), objects in self.caches.shards.items():
            if ns == namespace and key in objects:
                return objects[key]  # type: ignore[no-any-return]
        return self.unlabelled.get(key)

    def _objects(self, manifest: dict[str, Any]) -> dict[str, Any]:
        owner = manifest["metadata"]["labels"][workloads.DEPLOYMENT_LABEL]
        key = (manifest["metadata"]["namespace"], owner)
        return self.caches.shards.setdefault(key, {})  # type: ignore[no-any-return]

    async def create_object(self, manifest: dict[str, Any]) -> None:
        name = f"{manifest['kind']}/{manifest['metadata']['name']}"
        self.writes.append(("create", name))
        meta = manifest["metadata"]
        if self._find(manifest["kind"], meta["namespace"], meta["name"]) is not None:
            raise KubeError(409, "Conflict", f"{name} already exists")
        self._objects(manifest)[name] = shardsets.object_facts(
            {
                **manifest,
                "metadata": {**manifest["metadata"], "generation": 1, "resourceVersion": "1"},
            }
        )

    async def replace_object(self, manifest: dict[str, Any], current: dict[str, Any]) -> None:
        name = f"{manifest['kind']}/{manifest['metadata']['name']}"
        self.writes.append(("replace", name))
        objects = self._objects(manifest)
        old = objects[name]
        objects[name] = shardsets.object_facts(
            {
                **manifest,
                "metadata": {**manifest["metadata"], "generation": old["generation"] + 1},
                "status": old["status"],
            }
        )

    async def delete_object(self, kind: str, namespace: str, name: str) -> None:
        self.writes.append(("delete", f"{kind}/{name}"))
        for objects in self.caches.shards.values():
            objects.pop(f"{kind}/{name}", None)

    async def delete_pod(self, namespace: str, name: str) -> None:
        self.writes.append(("delete-pod", name))

    async def post_event(
        self, owner: dict[str, Any], reason: str, message: str, event_type: str = "Normal"
    ) -> None:
        self.events.append((reason, message))

    def make_available(self) -> None:
        for objects in self.caches.shards.values():
            for facts in objects.values():
                n = facts["replicas"]
                facts["status"] = {
                    "observedGeneration": facts["generation"],
                    "replicas": n,
                    "readyReplicas": n,
                    "updatedReplicas": n,
                    "updateRevision": f"rev-{facts['generation']}",
                }


class InlineSolver:
    async def plan(self, problem: model.Problem, config: SolverConfig) -> planner.Plan:
        return planner.plan(problem, config)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def load(path: str) -> Any:
    return yaml.safe_load((ROOT / path).read_text())


def infd(**spec_changes: Any) -> dict[str, Any]:
    doc = load("crds/samples/llama-70b.yaml")
    doc["metadata"] = {"name": "llama", "namespace": "ml", "uid": "u-1", "generation": 1}
    doc["spec"]["solver"] = {"algorithm": "exact"}
    doc["spec"]["template"] = {"spec": {"containers": [{"name": "s", "image": "pause"}]}}
    doc["spec"].update(spec_changes)
    return doc


def run(controller: ctl.Controller) -> None:
    """A pass that looks at every deployment (as after any change; the queue that picks which
    ones a pass visits is tested in test_controller_queue.py)."""
    controller.mark_all()
    asyncio.run(controller.pass_all())


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in body["status"]["conditions"] if c["type"] == kind)


def test_create_plans_applies_and_reports(world: Any) -> None:
    controller, api, _ = world
    run(controller)
    body = api.caches.infds[KEY]
    expected = planner.decide_inputs(
        parsing.parse_deployment(body),
        parsing.parse_nodes(load("examples/nodes.yaml")),
        parsing.parse_grid_profile(load("crds/samples/gridprofile.yaml")),
        12,
        SolverConfig(algorithm="exact"),
    ).plan.to_dict()
    status = body["status"]
    assert [r["pool"] for r in status["placement"]] == [r["pool"] for r in expected["placement"]]
    assert status["emissions"]["gramsPerHour"] == pytest.approx(
        expected["emissionsGramsPerHour"], rel=1e-5
    )
    assert status["solver"]["method"] == "exact-bruteforce"
    assert status["observedGeneration"] == 1
    assert condition(body, "Optimized")["reason"] == "ExactOptimum"
    assert condition(body, "Ready")["status"] == "False"
    assert condition(body, "Progressing")["status"] == "True"
    created = [w[1] for w in api.writes if w[0] == "create"]
    assert created == (
        ["Service/llama"]
        + [f"Service/llama-shard-{i}" for i in range(8)]
        + [f"StatefulSet/llama-shard-{i}" for i in range(8)]
        + [f"PodDisruptionBudget/llama-shard-{i}" for i in range(8)]
    )
    assert api.events[0][0] == "Planned"
    # Deployments become available: Ready, then nothing more to write.
    api.make_available()
    run(controller)
    assert condition(body, "Ready")["status"] == "True"
    assert condition(body, "Ready")["reason"] == "AllShardsAvailable"
    assert body["status"]["placement"][0]["gpusPerReplica"] == 1
    assert body["status"]["pipelineLatencyMs"] == 110.0
    before = len(api.writes)
    for _ in range(5):
        run(controller)
    assert len(api.writes) == before, api.writes[before:]


def test_timer_replans_without_writing_when_nothing_moved(world: Any) -> None:
    controller, api, clock = world
    run(controller)
    api.make_available()
    run(controller)
    before = len(api.writes)
    clock.now += 16 * 60  # past reoptimizeInterval (15m)
    run(controller)
    assert controller.records[KEY].planned_at == clock.now
    assert len(api.writes) == before


def test_hysteresis_keeps_a_small_gain_and_takes_a_big_one(world: Any) -> None:
    controller, api, _ = world
    api.caches.infds[KEY]["spec"]["carbon"] = {"minSavingsPercent": 50}
    run(controller)
    api.make_available()
    run(controller)
    body = api.caches.infds[KEY]
    first = [r["pool"] for r in body["status"]["placement"]]
    # eu-north-1 gets dirtier: the optimum moves, but saves less than 50%: kept.
    profile = api.caches.profiles["default"]
    profile["spec"]["regions"]["eu-north-1"]["intensity"] = 400
    run(controller)
    assert [r["pool"] for r in body["status"]["placement"]] == first
    assert condition(body, "Optimized")["reason"] == "KeptCurrent"
    assert "minSavingsPercent=50" in condition(body, "Optimized")["message"]
    assert not any(w[0] == "replace" for w in api.writes)
    # Much dirtier: the move now saves more than 50%.
    profile["spec"]["regions"]["eu-north-1"]["intensity"] = 4000
    run(controller)
    now = [r["pool"] for r in body["status"]["placement"]]
    assert now != first
    assert all(p.startswith("us-east-1/") for p in now)
    assert any(w[0] == "replace" for w in api.writes)
    moved = [m for r, m in api.events if r == "Moved"]
    assert len(moved) == 1
    assert "eu-north-1/NVIDIA-H100-80GB-HBM3 -> us-east-1/NVIDIA-H100-80GB-HBM3" in moved[0]


def test_infeasible_current_placement_moves_despite_hysteresis(world: Any) -> None:
    controller, api, _ = world
    api.caches.infds[KEY]["spec"]["carbon"] = {"minSavingsPercent": 100}
    run(controller)
    nodes = dict(api.caches.nodes)
    cordoned = copy.deepcopy(nodes["eu-north-1-h100-0"])
    cordoned["spec"]["unschedulable"] = True
    nodes["eu-north-1-h100-0"] = cordoned
    api.caches.nodes = nodes
    run(controller)
    pools = {r["pool"] for r in api.caches.infds[KEY]["status"]["placement"]}
    assert pools == {"us-east-1/NVIDIA-H100-80GB-HBM3"}


def test_fewer_shards_delete_the_extra_deployments(world: Any) -> None:
    controller, api, _ = world
    run(controller)
    body = api.caches.infds[KEY]
    body["spec"]["sharding"]["shards"] = 4
    body["metadata"]["generation"] = 2
    run(controller)
    deleted = sorted(w[1] for w in api.writes if w[0] == "delete")
    assert deleted == sorted(
        [f"Service/llama-shard-{i}" for i in range(4, 8)]
        + [f"StatefulSet/llama-shard-{i}" for i in range(4, 8)]
        + [f"PodDisruptionBudget/llama-shard-{i}" for i in range(4, 8)]
    )
    assert len(body["status"]["placement"]) == 4
    assert body["status"]["observedGeneration"] == 2


def test_dry_run_creates_nothing(world: Any) -> None:
    controller, api, _ = world
    api.caches.infds[KEY]["spec"]["mode"] = "DryRun"
    run(controller)
    assert [w[0] for w in api.writes] == ["status"]
    body = api.caches.infds[KEY]
    assert condition(body, "Ready")["reason"] == "DryRun"
    assert len(body["status"]["placement"]) == 8


@pytest.mark.parametrize(
    ("mutate", "reason", "needle"),
    [
        (lambda c: c.profiles.pop("default"), "GridProfileNotFound", "kubectl apply"),
        (
            lambda c: c.infds[KEY]["spec"]["sharding"].update(replicas=40),
            "Infeasible",
            "no feasible placement",
        ),
        (
            lambda c: c.infds[KEY]["spec"]["model"].update(dtype="fp64"),
            "InvalidSpec",
            "spec.model.dtype",
        ),
        (
            lambda c: c.profiles["default"]["spec"]["regions"]["eu-north-1"].update(
                intensity=[1, 2]
            ),
            "InvalidGridProfile",
            "24 hourly values",
        ),
        (
            lambda c: c.infds[KEY]["spec"]["placement"]["nodeSelector"].update(
                matchLabels={"nvidia.com/gpu.product": "TPU"}
            ),
            "NoCandidatePool",
            "no candidate pool",
        ),
    ],
)
def test_errors_become_degraded_with_an_event(
    world: Any, mutate: Any, reason: str, needle: str
) -> None:
    controller, api, _ = world
    mutate(api.caches)
    run(controller)
    body = api.caches.infds[KEY]
    degraded = condition(body, "Degraded")
    assert degraded["status"] == "True"
    assert degraded["reason"] == reason
    assert needle in degraded["message"]
    assert condition(body, "Optimized")["status"] == "False"
    assert api.events == [(reason, degraded["message"])]
    assert not any(w[0] == "create" for w in api.writes)
    # the same error again: no new write, no new event
    before = len(api.writes)
    run(controller)
    run(controller)
    assert len(api.writes) == before
    assert len(api.events) == 1


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda body: body["spec"]["model"].update(dtype="fp64"), "InvalidSpec"),  # observe
        (lambda body: body["spec"]["sharding"].update(replicas=40), "Infeasible"),  # decide
    ],
)
def test_a_failure_after_a_good_plan_keeps_what_the_status_shows(
    world: Any, mutate: Any, reason: str
) -> None:
    """Degraded from the status as observed: Ready stays as it was (same transition time), the
    placement stays, the conditions name the new generation."""
    controller, api, _ = world
    run(controller)
    api.make_available()
    run(controller)
    body = api.caches.infds[KEY]
    ready = dict(condition(body, "Ready"))
    placement = body["status"]["placement"]
    mutate(body)
    body["metadata"]["generation"] = 2
    run(controller)
    assert condition(body, "Degraded")["reason"] == reason
    assert condition(body, "Degraded")["observedGeneration"] == 2
    kept = condition(body, "Ready")
    assert (kept["status"], kept["reason"], kept["lastTransitionTime"]) == (
        "True",
        ready["reason"],
        ready["lastTransitionTime"],
    )
    assert body["status"]["placement"] == placement


def test_status_patch_removes_stale_nested_keys() -> None:
    current = {"solver": {"method": "exact", "fallbackReason": "old"}, "placement": [1]}
    assert loop.status_patch(current, {"solver": {"method": "exact"}}) == {
        "solver": {"fallbackReason": None}
    }
    assert (
        loop.status_patch(current, {"solver": {"method": "exact", "fallbackReason": "old"}}) is None
    )


def test_conditions_keep_transition_time_until_status_changes() -> None:
    first = conditions.merge_conditions(
        [], [conditions.Condition("Ready", False, "A", "a")], 1, "t1"
    )
    same = conditions.merge_conditions(
        first, [conditions.Condition("Ready", False, "B", "b")], 2, "t2"
    )
    flipped = conditions.merge_conditions(
        same, [conditions.Condition("Ready", True, "C", "c")], 2, "t3"
    )
    assert [c["lastTransitionTime"] for c in (first[0], same[0], flipped[0])] == ["t1", "t1", "t3"]
    assert same[0]["observedGeneration"] == 2


@pytest.mark.parametrize(
    ("text", "seconds"), [("15m", 900), ("1h30m", 5400), ("45s", 45), ("1s", 10)]
)
def test_durations(text: str, seconds: float) -> None:
    assert resources.parse_duration(text) == seconds


def test_a_dry_run_deployment_holds_no_gpus(world: tuple[ctl.Controller, FakeApi, Clock]) -> None:
    """DryRun only reports a plan (no pods): the others plan as if it were not there."""
    controller, api, _ = world
    dry = infd(mode="DryRun")
    dry["metadata"] = {**dry["metadata"], "name": "dry", "uid": "u-2"}
    api.caches.infds = {("ml", "dry"): dry, **api.caches.infds}
    run(controller)
    assert dry["status"]["placement"], "the DryRun deployment is planned"
    held, holders = controller._held(KEY)
    assert held == {} and holders == {}


def test_a_new_replica_count_reaches_the_statefulsets_even_where_the_pools_stay(
    world: tuple[ctl.Controller, FakeApi, Clock],
) -> None:
    controller, api, _ = world
    body = api.caches.infds[KEY]
    body["spec"]["model"] = {**body["spec"]["model"], "parametersBillions": 1}  # room to spare
    body["spec"]["sharding"] = {**body["spec"]["sharding"], "replicas": 1}
    run(controller)
    api.make_available()
    sets = api.caches.shards[KEY]
    assert {f["replicas"] for k, f in sets.items() if k.startswith("StatefulSet/")} == {1}
    pools = [row["pool"] for row in api.caches.infds[KEY]["status"]["placement"]]
    body["spec"]["sharding"] = {**body["spec"]["sharding"], "replicas": 2}
    body["metadata"]["generation"] = 2
    run(controller)
    assert [row["pool"] for row in api.caches.infds[KEY]["status"]["placement"]] == pools
    assert {f["replicas"] for k, f in sets.items() if k.startswith("StatefulSet/")} == {2}


class PodIndex(dict[tuple[str, str], list[dict[str, Any]]]):
    """The pod index as the handlers expose it: (ns, owner) -> pod facts, and every pod."""

    def all(self) -> list[dict[str, Any]]:
        return [facts for pods in self.values() for facts in pods]


def test_a_deleted_deployment_frees_its_gpus_at_once_when_its_last_pod_goes(
    world: tuple[ctl.Controller, FakeApi, Clock],
) -> None:
    """Its GPUs are freed together, not pod by pod (freed pod by pod, two waiting tenants each
    re-planned into half of the green pool and split it between them)."""
    controller, api, _ = world
    api.caches.infds[KEY]["spec"]["sharding"]["replicas"] = 1
    other = infd()
    other["spec"]["sharding"]["replicas"] = 1
    other["metadata"] = {**other["metadata"], "name": "other", "uid": "u-2"}
    api.caches.infds = {("ml", "other"): other, **api.caches.infds}
    run(controller)
    booking = controller.records[("ml", "other")].booking
    assert booking is not None and sum(booking.gpus.values()) > 0
    pods = [
        {
            "namespace": "ml",
            "name": f"other-{node}-{i}",
            "node": node,
            "phase": "Running",
            "owner": "other",
            "gpus": 1,
            "memoryBytes": 0.0,
        }
        for node, gpus in booking.gpus.items()
        for i in range(gpus)
    ]
    api.caches.pods = PodIndex({("ml", "other"): pods})
    booked, _ = controller._held(KEY)
    del api.caches.infds[("ml", "other")]
    run(controller)
    assert controller._held(KEY)[0] == booked
    api.caches.pods[("ml", "other")] = pods[: len(pods) // 2]  # half deleted: all still held
    run(controller)
    held, holders = controller._held(KEY)
    assert held == booked
    assert all("InferenceDeployment ml/other" in who for who in holders.values())
    api.caches.pods[("ml", "other")] = []  # the last pod has gone
    run(controller)
    assert controller._held(KEY) == ({}, {})
    assert controller.departing == {}


def settled(controller: ctl.Controller, api: FakeApi) -> int:
    """Plan, apply, every StatefulSet available, a pass more: the writes so far."""
    run(controller)
    api.make_available()
    run(controller)
    return len(api.writes)


def set_facts(name: str, uid: str, generation: int, **status: int) -> dict[str, dict[str, Any]]:
    """A StatefulSet of llama's, as the index holds it."""
    facts = {"kind": "StatefulSet", "name": name, "uid": uid, "owner": "u-1"}
    return {f"StatefulSet/{name}": {**facts, "generation": generation, "status": status}}


def test_a_statefulset_whose_status_stopped_following_is_nudged_with_backoff(
    world: tuple[ctl.Controller, FakeApi, Clock],
) -> None:
    """After API server restarts the StatefulSet controller may back a set off for up to 1000 s
    with its status one generation behind: the operator touches it (an annotation, no new
    spec) once the lag has lasted a minute, then twice as long each time, and never when the
    status is current."""
    controller, api, clock = world
    before = settled(controller, api)
    stuck = api.caches.shards[KEY]["StatefulSet/llama-shard-3"]
    stuck["generation"] += 1  # e.g. a replica change the controller never observed

    def nudges() -> list[str]:
        return [name for verb, name in api.writes[before:] if verb == "replace"]

    for _ in range(3):
        run(controller)
        clock.now += 29
    assert nudges() == []  # a lag of seconds is normal
    assert controller.due[KEY] == pytest.approx(clock.now - 87 + 60)  # visited then, no event
    clock.now += 4  # 91 s after the lag was first seen
    run(controller)
    assert nudges() == ["StatefulSet/llama-shard-3"]
    stuck = api.caches.shards[KEY]["StatefulSet/llama-shard-3"]
    assert stuck["annotations"][shardsets.RESYNC_ANNOTATION] == "1"
    assert stuck["annotations"][workloads.HASH_ANNOTATION]  # the spec is the one we wrote
    clock.now += 100
    run(controller)
    assert len(nudges()) == 1  # the next one waits 120 s
    clock.now += 21
    run(controller)
    assert len(nudges()) == 2
    assert (
        api.caches.shards[KEY]["StatefulSet/llama-shard-3"]["annotations"][
            shardsets.RESYNC_ANNOTATION
        ]
        == "2"
    )
    api.make_available()  # the controller caught up
    for _ in range(10):
        clock.now += 1000
        run(controller)
    assert len(nudges()) == 2
    assert controller.records[KEY].stale == {}


def test_a_status_that_undercounts_ready_pods_is_stale() -> None:
    p = pipeline.Pipeline(name="llama", namespace="ml", uid="u-1", stages=(), replicas=2)
    name = "llama-shard-0"
    live = set_facts(name, "set-0", 4, observedGeneration=4, readyReplicas=1)
    pod = {"name": f"{name}-0", "controller": "set-0", "ready": True, "deleting": False}
    pod["controllerRef"] = f"StatefulSet/{name}"
    assert shardsets.stale_objects(p, live, [pod]) == {}
    second = {**pod, "name": f"{name}-1"}
    assert shardsets.stale_objects(p, live, [pod, second]) == {
        f"StatefulSet/{name}": "status.readyReplicas 1 but 2 of its pods are Ready"
    }
    leaving = {**second, "deleting": True}
    assert shardsets.stale_objects(p, live, [pod, leaving]) == {}
    foreign = {**live[f"StatefulSet/{name}"], "owner": "someone-else"}
    foreign["status"] = {"observedGeneration": 1}
    assert shardsets.stale_objects(p, {f"StatefulSet/{name}": foreign}, []) == {}


def test_a_pod_left_by_a_gone_statefulset_is_an_orphan_only_then() -> None:
    """A pod named as our set's pod and controlled by a StatefulSet of that name with another
    uid (the set was deleted and created again; the garbage collector has not yet taken it)."""
    p = pipeline.Pipeline(name="llama", namespace="ml", uid="u-1", stages=(), replicas=1)
    name = "llama-shard-6"
    live = set_facts(name, "new", 1, observedGeneration=1)
    left = {"name": f"{name}-0", "controller": "old", "controllerRef": f"StatefulSet/{name}"}
    assert shardsets.stale_objects(p, live, [left]) == {
        f"Pod/{name}-0": f"controlled by StatefulSet {name} uid old, which is gone (the set of "
        "that name is uid new)"
    }
    assert shardsets.stale_objects(p, live, [{**left, "deleting": True}]) == {}
    assert shardsets.stale_objects(p, live, [{**left, "controller": "new"}]) == {}
    # controlled by something else (not a StatefulSet of that name), or by nothing: not ours
    other = {**left, "controllerRef": "ReplicaSet/llama-shard-6"}
    assert shardsets.stale_objects(p, live, [other]) == {}
    assert shardsets.stale_objects(p, live, [{**left, "controller": ""}]) == {}
    # no set of ours of that name: nothing to unblock
    assert shardsets.stale_objects(p, {}, [left]) == {}


def test_a_pod_left_by_a_gone_statefulset_is_deleted_after_a_minute(
    world: tuple[ctl.Controller, FakeApi, Clock],
) -> None:
    """kube-controller-manager's garbage collector may back off for minutes after API server
    restarts; the pod blocks the new set ("already exists"). Deleted once, after 60 s."""
    controller, api, clock = world
    before = settled(controller, api)
    sts = api.caches.shards[KEY]["StatefulSet/llama-shard-2"]
    left = {
        "namespace": "ml",
        "name": "llama-shard-2-0",
        "node": "",
        "phase": "Running",
        "owner": "llama",
        "controller": "gone-uid",
        "controllerRef": "StatefulSet/llama-shard-2",
        "shard": "2",
        "podIndex": "0",
        "ready": True,
        "gpus": 0,
        "memoryBytes": 0.0,
    }
    assert sts["uid"] != "gone-uid"
    api.caches.pods = PodIndex({KEY: [left]})
    run(controller)
    clock.now += 30
    run(controller)
    assert api.writes[before:] == []
    clock.now += 31
    run(controller)
    assert api.writes[before:] == [("delete-pod", "llama-shard-2-0")]
    api.caches.pods = PodIndex({KEY: []})  # gone
    for _ in range(5):
        clock.now += 1000
        run(controller)
    assert api.writes[before:] == [("delete-pod", "llama-shard-2-0")]
    assert controller.records[KEY].stale == {}
