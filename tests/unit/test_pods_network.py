"""Free capacity from a PodList, and round-trip times from GridProfile spec.network."""

from __future__ import annotations

import math

import pytest
import yaml

from greenshard import network, pods
from greenshard.errors import InputError

PODS = yaml.safe_load("""
apiVersion: v1
kind: PodList
items:
  - metadata: {name: a, namespace: other}
    spec:
      nodeName: n1
      containers:
        - name: c1
          resources: {limits: {nvidia.com/gpu: "2"}, requests: {memory: 1Gi}}
        - name: c2
          resources: {requests: {nvidia.com/gpu: 1}}
    status: {phase: Running}
  - metadata: {name: init-heavy, namespace: other}
    spec:
      nodeName: n1
      initContainers:
        - {name: i1, resources: {limits: {nvidia.com/gpu: 4}}}
        - {name: i2, resources: {limits: {nvidia.com/gpu: 1}}}
      containers:
        - {name: c, resources: {limits: {nvidia.com/gpu: 3, memory: 2Gi}}}
    status: {phase: Pending}
  - metadata: {name: done, namespace: other}
    spec:
      nodeName: n1
      containers: [{name: c, resources: {limits: {nvidia.com/gpu: 8}}}]
    status: {phase: Succeeded}
  - metadata: {name: failed, namespace: other}
    spec:
      nodeName: n2
      containers: [{name: c, resources: {limits: {nvidia.com/gpu: 8}}}]
    status: {phase: Failed}
  - metadata: {name: unbound, namespace: other}
    spec:
      containers: [{name: c, resources: {limits: {nvidia.com/gpu: 8}}}]
    status: {phase: Pending}
  - metadata:
      name: mine-0
      namespace: ml
      labels: {greenshard.io/deployment: llama}
    spec:
      nodeName: n2
      containers: [{name: c, resources: {limits: {nvidia.com/gpu: 2}}}]
    status: {phase: Running}
  - metadata:
      name: same-name-other-ns
      namespace: team-b
      labels: {greenshard.io/deployment: llama}
    spec:
      nodeName: n2
      containers: [{name: c, resources: {limits: {nvidia.com/gpu: 1}}}]
    status: {phase: Running}
""")


def test_usage_counts_bound_live_pods_with_the_init_rule() -> None:
    usage = pods.usage_by_node(pods.parse_pods(PODS), exclude=("ml", "llama"))
    # a: 2 (limits win) + 1 (requests) = 3; init-heavy: max(3, 4) = 4; done/failed/unbound: 0
    assert usage["n1"].gpus == 7
    assert usage["n1"].memory_bytes == 2**30 + 2 * 2**30  # limit stands in for a missing request
    # mine-0 is owned by ml/llama: not counted; team-b/llama is another tenant: counted
    assert usage["n2"].gpus == 1
    everyone = pods.usage_by_node(pods.parse_pods(PODS))
    assert everyone["n2"].gpus == 3


def test_bad_pod_list_names_the_field() -> None:
    with pytest.raises(InputError, match="kind"):
        pods.parse_pods({"kind": "NodeList", "items": []})
    bad = {
        "kind": "PodList",
        "items": [
            {
                "metadata": {"name": "x"},
                "spec": {
                    "containers": [
                        {"name": "c", "resources": {"limits": {"nvidia.com/gpu": "lots"}}}
                    ]
                },
            }
        ],
    }
    with pytest.raises(InputError, match=r"items\[0\].spec.containers\[0\].resources.limits"):
        pods.parse_pods(bad)


def test_network_pairs_either_order_and_defaults() -> None:
    net = network.parse_network(
        {"latencyMs": {"eu-north-1/us-east-1": 70, "us-east-1/ap-southeast-2": 200}}
    )
    assert net.between("us-east-1", "eu-north-1") == 70
    assert net.between("eu-north-1", "eu-north-1") == network.DEFAULT_SAME_REGION_MS
    assert net.between("eu-north-1", "eu-north-1", same_pool=True) == 0.0
    assert net.between("eu-north-1", "ap-southeast-2") is None
    m = network.latency_matrix(net, ["eu-north-1", "eu-north-1", "us-east-1", "ap-southeast-2"])
    assert m[0][0] == 0.0 and m[0][1] == 0.5 and m[1][2] == 70.0 and math.isnan(m[0][3])
    assert network.parse_network(None).same_region_ms == 0.5
    assert network.parse_network({"sameRegionLatencyMs": 2}).same_region_ms == 2.0


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"latencyMs": {"a": 1}}, "latencyMs['a']"),
        ({"latencyMs": {"a/a": 1}}, "latencyMs['a/a']"),
        ({"latencyMs": {"a/b": -1}}, "latencyMs['a/b']"),
        ({"latencyMs": {"a/b": 1, "b/a": 2}}, "conflicts"),
        ({"sameRegionLatencyMs": "fast"}, "sameRegionLatencyMs"),
        ([1], "spec.network"),
    ],
)
def test_network_errors_name_the_field(spec: object, field: str) -> None:
    with pytest.raises(InputError, match=field.replace("[", r"\[").replace("]", r"\]")):
        network.parse_network(spec)
