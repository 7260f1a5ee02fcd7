"""Whole GPUs on the real control plane (KWOK nodes advertise nvidia.com/gpu; kube-scheduler
enforces it): no node over-booked, tenants never share a GPU, foreign pods count, latency."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from operator_harness import ROOT, Operator, running_operator

SAMPLE = yaml.safe_load((ROOT / "crds/samples/llama-70b.yaml").read_text())
PROFILE = yaml.safe_load((ROOT / "crds/samples/gridprofile.yaml").read_text())
H100 = "NVIDIA-H100-80GB-HBM3"
PAUSE = {"spec": {"containers": [{"name": "server", "image": "registry.k8s.io/pause:3.10"}]}}


@pytest.fixture(scope="module")
def operator(crds: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    crds.apply_yaml(yaml.safe_dump(PROFILE))
    with running_operator(crds.kubeconfig, tmp_path_factory.mktemp("operator")) as op:
        yield op


def infd(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    doc = copy.deepcopy(SAMPLE)
    doc["metadata"] = {"name": name, "namespace": namespace}
    doc["spec"]["template"] = copy.deepcopy(PAUSE)
    doc["spec"].update(spec)
    return doc


def big(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    """2 shards of 100 GB (x 1.2: 2 H100s each) x 2 replicas: 8 GPUs, one H100 node."""
    return infd(
        name,
        namespace,
        model={
            "name": "big",
            "layers": 80,
            "hiddenSize": 8192,
            "parametersBillions": 100,
            "dtype": "bfloat16",
        },
        sharding={"shards": 2, "replicas": 2},
        placement={"nodeSelector": {"matchLabels": {"nvidia.com/gpu.product": H100}}},
        **spec,
    )


def get(cluster: Any, namespace: str, name: str) -> dict[str, Any]:
    return dict(cluster.get_json("infd", name, namespace=namespace))


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond["type"] == kind:
            return dict(cond)
    return {}


def wait_for(what: str, check: Any, timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def ready(cluster: Any, namespace: str, name: str) -> dict[str, Any] | None:
    body = get(cluster, namespace, name)
    return body if condition(body, "Ready").get("status") == "True" else None


def booked(cluster: Any) -> dict[str, tuple[int, int]]:
    """Node -> (GPUs requested by its live pods, allocatable)."""
    nodes = {
        n["metadata"]["name"]: int(n["status"]["allocatable"].get("nvidia.com/gpu", 0))
        for n in cluster.items("nodes")
    }
    used = dict.fromkeys(nodes, 0)
    for pod in cluster.items("pods", "-A"):
        node = pod["spec"].get("nodeName")
        if not node or pod["status"].get("phase") in ("Succeeded", "Failed"):
            continue
        for c in pod["spec"]["containers"]:
            used[node] += int((c.get("resources", {}).get("limits") or {}).get("nvidia.com/gpu", 0))
    return {n: (used[n], nodes[n]) for n in nodes}


def assert_not_overbooked(cluster: Any) -> None:
    over = {n: v for n, v in booked(cluster).items() if v[0] > v[1]}
    assert not over, over


def pods_of(cluster: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    return list(
        cluster.items("pods", "-l", f"greenshard.io/deployment={name}", namespace=namespace)
    )


def test_sample_runs_every_pod_without_overbooking(
    cluster: Any, operator: Operator, namespace: str
) -> None:
    doc = infd("llama-70b", namespace)
    cluster.apply_yaml(yaml.safe_dump(doc))
    body = wait_for("Ready", lambda: ready(cluster, namespace, "llama-70b"))
    pods = wait_for(
        "16 Running pods",
        lambda: (
            [
                p
                for p in pods_of(cluster, namespace, "llama-70b")
                if p["status"].get("phase") == "Running"
            ]
            if len(
                [
                    p
                    for p in pods_of(cluster, namespace, "llama-70b")
                    if p["status"].get("phase") == "Running"
                ]
            )
            == 16
            else None
        ),
    )
    assert all(
        p["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1" for p in pods
    )
    assert_not_overbooked(cluster)
    # eu-north-1's H100 node holds 8 GPUs: 4 shards x 2 replicas there, the rest in us-east-1
    per_node: dict[str, int] = {}
    for p in pods:
        per_node[p["spec"]["nodeName"]] = per_node.get(p["spec"]["nodeName"], 0) + 1
    assert per_node == {"eu-north-1-h100-0": 8, "us-east-1-h100-0": 8}, per_node
    assert sorted(body["status"]["packing"]) == [
        "eu-north-1/NVIDIA-H100-80GB-HBM3",
        "us-east-1/NVIDIA-H100-80GB-HBM3",
    ]
    assert body["status"]["pipelineLatencyMs"] == 110.0
    services = {s["metadata"]["name"] for s in cluster.items("services", namespace=namespace)}
    assert {"llama-70b", *(f"llama-70b-shard-{s}" for s in range(8))} <= services
    cluster.kubectl("delete", "infd", "llama-70b", namespace=namespace)
    wait_for("pods gone", lambda: not pods_of(cluster, namespace, "llama-70b"))


def test_three_tenants_one_green_pool(cluster: Any, operator: Operator, namespace: str) -> None:
    docs = [big(n, namespace) for n in ("alpha", "bravo", "charlie")]
    cluster.apply_yaml("---\n".join(yaml.safe_dump(d) for d in docs))  # one apply, same second
    bodies = {
        n: wait_for(f"{n} Ready", lambda n=n: ready(cluster, namespace, n))
        for n in ("alpha", "bravo", "charlie")
    }
    wait_for(
        "12 pods Running",
        lambda: (
            sum(
                p["status"].get("phase") == "Running"
                for n in bodies
                for p in pods_of(cluster, namespace, n)
            )
            == 12
        ),
    )
    pending = [
        p["metadata"]["name"]
        for n in bodies
        for p in pods_of(cluster, namespace, n)
        if p["status"].get("phase") != "Running"
    ]
    assert not pending
    assert_not_overbooked(cluster)
    green = [
        n
        for n, b in bodies.items()
        if {r["region"] for r in b["status"]["placement"]} == {"eu-north-1"}
    ]
    assert green == ["alpha"], {n: b["status"]["poolsSummary"] for n, b in bodies.items()}
    for n in ("bravo", "charlie"):
        eu = [
            c
            for c in bodies[n]["status"]["capacity"]
            if c["pool"].startswith("eu-north-1/NVIDIA-H100")
        ]
        assert eu[0]["free"] == 0 and "alpha" in eu[0]["heldBy"], eu
    cluster.kubectl("delete", "infd", "alpha", namespace=namespace)

    seen: dict[str, Any] = {}

    def moved_in() -> Any:
        """Bravo and charlie both wait for eu-north-1; the first to re-plan books it."""
        bodies = {n: get(cluster, namespace, n) for n in ("bravo", "charlie")}
        seen.update(
            {
                n: {
                    "pools": b["status"].get("poolsSummary"),
                    "ready": condition(b, "Ready"),
                    "capacity": b["status"].get("capacity"),
                    "pods": {
                        p["metadata"]["name"]: (p["spec"].get("nodeName"), p["status"].get("phase"))
                        for p in cluster.items("pods", namespace=namespace)
                    },
                }
                for n, b in bodies.items()
            }
        )
        inside = {
            n: b
            for n, b in bodies.items()
            if {r["region"] for r in b["status"]["placement"]} == {"eu-north-1"}
            and condition(b, "Ready").get("status") == "True"
        }
        return inside or None

    try:
        inside = wait_for("bravo or charlie moves into eu-north-1", moved_in, timeout=240)
    except AssertionError as err:
        raise AssertionError(f"{err}; last seen: {seen}") from None
    assert len(inside) == 1, list(inside)
    ((name, body),) = inside.items()
    assert_not_overbooked(cluster)
    nodes = {p["spec"]["nodeName"] for p in pods_of(cluster, namespace, name)}
    assert nodes == {"eu-north-1-h100-0"}
    assert body["status"]["packing"] == {
        "eu-north-1/NVIDIA-H100-80GB-HBM3": {"eu-north-1-h100-0": [0, 0, 1, 1]}
    }


def test_a_foreign_gpu_pod_changes_the_next_plan(
    cluster: Any, operator: Operator, namespace: str
) -> None:
    doc = big("planner", namespace, mode="DryRun")
    cluster.apply_yaml(yaml.safe_dump(doc))
    body = wait_for("planned", lambda: ready(cluster, namespace, "planner"))
    assert {r["region"] for r in body["status"]["placement"]} == {"eu-north-1"}
    other = f"{namespace}-other"
    cluster.kubectl("create", "namespace", other)
    try:
        cluster.apply_yaml(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "training", "namespace": other},
                    "spec": {
                        "nodeName": "eu-north-1-h100-0",
                        "containers": [
                            {
                                "name": "t",
                                "image": "registry.k8s.io/pause:3.10",
                                "resources": {"limits": {"nvidia.com/gpu": "6"}},
                            }
                        ],
                    },
                }
            )
        )

        def without_eu() -> dict[str, Any] | None:
            b = get(cluster, namespace, "planner")
            regions = {r["region"] for r in b["status"]["placement"]}
            return None if "eu-north-1" in regions else b

        moved = wait_for("a plan without eu-north-1", without_eu)
        eu = [
            c for c in moved["status"]["capacity"] if c["pool"].startswith("eu-north-1/NVIDIA-H100")
        ]
        assert eu[0]["free"] == 2 and f"pod {other}/training" in eu[0]["heldBy"]
    finally:
        cluster.kubectl("delete", "namespace", other, "--wait=false")


def test_latency_limit_keeps_one_region(cluster: Any, operator: Operator, namespace: str) -> None:
    """16 replicas of 1 GPU on H100s of eu-north-1 (8) and H100 + A100 of us-east-1 (16): the
    greenest plan crosses the Atlantic (70 ms); with maxPipelineLatencyMs 50 it stays put."""
    prof = copy.deepcopy(PROFILE)
    prof["metadata"] = {"name": "transatlantic"}
    prof["spec"]["network"] = {"latencyMs": {"eu-north-1/us-east-1": 70}}
    cluster.apply_yaml(yaml.safe_dump(prof))
    placement = {
        "nodeSelector": {
            "matchExpressions": [
                {
                    "key": "topology.kubernetes.io/region",
                    "operator": "In",
                    "values": ["eu-north-1", "us-east-1"],
                },
                {
                    "key": "nvidia.com/gpu.product",
                    "operator": "In",
                    "values": [H100, "NVIDIA-A100-SXM4-40GB"],
                },
                {
                    "key": "kubernetes.io/hostname",
                    "operator": "NotIn",
                    "values": ["eu-north-1-a100-0"],
                },
            ]
        }
    }
    free = infd(
        "free",
        namespace,
        mode="DryRun",
        carbon={"gridProfile": "transatlantic"},
        placement=copy.deepcopy(placement),
    )
    bounded = copy.deepcopy(free)
    bounded["metadata"]["name"] = "bounded"
    bounded["spec"]["placement"]["maxPipelineLatencyMs"] = 50
    cluster.apply_yaml(yaml.safe_dump(free) + "---\n" + yaml.safe_dump(bounded))
    a = wait_for("free planned", lambda: ready(cluster, namespace, "free"))
    b = wait_for("bounded planned", lambda: ready(cluster, namespace, "bounded"))
    assert {r["region"] for r in a["status"]["placement"]} == {"eu-north-1", "us-east-1"}
    assert a["status"]["pipelineLatencyMs"] >= 70.0
    assert {r["region"] for r in b["status"]["placement"]} == {"us-east-1"}
    assert b["status"]["pipelineLatencyMs"] <= 50
