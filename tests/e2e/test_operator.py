"""The operator against the real control plane: admission, placement, re-planning, GC, restarts."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chaos_harness import infd_doc
from operator_harness import ROOT, Operator, running_operator

SAMPLE = yaml.safe_load((ROOT / "crds/samples/llama-70b.yaml").read_text())
PROFILE = yaml.safe_load((ROOT / "crds/samples/gridprofile.yaml").read_text())


@pytest.fixture(scope="module")
def operator(crds: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    with running_operator(crds.kubeconfig, tmp_path_factory.mktemp("operator")) as op:
        yield op


def profile(cluster: Any, name: str, regions: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(PROFILE)
    doc["metadata"] = {"name": name}
    doc["spec"]["regions"] = regions
    cluster.apply_yaml(yaml.safe_dump(doc))
    return doc


def infd(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    doc = copy.deepcopy(SAMPLE)
    doc["metadata"] = {"name": name, "namespace": namespace}
    doc["spec"]["template"] = {
        "spec": {"containers": [{"name": "server", "image": "registry.k8s.io/pause:3.10"}]}
    }
    for key, value in spec.items():
        doc["spec"][key] = value
    return doc


def get(cluster: Any, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = cluster.get_json("infd", name, namespace=namespace)
    return result


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond["type"] == kind:
            return dict(cond)
    return {}


def wait_ready(cluster: Any, namespace: str, name: str, timeout: float = 90) -> dict[str, Any]:
    cluster.kubectl(
        "wait",
        "--for=condition=Ready",
        f"infd/{name}",
        f"--timeout={timeout}s",
        namespace=namespace,
        timeout=timeout + 30,
    )
    return get(cluster, namespace, name)


def pools(body: dict[str, Any]) -> list[str]:
    return [row["pool"] for row in body["status"]["placement"]]


def shard_sets(cluster: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    """The shard StatefulSets of InferenceDeployment NAME (one per shard)."""
    return list(
        cluster.items("statefulsets", "-l", f"greenshard.io/deployment={name}", namespace=namespace)
    )


def budgets(cluster: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    """The shard PodDisruptionBudgets of InferenceDeployment NAME (one per shard)."""
    return list(
        cluster.items(
            "poddisruptionbudgets", "-l", f"greenshard.io/deployment={name}", namespace=namespace
        )
    )


def apply_infd(cluster: Any, doc: dict[str, Any]) -> None:
    cluster.apply_yaml(yaml.safe_dump(doc))


# ----------------------------------------------------------------------------- admission

INVALID = [
    ("shards exceed layers", {"sharding": {"shards": 100}}, "spec.sharding.shards"),
    ("tokens not positive", {"workload": {"tokensPerSecond": -1}}, "spec.workload.tokensPerSecond"),
    (
        "unknown dtype",
        {"model": {**SAMPLE["spec"]["model"], "dtype": "float64"}},
        "spec.model.dtype",
    ),
    ("qubit budget", {"solver": {"maxQubits": 30}}, "spec.solver.maxQubits"),
    (
        "qaoa needs a qubit per shard",
        {"solver": {"algorithm": "qaoa", "maxQubits": 4}},
        "spec.solver.maxQubits",
    ),
    (
        "bad selector operator",
        {
            "placement": {
                "nodeSelector": {
                    "matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]
                }
            }
        },
        "spec.placement.nodeSelector.matchExpressions[0].operator",
    ),
    (
        "In without values",
        {"placement": {"nodeSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}},
        "values must be non-empty",
    ),
    ("zero layers", {"model": {**SAMPLE["spec"]["model"], "layers": 0}}, "spec.model.layers"),
    ("bad interval", {"carbon": {"reoptimizeInterval": "soon"}}, "spec.carbon.reoptimizeInterval"),
    ("unknown mode", {"mode": "Maybe"}, "spec.mode"),
    ("too many hops", {"placement": {"maxRegionHops": 8}}, "spec.placement.maxRegionHops"),
    ("savings over 100", {"carbon": {"minSavingsPercent": 150}}, "spec.carbon.minSavingsPercent"),
    ("no template in Apply", {"template": None}, "spec.template"),
    (
        "template without containers",
        {"template": {"spec": {"containers": []}}},
        "spec.template.spec.containers",
    ),
]


@pytest.mark.parametrize(("case", "change", "field"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_objects_are_rejected_with_422_naming_the_field(
    crds: Any, namespace: str, case: str, change: dict[str, Any], field: str
) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    doc = infd("bad", namespace)
    for key, value in change.items():
        if value is None:
            doc["spec"].pop(key)
        else:
            doc["spec"][key] = value
    with crds.api_client() as api_client:
        api = client.CustomObjectsApi(api_client)
        with pytest.raises(ApiException) as err:
            api.create_namespaced_custom_object(
                "greenshard.io", "v1alpha1", namespace, "inferencedeployments", doc
            )
    assert err.value.status == 422, case
    message = json.loads(err.value.body)["message"]
    assert field in message, message


def test_kubectl_explain_teaches_the_api(crds: Any) -> None:
    out = crds.kubectl("explain", "inferencedeployment.spec.sharding").stdout
    assert "shards" in out and "Pipeline shards" in out
    out = crds.kubectl("explain", "gridprofile.spec.regions").stdout
    assert "topology.kubernetes.io/region" in out


# ----------------------------------------------------------------------------- placement


def test_sample_reaches_ready_on_the_planned_pools_and_matches_the_cli(
    cluster: Any, operator: Operator, namespace: str, tmp_path: Path
) -> None:
    profile(cluster, "e2e-sample", PROFILE["spec"]["regions"])
    doc = infd("llama", namespace, carbon={"gridProfile": "e2e-sample"})
    start = time.monotonic()
    apply_infd(cluster, doc)
    body = wait_ready(cluster, namespace, "llama")
    elapsed = time.monotonic() - start
    status = body["status"]
    assert condition(body, "Optimized")["status"] == "True"
    assert condition(body, "Degraded")["status"] == "False"
    assert status["observedGeneration"] == body["metadata"]["generation"]
    # every pod bound by kube-scheduler to a node of its shard's pool
    labels = cluster.node_labels()
    for row in status["placement"]:
        pods = cluster.pods(namespace, f"greenshard.io/shard={row['shard']}")
        assert len(pods) == doc["spec"]["sharding"]["replicas"]
        for pod in pods:
            node = labels[pod["spec"]["nodeName"]]
            assert node["topology.kubernetes.io/region"] == row["region"]
            assert node["nvidia.com/gpu.product"] == row["accelerator"]
            assert pod["status"]["phase"] == "Running"
    # the same answer as `greenshard plan` on the same inputs
    nodes_file = tmp_path / "nodes.yaml"
    nodes_file.write_text(cluster.kubectl("get", "nodes", "-o", "yaml").stdout)
    deploy_file = tmp_path / "deploy.yaml"
    deploy_file.write_text(yaml.safe_dump(doc))
    profile_file = tmp_path / "profile.yaml"
    profile_file.write_text(yaml.safe_dump(cluster.get_json("gp", "e2e-sample")))
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "greenshard.cli",
            "plan",
            "-f",
            str(deploy_file),
            "--nodes",
            str(nodes_file),
            "--profile",
            str(profile_file),
            "--hour",
            "12",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT / "operator"), "PATH": "/usr/bin:/bin"},
    )
    plan = json.loads(cli.stdout)
    assert [r["pool"] for r in plan["placement"]] == pools(body)
    assert status["emissions"]["gramsPerHour"] == pytest.approx(
        plan["emissionsGramsPerHour"], rel=1e-5
    )
    assert status["emissions"]["baselineGramsPerHour"] == pytest.approx(
        plan["baselineGramsPerHour"], rel=1e-5
    )
    assert status["solver"]["method"] == plan["solver"]["method"]
    # the preview is what the operator runs: same ansatz, depth and state
    assert status["solver"]["ansatz"] == plan["solver"]["ansatz"] == "threshold-grover"
    assert status["solver"]["depth"] == plan["solver"]["depth"] >= 1
    assert status["solver"]["rounds"] == plan["solver"]["rounds"] >= 1
    assert status["solver"]["oracleQueries"] == plan["solver"]["oracleQueries"] > 0
    assert status["solver"]["samplingFoundOptimum"] == plan["solver"]["samplingFoundOptimum"]
    assert status["solver"]["probabilityOfOptimum"] == pytest.approx(
        plan["solver"]["probabilityOfOptimum"], rel=1e-3
    )
    assert status["solver"]["feasibleSetRatio"] == pytest.approx(
        plan["solver"]["feasibleSetRatio"], rel=1e-3
    )
    print(f"apply -> Ready: {elapsed:.1f} s; solver {status['solver']['wallSeconds']} s")
    # printer columns
    wide = cluster.kubectl("get", "infd", "llama", "-o", "wide", namespace=namespace).stdout
    header = wide.splitlines()[0].split()
    assert header[:9] == [
        "NAME", "SHARDS", "SOLVER", "GCO2E/H", "SAVINGS%", "READY", "REASON", "AGE", "GAP"
    ]  # fmt: skip
    assert "True" in wide.splitlines()[1]


def test_spec_update_replans_and_removes_shards(
    cluster: Any, operator: Operator, namespace: str
) -> None:
    profile(cluster, "e2e-update", PROFILE["spec"]["regions"])
    doc = infd("upd", namespace, carbon={"gridProfile": "e2e-update"})
    doc["spec"]["sharding"] = {"shards": 4, "replicas": 1}
    apply_infd(cluster, doc)
    body = wait_ready(cluster, namespace, "upd")
    assert len(shard_sets(cluster, namespace, "upd")) == 4
    pdbs = budgets(cluster, namespace, "upd")
    assert sorted(b["metadata"]["name"] for b in pdbs) == [f"upd-shard-{i}" for i in range(4)]
    for pdb in pdbs:
        assert pdb["spec"]["maxUnavailable"] == 1
        assert pdb["metadata"]["ownerReferences"][0]["uid"] == body["metadata"]["uid"]
    doc["spec"]["sharding"] = {"shards": 2, "replicas": 1}
    apply_infd(cluster, doc)
    cluster.wait(
        lambda: get(cluster, namespace, "upd")["status"].get("observedGeneration") == 2,
        what="observedGeneration 2",
    )
    body = wait_ready(cluster, namespace, "upd")
    assert len(body["status"]["placement"]) == 2
    cluster.wait(
        lambda: len(shard_sets(cluster, namespace, "upd")) == 2, what="2 shard StatefulSets"
    )
    names = sorted(d["metadata"]["name"] for d in shard_sets(cluster, namespace, "upd"))
    assert names == ["upd-shard-0", "upd-shard-1"]
    cluster.wait(
        lambda: len(budgets(cluster, namespace, "upd")) == 2, what="2 PodDisruptionBudgets"
    )


def test_gridprofile_change_moves_with_hysteresis(
    cluster: Any, operator: Operator, namespace: str
) -> None:
    regions = {
        "eu-north-1": {"intensity": 50, "pue": 1.1},
        "us-east-1": {"intensity": 400, "pue": 1.1},
    }
    profile(cluster, "e2e-gp", regions)
    doc = infd("gp", namespace, carbon={"gridProfile": "e2e-gp", "minSavingsPercent": 20})
    doc["spec"]["sharding"] = {"shards": 2, "replicas": 1}
    doc["spec"]["placement"] = {
        "nodeSelector": {
            "matchLabels": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
            "matchExpressions": [
                {
                    "key": "topology.kubernetes.io/region",
                    "operator": "In",
                    "values": ["eu-north-1", "us-east-1"],
                }
            ],
        }
    }
    apply_infd(cluster, doc)
    body = wait_ready(cluster, namespace, "gp")
    assert set(pools(body)) == {"eu-north-1/NVIDIA-H100-80GB-HBM3"}
    # us-east-1 becomes slightly cleaner: a 10% saving is below minSavingsPercent 20: kept.
    regions["us-east-1"]["intensity"] = 45
    profile(cluster, "e2e-gp", regions)
    cluster.wait(
        lambda: (
            condition(get(cluster, namespace, "gp"), "Optimized").get("reason") == "KeptCurrent"
        ),
        what="KeptCurrent",
    )
    assert set(pools(get(cluster, namespace, "gp"))) == {"eu-north-1/NVIDIA-H100-80GB-HBM3"}
    # much cleaner: moves, with an Event naming old and new pools and the saving
    regions["us-east-1"]["intensity"] = 5
    profile(cluster, "e2e-gp", regions)
    cluster.wait(
        lambda: set(pools(get(cluster, namespace, "gp"))) == {"us-east-1/NVIDIA-H100-80GB-HBM3"},
        what="move to us-east-1",
    )
    wait_ready(cluster, namespace, "gp")
    events = cluster.items("events", "--field-selector", "reason=Moved", namespace=namespace)
    assert any(
        "eu-north-1/NVIDIA-H100-80GB-HBM3 -> us-east-1/NVIDIA-H100-80GB-HBM3" in e["message"]
        and "% saved" in e["message"]
        for e in events
    )


def test_node_relabel_replans(cluster: Any, operator: Operator, namespace: str) -> None:
    node = yaml.safe_load(f"""
apiVersion: v1
kind: Node
metadata:
  name: e2e-relabel-{namespace[-8:]}
  annotations: {{kwok.x-k8s.io/node: fake}}
  labels:
    kubernetes.io/hostname: e2e-relabel-{namespace[-8:]}
    type: kwok
    topology.kubernetes.io/region: e2e-green
    nvidia.com/gpu.product: NVIDIA-L4
    nvidia.com/gpu.memory: "23034"
    nvidia.com/gpu.count: "8"
status:
  allocatable: {{cpu: "32", memory: 256Gi, pods: "110", nvidia.com/gpu: "8"}}
  capacity: {{cpu: "32", memory: 256Gi, pods: "110", nvidia.com/gpu: "8"}}
""")
    name = node["metadata"]["name"]
    cluster.apply_yaml(yaml.safe_dump(node))
    try:
        profile(
            cluster, "e2e-relabel", {"e2e-green": {"intensity": 5}, "us-east-1": {"intensity": 400}}
        )
        doc = infd("rl", namespace, carbon={"gridProfile": "e2e-relabel"})
        doc["spec"]["model"] = {
            "name": "small",
            "layers": 32,
            "hiddenSize": 4096,
            "parametersBillions": 7,
            "dtype": "bfloat16",
        }
        doc["spec"]["sharding"] = {"shards": 2, "replicas": 1}
        doc["spec"]["placement"] = {
            "nodeSelector": {"matchLabels": {"nvidia.com/gpu.product": "NVIDIA-L4"}}
        }
        apply_infd(cluster, doc)
        body = wait_ready(cluster, namespace, "rl")
        assert set(pools(body)) == {"e2e-green/NVIDIA-L4"}
        cluster.kubectl(
            "label", "node", name, "topology.kubernetes.io/region=e2e-nowhere", "--overwrite"
        )
        cluster.wait(
            lambda: set(pools(get(cluster, namespace, "rl"))) == {"us-east-1/NVIDIA-L4"},
            what="re-plan after relabel",
        )
        body = wait_ready(cluster, namespace, "rl")
        skipped = body["status"]["pools"]["skipped"]
        assert any(
            s["pool"] == "e2e-nowhere/NVIDIA-L4" and "e2e-nowhere" in s["reason"] for s in skipped
        )
    finally:
        cluster.kubectl("delete", "node", name, "--ignore-not-found")


def cpu_node(name: str, region: str, pods: int, mark: str) -> dict[str, Any]:
    allocatable = {"cpu": "64", "memory": "256Gi", "pods": str(pods)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {
                "kubernetes.io/hostname": name,
                "type": "kwok",
                "topology.kubernetes.io/region": region,
                "greenshard.io/e2e-slots": mark,
            },
        },
        "status": {"allocatable": allocatable, "capacity": allocatable},
    }


def test_a_node_full_of_pods_takes_no_more_shards(
    cluster: Any, operator: Operator, namespace: str
) -> None:
    """The green cpu node has the memory for every shard but room for 3 pods
    (status.allocatable.pods): 3 shards go there, 3 to the grey node, and all 6 pods run
    (kube-scheduler refuses a 4th pod on the green node: "Too many pods")."""
    mark = namespace[-8:]
    green, grey = f"e2e-slots-green-{mark}", f"e2e-slots-grey-{mark}"
    cluster.apply_yaml(
        yaml.safe_dump_all(
            [
                cpu_node(green, "e2e-slots-green", 3, mark),
                cpu_node(grey, "e2e-slots-grey", 110, mark),
            ]
        )
    )
    try:
        profile(
            cluster,
            f"e2e-slots-{mark}",
            {"e2e-slots-green": {"intensity": 5}, "e2e-slots-grey": {"intensity": 400}},
        )
        doc = infd("slots", namespace, carbon={"gridProfile": f"e2e-slots-{mark}"})
        doc["spec"]["model"] = {
            "name": "small",
            "layers": 30,
            "hiddenSize": 4096,
            "parametersBillions": 6,
            "dtype": "bfloat16",
        }
        doc["spec"]["sharding"] = {"shards": 6, "replicas": 1}
        doc["spec"]["placement"] = {
            "nodeSelector": {"matchLabels": {"greenshard.io/e2e-slots": mark}}
        }
        apply_infd(cluster, doc)
        body = wait_ready(cluster, namespace, "slots")
        packing = body["status"]["packing"]
        assert packing == {
            "e2e-slots-green/cpu": {green: [0, 1, 2]},
            "e2e-slots-grey/cpu": {grey: [3, 4, 5]},
        }, packing
        rows = body["status"]["placement"]
        assert all(r["memoryBytesPerReplica"] > 0 and r["gpusPerReplica"] == 0 for r in rows)

        def running() -> dict[str, int] | None:
            per_node: dict[str, int] = {}
            found = cluster.items(
                "pods", "-l", "greenshard.io/deployment=slots", namespace=namespace
            )
            for pod in found:
                if pod["status"].get("phase") == "Running":
                    node = pod["spec"]["nodeName"]
                    per_node[node] = per_node.get(node, 0) + 1
            return per_node if sum(per_node.values()) == 6 else None

        assert cluster.wait(running, what="6 Running pods") == {green: 3, grey: 3}
    finally:
        cluster.kubectl("delete", "infd", "slots", "--ignore-not-found", namespace=namespace)
        cluster.wait(
            lambda: (
                not cluster.items(
                    "pods", "-l", "greenshard.io/deployment=slots", namespace=namespace
                )
            ),
            what="the pods of slots gone",
        )
        cluster.kubectl("delete", "node", green, grey, "--ignore-not-found")


def test_timer_replans_as_the_hour_moves(cluster: Any, operator: Operator, namespace: str) -> None:
    day = [10.0] * 12 + [900.0] * 12  # eu-north-1: clean at night, dirty by day
    night = [900.0] * 12 + [10.0] * 12  # us-east-1: the opposite
    profile(
        cluster, "e2e-timer", {"eu-north-1": {"intensity": day}, "us-east-1": {"intensity": night}}
    )
    operator.set_hour(3)
    try:
        doc = infd("tm", namespace, carbon={"gridProfile": "e2e-timer", "reoptimizeInterval": "1m"})
        doc["spec"]["sharding"] = {"shards": 2, "replicas": 1}
        apply_infd(cluster, doc)
        body = wait_ready(cluster, namespace, "tm")
        assert {p.split("/")[0] for p in pools(body)} == {"eu-north-1"}
        assert body["status"]["emissions"]["hour"] == 3
        operator.set_hour(15)  # nothing else changes: only the timer can notice
        cluster.wait(
            lambda: get(cluster, namespace, "tm")["status"]["emissions"]["hour"] == 15,
            timeout=100,  # admission's minimum interval is 1m
            what="timer re-plan at hour 15",
        )
        body = get(cluster, namespace, "tm")
        assert {p.split("/")[0] for p in pools(body)} == {"us-east-1"}
    finally:
        operator.set_hour(12)


def test_dry_run_creates_nothing(cluster: Any, operator: Operator, namespace: str) -> None:
    profile(cluster, "e2e-dry", PROFILE["spec"]["regions"])
    doc = infd("dry", namespace, mode="DryRun", carbon={"gridProfile": "e2e-dry"})
    del doc["spec"]["template"]
    apply_infd(cluster, doc)
    body = wait_ready(cluster, namespace, "dry")
    assert condition(body, "Ready")["reason"] == "DryRun"
    assert len(body["status"]["placement"]) == 8
    time.sleep(2)
    assert shard_sets(cluster, namespace, "dry") == []


def test_deleting_the_cr_garbage_collects_its_statefulsets(
    cluster: Any, operator: Operator, namespace: str
) -> None:
    profile(cluster, "e2e-gc", PROFILE["spec"]["regions"])
    doc = infd("gc", namespace, carbon={"gridProfile": "e2e-gc"})
    apply_infd(cluster, doc)
    wait_ready(cluster, namespace, "gc")
    body = get(cluster, namespace, "gc")
    assert not body["metadata"].get("finalizers")
    owners = {
        d["metadata"]["ownerReferences"][0]["uid"] for d in shard_sets(cluster, namespace, "gc")
    }
    assert owners == {body["metadata"]["uid"]}
    cluster.kubectl("delete", "infd", "gc", "--wait=true", namespace=namespace)
    cluster.wait(
        lambda: (
            not shard_sets(cluster, namespace, "gc")
            and not cluster.pods(namespace, "greenshard.io/deployment=gc")
        ),
        timeout=60,
        what="garbage collection",
    )


def test_missing_gridprofile_is_degraded_with_an_event(
    cluster: Any, operator: Operator, namespace: str
) -> None:
    missing = f"e2e-missing-{namespace[-6:]}"  # GridProfiles are cluster-scoped: one per run
    doc = infd("lost", namespace, carbon={"gridProfile": missing})
    apply_infd(cluster, doc)
    cluster.kubectl(
        "wait",
        "--for=condition=Degraded",
        "infd/lost",
        "--timeout=60s",
        namespace=namespace,
        timeout=90,
    )
    body = get(cluster, namespace, "lost")
    degraded = condition(body, "Degraded")
    assert degraded["reason"] == "GridProfileNotFound", degraded
    assert missing in degraded["message"]
    events = cluster.items(
        "events", "--field-selector", "reason=GridProfileNotFound", namespace=namespace
    )
    assert events and events[0]["type"] == "Warning"
    # creating it heals the deployment
    profile(cluster, missing, PROFILE["spec"]["regions"])
    try:
        body = wait_ready(cluster, namespace, "lost")
        assert condition(body, "Degraded")["status"] == "False"
    finally:
        cluster.kubectl("delete", "gridprofile", missing, "--ignore-not-found")


def test_a_foreign_statefulset_is_left_alone_and_the_deployment_degraded_conflict(
    cluster: Any, operator: Operator, namespace: str
) -> None:
    """Issue 17: a StatefulSet named like shard 0 and labelled as ours, but not controlled by
    the InferenceDeployment, is never replaced or deleted; Degraded Conflict names it."""
    foreign = yaml.safe_load(f"""
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: own-shard-0
  namespace: {namespace}
  labels: {{greenshard.io/deployment: own, app: someone-else}}
spec:
  replicas: 0
  serviceName: own-shard-0
  selector: {{matchLabels: {{app: someone-else}}}}
  template:
    metadata: {{labels: {{app: someone-else}}}}
    spec: {{containers: [{{name: c, image: registry.k8s.io/pause:3.10}}]}}
""")
    cluster.apply_yaml(yaml.safe_dump(foreign))
    before = cluster.get_json("statefulset", "own-shard-0", namespace=namespace)
    profile(cluster, "e2e-own", PROFILE["spec"]["regions"])
    doc = infd("own", namespace, carbon={"gridProfile": "e2e-own"})
    doc["spec"]["sharding"] = {"shards": 2, "replicas": 1}
    apply_infd(cluster, doc)
    cluster.kubectl(
        "wait",
        "--for=condition=Degraded",
        "infd/own",
        "--timeout=60s",
        namespace=namespace,
        timeout=90,
    )
    degraded = condition(get(cluster, namespace, "own"), "Degraded")
    assert degraded["reason"] == "Conflict"
    assert (
        f"StatefulSet {namespace}/own-shard-0 exists and is not controlled by"
        in (degraded["message"])
    )
    events = cluster.items("events", "--field-selector", "reason=Conflict", namespace=namespace)
    assert events and events[0]["type"] == "Warning"
    # the other shard is applied; the foreign one is untouched
    cluster.wait(
        lambda: cluster.get_json("statefulset", "own-shard-1", namespace=namespace),
        what="own-shard-1",
    )
    time.sleep(3)
    after = cluster.get_json("statefulset", "own-shard-0", namespace=namespace)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert not after["metadata"].get("ownerReferences")
    assert condition(get(cluster, namespace, "own"), "Ready")["status"] != "True"
    # its owner deletes it: the operator creates its own and heals
    cluster.kubectl("delete", "statefulset", "own-shard-0", "--wait=true", namespace=namespace)
    body = wait_ready(cluster, namespace, "own", timeout=120)
    assert condition(body, "Degraded")["status"] == "False"
    owners = {
        d["metadata"]["ownerReferences"][0]["uid"] for d in shard_sets(cluster, namespace, "own")
    }
    assert owners == {body["metadata"]["uid"]}


def test_a_shard_scaled_to_zero_by_hand_is_restored(
    cluster: Any, operator: Operator, namespace: str
) -> None:
    """Issue 17: `kubectl scale` keeps the spec-hash annotation; the live replicas are compared
    too, so the operator scales the shard back and the deployment is Ready again."""
    profile(cluster, "e2e-drift", PROFILE["spec"]["regions"])
    doc = infd("drift", namespace, carbon={"gridProfile": "e2e-drift"})
    doc["spec"]["sharding"] = {"shards": 2, "replicas": 2}
    apply_infd(cluster, doc)
    wait_ready(cluster, namespace, "drift")
    cluster.kubectl("scale", "statefulset", "drift-shard-1", "--replicas=0", namespace=namespace)

    def restored() -> bool:
        sts = cluster.get_json("statefulset", "drift-shard-1", namespace=namespace)
        return bool(
            sts["spec"]["replicas"] == 2 and (sts.get("status") or {}).get("readyReplicas") == 2
        )

    cluster.wait(restored, timeout=90, what="drift-shard-1 scaled back to 2 Ready replicas")
    cluster.wait(
        lambda: condition(get(cluster, namespace, "drift"), "Ready").get("status") == "True",
        timeout=60,
        what="Ready again",
    )


@pytest.mark.slow
def test_restart_mid_reconcile_converges_then_stays_quiet(
    cluster: Any, operator: Operator, namespace: str
) -> None:
    profile(cluster, "e2e-restart", PROFILE["spec"]["regions"])
    # Three at once: the 1B model on CPU pools, so whole-GPU packing leaves none Infeasible.
    docs = [infd_doc(f"r{i}", namespace, "e2e-restart") for i in range(3)]
    operator.stop()
    for doc in docs:
        apply_infd(cluster, doc)
    operator.start()
    # kill it while it creates the shard StatefulSets
    cluster.wait(
        lambda: len(cluster.items("statefulsets", namespace=namespace)) >= 3,
        interval=0.1,
        what="some StatefulSets",
    )
    operator.stop(kill=True)
    operator.start()
    for doc in docs:
        wait_ready(cluster, namespace, doc["metadata"]["name"], timeout=120)
    sets = cluster.items("statefulsets", namespace=namespace)
    names = sorted(d["metadata"]["name"] for d in sets)
    assert names == sorted(f"r{i}-shard-{s}" for i in range(3) for s in range(8))
    revisions = cluster.items("controllerrevisions", namespace=namespace)
    owners = [r["metadata"]["ownerReferences"][0]["name"] for r in revisions]
    assert sorted(owners) == names  # one revision each: the restart rolled nothing twice
    pods = cluster.pods(namespace)
    assert len(pods) == 3 * 8  # one pipeline replica each
    # a quiet minute: no API write at all
    time.sleep(5)
    before = operator.api_writes()
    versions = {
        (o["kind"], o["metadata"]["name"]): o["metadata"]["resourceVersion"]
        for o in cluster.items("infd,statefulsets", namespace=namespace)
    }
    time.sleep(60)
    after = {
        (o["kind"], o["metadata"]["name"]): o["metadata"]["resourceVersion"]
        for o in cluster.items("infd,statefulsets", namespace=namespace)
    }
    assert operator.api_writes() == before
    assert after == versions
