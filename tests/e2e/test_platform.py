"""The local control plane is real: scheduling, garbage collection, CRD schema
validation, PodSecurity admission and helm all work as on a real cluster."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

if TYPE_CHECKING:
    from collections.abc import Iterator

    from conftest import Cluster

TESTDATA = Path(__file__).resolve().parent / "testdata"

REGION = "topology.kubernetes.io/region"
GPU_PRODUCT = "nvidia.com/gpu.product"
PAUSE = "registry.k8s.io/pause:3.10"


def deployment(
    name: str,
    replicas: int,
    *,
    affinity: dict[str, Any] | None = None,
    resources: dict[str, Any] | None = None,
) -> str:
    pod_spec: dict[str, Any] = {
        "containers": [
            {
                "name": "main",
                "image": PAUSE,
                "resources": resources or {"requests": {"cpu": "10m", "memory": "16Mi"}},
            }
        ],
        "terminationGracePeriodSeconds": 5,
    }
    if affinity:
        pod_spec["affinity"] = affinity
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
            },
        }
    )


def required_node_affinity(**match: list[str]) -> dict[str, Any]:
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": key, "operator": "In", "values": values}
                            for key, values in match.items()
                        ]
                    }
                ]
            }
        }
    }


def running_pods(cluster: Cluster, namespace: str, app: str, count: int) -> list[dict[str, Any]]:
    """The pods of APP once exactly COUNT are Running and Ready on a node, else []."""
    pods = [
        p
        for p in cluster.pods(namespace, f"app={app}")
        if not p["metadata"].get("deletionTimestamp")
    ]
    ready = [
        p
        for p in pods
        if p["status"].get("phase") == "Running"
        and p["spec"].get("nodeName")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p["status"].get("conditions", [])
        )
    ]
    return ready if len(pods) == count and len(ready) == count else []


def test_server_reports_its_real_version(cluster: Cluster) -> None:
    version = cluster.server_version()
    assert re.fullmatch(r"v1\.\d+\.\d+", version["gitVersion"]), version
    assert version["major"] == "1", version
    assert int(version["minor"]) >= 30, version
    if cluster.local:
        assert version["gitVersion"] == cluster.versions["KUBE_VERSION"]


def test_node_affinity_deployment_bound_to_matching_kwok_nodes(
    cluster: Cluster, namespace: str
) -> None:
    labels = cluster.node_labels()
    wanted = [
        # (deployment, region, gpu product, replicas, gpus per pod)
        ("h100-eu", "eu-north-1", "NVIDIA-H100-80GB-HBM3", 4, 1),
        ("l4-ap", "ap-southeast-2", "NVIDIA-L4", 2, 1),
    ]
    for name, region, product, replicas, gpus in wanted:
        matching = {
            n
            for n, lab in labels.items()
            if lab.get(REGION) == region and lab.get(GPU_PRODUCT) == product
        }
        assert matching, f"the cluster has no node in {region} with {product}"
        cluster.apply_yaml(
            deployment(
                name,
                replicas,
                affinity=required_node_affinity(**{REGION: [region], GPU_PRODUCT: [product]}),
                resources={
                    "limits": {"nvidia.com/gpu": str(gpus)},
                    "requests": {"cpu": "100m", "memory": "64Mi", "nvidia.com/gpu": str(gpus)},
                },
            ),
            namespace=namespace,
        )

    for name, region, product, replicas, _ in wanted:
        pods = cluster.wait(
            functools.partial(running_pods, cluster, namespace, name, replicas),
            timeout=90,
            what=f"{replicas} Running pods of {name}",
        )
        for pod in pods:
            node = pod["spec"]["nodeName"]
            assert labels[node].get(REGION) == region, (pod["metadata"]["name"], node)
            assert labels[node].get(GPU_PRODUCT) == product, (pod["metadata"]["name"], node)
            assert pod["status"].get("podIP"), "KWOK gives running pods an IP"
            # Bound by kube-scheduler, not by a nodeName in the spec.
            scheduled = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
            assert scheduled, pod["status"]
            assert scheduled[0]["status"] == "True", scheduled

    # No node matches: kube-scheduler leaves the pod Pending as Unschedulable.
    cluster.apply_yaml(
        deployment(
            "nowhere",
            1,
            affinity=required_node_affinity(
                **{REGION: ["eu-north-1"], GPU_PRODUCT: ["NVIDIA-B200"]}
            ),
        ),
        namespace=namespace,
    )

    def unschedulable() -> bool:
        pods = cluster.pods(namespace, "app=nowhere")
        conds = [
            c
            for p in pods
            for c in p["status"].get("conditions", [])
            if c["type"] == "PodScheduled"
        ]
        return bool(conds) and (conds[0]["status"], conds[0]["reason"]) == (
            "False",
            "Unschedulable",
        )

    cluster.wait(unschedulable, timeout=60, what="the unmatchable pod to be Unschedulable")
    assert not cluster.pods(namespace, "app=nowhere")[0]["spec"].get("nodeName")


def test_deleting_a_deployment_garbage_collects_its_pods(cluster: Cluster, namespace: str) -> None:
    cluster.apply_yaml(deployment("gc-me", 3), namespace=namespace)
    pods = cluster.wait(
        lambda: running_pods(cluster, namespace, "gc-me", 3),
        timeout=90,
        what="3 Running pods of gc-me",
    )
    # Deployment -> ReplicaSet -> Pod, linked by owner references.
    rs_names = {
        ref["name"]
        for p in pods
        for ref in p["metadata"]["ownerReferences"]
        if ref["kind"] == "ReplicaSet"
    }
    assert len(rs_names) == 1
    rs = cluster.get_json("replicaset", rs_names.pop(), namespace=namespace)
    assert [r["kind"] for r in rs["metadata"]["ownerReferences"]] == ["Deployment"]
    uids = {p["metadata"]["uid"] for p in pods}

    cluster.kubectl("delete", "deployment", "gc-me", "--wait=false", namespace=namespace)

    def collected() -> bool:
        left = [
            p for p in cluster.items("pods", namespace=namespace) if p["metadata"]["uid"] in uids
        ]
        rss = cluster.items("replicasets", namespace=namespace)
        return not left and not rss

    cluster.wait(
        collected, timeout=90, what="the ReplicaSet and pods of gc-me to be garbage-collected"
    )


@pytest.fixture
def widget_crd(cluster: Cluster) -> Iterator[str]:
    text = (TESTDATA / "widgets-crd.yaml").read_text()
    # A CRD still being deleted (by an earlier run) cannot be applied again yet.
    cluster.kubectl(
        "wait", "--for=delete", "crd/widgets.e2e.greenshard.dev", "--timeout=60s", check=False
    )
    cluster.apply_yaml(text)
    cluster.kubectl(
        "wait", "--for=condition=Established", "crd/widgets.e2e.greenshard.dev", "--timeout=60s"
    )
    yield "widgets.e2e.greenshard.dev"
    cluster.kubectl(
        "delete",
        "-f",
        str(TESTDATA / "widgets-crd.yaml"),
        "--wait=true",
        "--timeout=60s",
        "--ignore-not-found",
        check=False,
    )


def widget(name: str, spec: dict[str, Any]) -> str:
    return json.dumps(
        {
            "apiVersion": "e2e.greenshard.dev/v1alpha1",
            "kind": "Widget",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def test_crd_is_served_and_validates_its_schema(
    cluster: Cluster, namespace: str, widget_crd: str
) -> None:
    # Served: kubectl finds the new kind (discovery) and stores a valid object.
    cluster.wait(
        lambda: cluster.kubectl("get", "widgets", namespace=namespace, check=False).returncode == 0,
        timeout=30,
        what="widgets to be served",
    )
    cluster.apply_yaml(
        widget("ok", {"replicas": 3, "accelerator": "H100", "region": "eu-north-1"}),
        namespace=namespace,
    )
    got = cluster.get_json("widget", "ok", namespace=namespace)
    assert got["spec"] == {"replicas": 3, "accelerator": "H100", "region": "eu-north-1"}
    assert "ok" in cluster.kubectl("get", "wdg", namespace=namespace).stdout

    # Invalid: kubectl reports the server's message, which names the field.
    bad = cluster.apply_yaml(
        widget("bad", {"replicas": 0, "accelerator": "TPU"}), namespace=namespace, check=False
    )
    assert bad.returncode != 0
    assert "spec.replicas" in bad.stderr, bad.stderr
    assert "spec.accelerator" in bad.stderr, bad.stderr
    assert "Invalid value" in bad.stderr, bad.stderr

    # The same through the API: 422 Unprocessable Entity with the field in the causes.
    with cluster.api_client() as api:
        custom = client.CustomObjectsApi(api)
        with pytest.raises(ApiException) as err:
            custom.create_namespaced_custom_object(
                "e2e.greenshard.dev",
                "v1alpha1",
                namespace,
                "widgets",
                {
                    "apiVersion": "e2e.greenshard.dev/v1alpha1",
                    "kind": "Widget",
                    "metadata": {"name": "bad2"},
                    "spec": {"replicas": "many", "accelerator": "L4"},
                },
            )
    assert err.value.status == 422
    body = json.loads(str(err.value.body))
    assert body["reason"] == "Invalid"
    assert "spec.replicas" in {c.get("field") for c in body["details"]["causes"]}, body
    assert cluster.kubectl("get", "widget", "bad", namespace=namespace, check=False).returncode != 0


def test_restricted_namespace_rejects_a_privileged_pod(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl(
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    privileged = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "root"},
            "spec": {
                "containers": [
                    {"name": "main", "image": PAUSE, "securityContext": {"privileged": True}}
                ]
            },
        }
    )
    res = cluster.apply_yaml(privileged, namespace=namespace, check=False)
    assert res.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in res.stderr, res.stderr
    assert "privileged" in res.stderr, res.stderr
    assert cluster.kubectl("get", "pod", "root", namespace=namespace, check=False).returncode != 0

    with cluster.api_client() as api, pytest.raises(ApiException) as err:
        client.CoreV1Api(api).create_namespaced_pod(namespace, json.loads(privileged))
    assert err.value.status == 403
    assert "PodSecurity" in str(err.value.body)

    # A pod that meets the restricted profile is admitted and runs.
    compliant = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "nonroot", "labels": {"app": "nonroot"}},
            "spec": {
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 65532,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": "main",
                        "image": PAUSE,
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]},
                        },
                    }
                ],
            },
        }
    )
    cluster.apply_yaml(compliant, namespace=namespace)
    cluster.wait(
        lambda: running_pods(cluster, namespace, "nonroot", 1),
        timeout=60,
        what="the compliant pod to run",
    )


def test_helm_installs_and_uninstalls_a_chart(cluster: Cluster, namespace: str) -> None:
    chart = str(TESTDATA / "hello-chart")
    cluster.helm(
        "install",
        "hello",
        chart,
        "--set",
        "greeting=hej",
        "--wait",
        "--timeout",
        "120s",
        namespace=namespace,
    )
    releases = json.loads(cluster.helm("list", "-o", "json", namespace=namespace).stdout)
    assert [(r["name"], r["status"]) for r in releases] == [("hello", "deployed")]
    cm = cluster.get_json("configmap", "hello-greeting", namespace=namespace)
    assert cm["data"]["greeting"] == "hej"
    assert cm["data"]["kubeVersion"] == cluster.server_version()["gitVersion"]
    pods = [
        p
        for p in cluster.pods(namespace, "app.kubernetes.io/instance=hello")
        if p["status"].get("phase") == "Running"
    ]
    assert len(pods) == 2

    cluster.helm("uninstall", "hello", "--wait", "--timeout", "120s", namespace=namespace)
    assert json.loads(cluster.helm("list", "-o", "json", namespace=namespace).stdout) == []
    assert (
        cluster.kubectl(
            "get", "configmap", "hello-greeting", namespace=namespace, check=False
        ).returncode
        != 0
    )
    cluster.wait(
        lambda: not cluster.items("deployments", namespace=namespace),
        timeout=60,
        what="the chart's Deployment to be gone",
    )
