"""Touch only what you own: objects the InferenceDeployment does not control (by its controller
ownerReference, not by label) are never replaced or deleted, and one that takes a name the plan
needs makes the deployment Degraded, reason Conflict."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from test_controller import KEY, FakeApi, condition, run

from greenshard.k8s import pipeline, rollout, shardsets, tenancy

SETS = [f"StatefulSet/llama-shard-{i}" for i in range(8)]


def foreign(kind: str, name: str, owner_uid: str = "", label: str = "llama") -> dict[str, Any]:
    """Someone else's object: controlled by ``owner_uid`` ('' for nothing), labelled as ours."""
    refs = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "x", "uid": owner_uid}]
    body = {
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": "ml",
            "uid": f"uid-{name}",
            "generation": 3,
            "resourceVersion": "77",
            "labels": {pipeline.DEPLOYMENT_LABEL: label},
            "annotations": {pipeline.HASH_ANNOTATION: "theirs"},
            "ownerReferences": [{**refs[0], "controller": True}] if owner_uid else [],
        },
        "spec": {"replicas": 1},
    }
    return shardsets.object_facts(body)


def calls_on(api: FakeApi, key: str) -> list[str]:
    return [verb for verb, what in api.writes if what == key]


def test_object_facts_keep_the_controller_uid() -> None:
    body = {
        "kind": "StatefulSet",
        "metadata": {
            "name": "a",
            "uid": "u-a",
            "ownerReferences": [
                {"uid": "not-controller", "controller": False},
                {"uid": "u-1", "controller": True},
            ],
        },
    }
    facts = shardsets.object_facts(body)
    assert (facts["uid"], facts["owner"]) == ("u-a", "u-1")
    assert shardsets.object_facts({"metadata": {"name": "b"}})["owner"] == ""


@pytest.mark.parametrize("owner_uid", ["", "u-someone-else"], ids=["no owner", "other owner"])
def test_a_labelled_foreign_statefulset_is_left_alone_and_the_deployment_degraded(
    world: Any, owner_uid: str
) -> None:
    controller, api, clock = world
    api.caches.shards[KEY] = {SETS[3]: foreign("StatefulSet", "llama-shard-3", owner_uid)}
    run(controller)
    assert calls_on(api, SETS[3]) == []  # neither replaced nor deleted
    created = [w for v, w in api.writes if v == "create"]
    assert [s for s in SETS if s in created] == SETS[:3] + SETS[4:]  # the rest still applied
    body = api.caches.infds[KEY]
    degraded = condition(body, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "Conflict")
    assert degraded["message"] == (
        "StatefulSet ml/llama-shard-3 exists and is not controlled by InferenceDeployment "
        "llama: delete or rename it"
    )
    assert condition(body, "Optimized")["status"] == "True"  # the plan itself is fine
    api.make_available()  # even the foreign one says Ready: it is not ours
    foreign_facts = api.caches.shards[KEY][SETS[3]]
    assert foreign_facts["owner"] == owner_uid
    clock.now += 2
    run(controller)
    assert condition(body, "Ready")["status"] == "False"
    assert "llama-shard-3" in condition(body, "Ready")["message"]
    # backing off: retried after 1, 2, 4 ... s, not every pass; one Event in all
    retries = controller.records[KEY].failures
    for _ in range(20):
        run(controller)
    assert controller.records[KEY].failures == retries
    clock.now += 600
    run(controller)
    assert controller.records[KEY].failures == retries + 1
    assert [r for r, _ in api.events if r == "Conflict"] == ["Conflict"]
    assert calls_on(api, SETS[3]) == []
    # its owner removes it: ours is created, Degraded clears
    del api.caches.shards[KEY][SETS[3]]
    clock.now += 600
    run(controller)
    assert calls_on(api, SETS[3]) == ["create"]
    api.make_available()
    run(controller)
    assert condition(body, "Degraded")["status"] == "False"
    assert condition(body, "Ready")["status"] == "True"
    assert controller.records[KEY].failures == 0


def test_an_unlabelled_foreign_object_is_found_when_create_says_it_exists(world: Any) -> None:
    controller, api, _ = world
    api.unlabelled["Service/llama"] = foreign("Service", "llama", "u-someone-else", label="x")
    run(controller)
    assert api.reads == ["Service/llama"]
    assert calls_on(api, "Service/llama") == ["create"]  # the 409, nothing after it
    degraded = condition(api.caches.infds[KEY], "Degraded")
    assert degraded["reason"] == "Conflict"
    assert degraded["message"].startswith("Service ml/llama exists and is not controlled")
    assert [w for v, w in api.writes if v == "create"][-1] == "PodDisruptionBudget/llama-shard-7"


def test_a_409_on_our_own_object_not_yet_in_the_cache_is_no_conflict(world: Any) -> None:
    controller, api, _ = world
    # created by an earlier pass; its watch event has not arrived yet
    api.unlabelled["Service/llama"] = foreign("Service", "llama", "u-1")
    run(controller)
    assert api.reads == ["Service/llama"]
    body = api.caches.infds[KEY]
    assert condition(body, "Degraded")["status"] == "False"
    assert not [r for r, _ in api.events if r == "Conflict"]


def test_labelled_objects_of_another_owner_are_never_deleted(world: Any) -> None:
    controller, api, _ = world
    api.caches.shards[KEY] = {
        "Deployment/llama-shard-0": foreign("Deployment", "llama-shard-0"),  # looks legacy
        "Service/llama-extra": foreign("Service", "llama-extra", "u-other"),
        "StatefulSet/llama-shard-9": foreign("StatefulSet", "llama-shard-9", "u-other"),
    }
    run(controller)
    api.make_available()
    run(controller)
    assert not [w for v, w in api.writes if v == "delete"]
    body = api.caches.infds[KEY]
    assert condition(body, "Degraded")["status"] == "False"  # not in the way: not a conflict
    assert condition(body, "Ready")["status"] == "True"
    # ours, no longer planned: deleted
    api.caches.shards[KEY]["Service/llama-old"] = foreign("Service", "llama-old", "u-1")
    run(controller)
    assert [w for v, w in api.writes if v == "delete"] == ["Service/llama-old"]


def _pod(name: str, shard: int, index: int, revision: str, controller: str) -> dict[str, Any]:
    return tenancy.pod_facts(
        {
            "metadata": {
                "name": name,
                "namespace": "ml",
                "labels": {
                    pipeline.DEPLOYMENT_LABEL: "p",
                    pipeline.SHARD_LABEL: str(shard),
                    tenancy.POD_INDEX_LABEL: str(index),
                    tenancy.REVISION_LABEL: revision,
                },
                "ownerReferences": [{"uid": controller, "controller": True}],
            },
            "spec": {"nodeName": "n1", "containers": [{"name": "c"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        }
    )


def test_a_rollout_deletes_only_pods_of_our_statefulsets() -> None:
    """A move replaces pipeline replica 0; a look-alike pod with our labels, controlled by
    something else, is not deleted with it."""
    stage = pipeline.Stage(0, 0, 31, "r", "cpu", 0, 0, ("n1",))
    p = pipeline.Pipeline("p", "ml", "u-p", (stage,), 1)
    manifest = pipeline.stage_statefulset(p, stage, {"spec": {"containers": [{"name": "c"}]}})
    old = shardsets.object_facts(
        {
            **manifest,
            "metadata": {**manifest["metadata"], "uid": "u-sts", "generation": 2},
            "status": {"observedGeneration": 2, "updateRevision": "new"},
        }
    )

    class Api:
        def __init__(self) -> None:
            self.deleted: list[str] = []

        async def delete_pod(self, namespace: str, name: str) -> None:
            self.deleted.append(name)

        async def create_object(self, manifest: dict[str, Any]) -> None: ...

        async def replace_object(self, manifest: dict[str, Any], current: Any) -> None: ...

        async def delete_object(self, kind: str, namespace: str, name: str) -> None: ...

        async def read_object(self, kind: str, namespace: str, name: str) -> None: ...

    pods = [_pod("p-shard-0-0", 0, 0, "old", "u-sts"), _pod("fake", 0, 0, "old", "u-other")]
    api = Api()
    applied = asyncio.run(
        shardsets.apply(api, p, None, {"StatefulSet/p-shard-0": old}, pods, False)
    )
    assert applied.rollout is not None and applied.rollout.strategy == rollout.ONE_AT_A_TIME
    assert api.deleted == ["p-shard-0-0"]


def test_kube_api_reads_an_object_or_none() -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from greenshard.k8s import kube

    api = kube.KubeApi(client.ApiClient())
    calls: list[tuple[str, str]] = []

    def read(name: str, namespace: str, **_: Any) -> Any:
        calls.append((namespace, name))
        if name == "gone":
            raise ApiException(status=404, reason="Not Found")
        return {
            "metadata": {
                "name": name,
                "ownerReferences": [{"kind": "X", "name": "x", "uid": "u-x", "controller": True}],
            }
        }

    api.apps.read_namespaced_stateful_set = read  # type: ignore[method-assign]
    body = asyncio.run(api.read_object("StatefulSet", "ml", "a"))
    assert body is not None and pipeline.controller_uid(body["metadata"]) == "u-x"
    assert asyncio.run(api.read_object("StatefulSet", "ml", "gone")) is None
    assert calls == [("ml", "a"), ("ml", "gone")]


@pytest.mark.parametrize("kind", ["Service", "PodDisruptionBudget"])
def test_a_foreign_object_of_any_kind_we_make_is_a_conflict(world: Any, kind: str) -> None:
    controller, api, _ = world
    key = f"{kind}/llama-shard-1"
    api.caches.shards[KEY] = {key: foreign(kind, "llama-shard-1", "u-other")}
    run(controller)
    assert calls_on(api, key) == []
    degraded = condition(api.caches.infds[KEY], "Degraded")
    assert degraded["reason"] == "Conflict"
    assert degraded["message"].startswith(f"{kind} ml/llama-shard-1 exists and is not controlled")
    # ours are all there but that one
    created = {w for v, w in api.writes if v == "create"}
    assert "PodDisruptionBudget/llama-shard-0" in created and key not in created
