"""Diff the live spec, restore drift (#17): a shard StatefulSet scaled or edited by hand keeps our
spec-hash annotation, so the hash alone never noticed; the live replicas and the template's
node affinity and resources are compared too, and Ready waits for the restored replicas."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from test_controller import KEY, FakeApi, condition, run
from test_pipeline import TEMPLATE, make_pipeline

from greenshard.k8s import controller as ctl
from greenshard.k8s import pipeline, shardsets

SHARD = "StatefulSet/llama-shard-2"


def converged(world: Any) -> tuple[ctl.Controller, FakeApi, dict[str, Any]]:
    controller, api, _ = world
    run(controller)
    api.make_available()
    run(controller)
    body = api.caches.infds[KEY]
    assert condition(body, "Ready")["status"] == "True"
    return controller, api, body


def by_hand(api: FakeApi, change: Any) -> dict[str, Any]:
    """An edit through the API: the spec changes, generation moves, the annotation stays."""
    facts = api.caches.shards[KEY][SHARD]
    change(facts)
    facts["generation"] += 1
    facts["status"] = {**facts["status"], "observedGeneration": facts["generation"]}
    return facts  # type: ignore[no-any-return]


def test_a_shard_scaled_to_zero_by_hand_is_restored_and_not_ready_meanwhile(world: Any) -> None:
    controller, api, body = converged(world)
    replicas = body["spec"]["sharding"]["replicas"]

    def scale_to_zero(facts: dict[str, Any]) -> None:
        facts["replicas"] = 0
        facts["status"] = {**facts["status"], "replicas": 0, "readyReplicas": 0}

    by_hand(api, scale_to_zero)
    before = len(api.writes)
    run(controller)
    assert [w for w in api.writes[before:] if w[0] != "status"] == [("replace", SHARD)]
    restored = api.caches.shards[KEY][SHARD]
    assert restored["replicas"] == replicas
    # status never claimed Ready meanwhile: the pass saw 0 of R
    ready = condition(body, "Ready")
    assert ready["status"] == "False"
    assert "llama-shard-2" in ready["message"]
    # replicas come back: Ready again, and nothing more to write
    api.make_available()
    run(controller)
    assert condition(body, "Ready")["status"] == "True"
    before = len(api.writes)
    for _ in range(3):
        run(controller)
    assert api.writes[before:] == []


def test_ready_waits_for_the_ready_replicas_not_just_the_spec(world: Any) -> None:
    controller, api, body = converged(world)
    facts = api.caches.shards[KEY][SHARD]
    facts["status"] = {**facts["status"], "readyReplicas": facts["replicas"] - 1}
    run(controller)
    assert condition(body, "Ready")["status"] == "False"
    assert not [w for w in api.writes if w == ("replace", SHARD)]  # a pod restarting: no drift


def test_node_affinity_or_resources_edited_by_hand_are_restored(world: Any) -> None:
    controller, api, _ = converged(world)
    facts = api.caches.shards[KEY][SHARD]
    ours = facts["template"]
    by_hand(api, lambda f: f.update(template="someone's edit"))
    run(controller)
    assert ("replace", SHARD) in api.writes
    assert api.caches.shards[KEY][SHARD]["template"] == ours


def live(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the API server answers for a StatefulSet we sent: defaults filled in, quantities
    in canonical form, empty lists left out."""
    body = copy.deepcopy(manifest)
    spec = body["spec"]
    spec["revisionHistoryLimit"] = 10
    pod = spec["template"]["spec"]
    pod.update(dnsPolicy="ClusterFirst", restartPolicy="Always", schedulerName="default-scheduler")
    pod["securityContext"] = {}
    for c in pod["containers"]:
        c.update(imagePullPolicy="IfNotPresent", terminationMessagePath="/dev/termination-log")
        res = c.get("resources") or {}
        for part in res.values():
            for name, value in part.items():
                if str(value) == str(3 * 2**30):
                    part[name] = "3Gi"
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    for term in terms["nodeSelectorTerms"]:
        for req in term["matchExpressions"]:
            if req.get("values") == []:
                del req["values"]
    body["status"] = {"observedGeneration": 1, "replicas": 2}
    return body


def test_what_the_api_server_answers_is_no_drift() -> None:
    p = make_pipeline()
    template = copy.deepcopy(TEMPLATE)
    # an empty list the API server leaves out
    template["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "Exists", "values": []}]}
                ]
            }
        }
    }
    for stage in p.stages:
        manifest = pipeline.stage_statefulset(p, stage, template)
        answer = live(manifest)
        assert answer != manifest
        facts = shardsets.object_facts(answer)
        assert not shardsets.drifted(facts, manifest), stage
    cpu = pipeline.stage_statefulset(p, p.stages[0], template)
    assert cpu["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] == {
        "memory": str(3 * 2**30)
    }  # sent in bytes, answered as 3Gi: the same amount


@pytest.mark.parametrize(
    "edit",
    [
        lambda pod: pod["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]["nodeSelectorTerms"][0]["matchFields"][0].update(values=["another-node"]),
        lambda pod: pod["containers"][0]["resources"]["limits"].update({"nvidia.com/gpu": "1"}),
        lambda pod: pod["containers"][0]["resources"].update(requests={"memory": "2Gi"}),
        lambda pod: pod.pop("affinity"),
    ],
    ids=["packed node", "gpus", "memory", "affinity removed"],
)
def test_a_hand_edit_of_the_template_is_drift(edit: Any) -> None:
    p = make_pipeline()
    manifest = pipeline.stage_statefulset(p, p.stages[1], TEMPLATE)
    answer = live(manifest)
    edit(answer["spec"]["template"]["spec"])
    assert shardsets.drifted(shardsets.object_facts(answer), manifest)


def test_services_are_not_compared_beyond_the_hash() -> None:
    p = make_pipeline()
    manifest = pipeline.stage_service(p, p.stages[0])
    facts = shardsets.object_facts({**manifest, "spec": {**manifest["spec"], "clusterIP": "None"}})
    assert facts["template"] is None
    assert not shardsets.drifted(facts, manifest)
