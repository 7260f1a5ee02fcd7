"""An InferenceDeployment of pipeline-probe pods on the real node, and the check that every
stage reached its neighbours (for tests/e2e; no test here).

Issue 12 gives every shard pod a stable DNS name and the pipeline variables
(``GREENSHARD_LEADER_ADDRESS``, ``GREENSHARD_PREV_ADDRESS``, ``GREENSHARD_NEXT_ADDRESS``, ...);
once the operator sets them, a test runs the operator against a real-node cluster
(``tests/e2e/test_real_node.py``'s ``real`` fixture and ``operator_harness.running_operator``),
applies :data:`GRID_PROFILE` and :data:`PIPELINE` to a namespace and calls
:func:`assert_pipeline_connected`. The check reads the probes' own logs, not the names the
operator chose: every stage must print ``PIPELINE-PROBE OK``, and the address it connected to
as leader / prev / next must be the pod IP of stage 0 / s-1 / s+1 of the same pipeline replica
(addresses name pods through headless Services). :func:`statefulsets` builds that wiring by
hand, one StatefulSet per stage as issue 12 designs it, so the check runs before the operator
makes it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from conftest import Cluster

GRID_PROFILE = """
apiVersion: greenshard.io/v1alpha1
kind: GridProfile
metadata: {name: e2e-real-pipeline}
spec:
  regions:
    local-1: {intensity: 100, pue: 1.1}
  accelerators:
    NVIDIA-L4: {joulesPerTeraflop: 1.5}
    cpu: {joulesPerTeraflop: 60}
  links: {samePoolJoulesPerByte: 1.0e-9, sameRegionJoulesPerByte: 2.0e-7,
          crossRegionJoulesPerByte: 2.0e-6}
"""

# 2 stages x 2 pipeline replicas of a 1B model on the real node of test_real_node.py
# (region local-1, 4 x NVIDIA-L4): one GPU per stage, the node's 4 GPUs in all.
PIPELINE = """
apiVersion: greenshard.io/v1alpha1
kind: InferenceDeployment
metadata: {name: pipe}
spec:
  model: {name: probe-1b, layers: 8, hiddenSize: 2048, parametersBillions: 1, dtype: bfloat16}
  sharding: {shards: 2, replicas: 2}
  workload: {tokensPerSecond: 100}
  carbon: {gridProfile: e2e-real-pipeline}
  placement:
    nodeSelector:
      matchLabels: {greenshard.dev/real-node: "true"}
  solver: {algorithm: exact}
  template:
    spec:
      securityContext:
        runAsNonRoot: true
        seccompProfile: {type: RuntimeDefault}
      tolerations:
        - {key: greenshard.dev/real-node, operator: Exists, effect: NoSchedule}
      containers:
        - name: engine
          image: localhost/greenshard/pipeline-probe:0.1.0
          imagePullPolicy: Never
          env:
            - {name: GREENSHARD_PROBE_PORT, value: "8000"}
          ports:
            - {name: http, containerPort: 8000}
          # Ready once it reached its neighbours and its leader.
          readinessProbe:
            exec: {command: [cat, /tmp/pipeline-ok]}
            periodSeconds: 1
          securityContext:
            allowPrivilegeEscalation: false
            capabilities: {drop: [ALL]}
"""

OK_LINE = re.compile(r"PIPELINE-PROBE OK stage=(\d+)/(\d+) pipeline=(\d+)/(\d+)")
CONNECTED = re.compile(r"^probe: (leader|prev|next) (\S+) -> (\S+) connected$", re.M)


def assert_pipeline_connected(
    cluster: Cluster, namespace: str, selector: str, *, stages: int, replicas: int, node: str
) -> dict[tuple[int, int], str]:
    """Every (stage, pipeline replica) pod runs on NODE and connected to its leader and
    neighbours; returns (stage, replica) -> pod name."""
    pods = cluster.pods(namespace, selector)
    ip_of: dict[tuple[int, int], str] = {}
    seen: dict[tuple[int, int], tuple[str, dict[str, str]]] = {}
    for pod in pods:
        name = pod["metadata"]["name"]
        assert pod["spec"]["nodeName"] == node, (name, pod["spec"]["nodeName"])
        out = cluster.kubectl("logs", name, namespace=namespace).stdout
        ok = OK_LINE.search(out)
        assert ok, f"{name} did not reach every neighbour:\n{out[-2000:]}"
        s, n, r, p = map(int, ok.groups())
        assert (n, p) == (stages, replicas), (name, ok.group(0))
        ip_of[(s, r)] = pod["status"]["podIP"]
        seen[(s, r)] = (name, {role: ip for role, _, ip in CONNECTED.findall(out)})
    assert set(seen) == {(s, r) for s in range(stages) for r in range(replicas)}, sorted(seen)
    for (s, r), (name, connected) in seen.items():
        want: dict[str, Any] = {"leader": ip_of[(0, r)]}
        if s > 0:
            want["prev"] = ip_of[(s - 1, r)]
        if s < stages - 1:
            want["next"] = ip_of[(s + 1, r)]
        assert connected == want, (name, connected, want)
    return {k: v[0] for k, v in seen.items()}


def statefulsets(name: str, namespace: str, *, stages: int, replicas: int, port: int) -> str:
    """STAGES StatefulSets ``NAME-shard-S`` (ordinal = pipeline replica r) behind headless
    Services of the same name (publishing not-ready pods, so that stages find each other before
    they are Ready), with the pipeline variables from the pod-index label and ``$(VAR)``."""

    def address(stage: int) -> str:
        return (
            f"{name}-shard-{stage}-$(GREENSHARD_PIPELINE_INDEX)."
            f"{name}-shard-{stage}.{namespace}.svc.cluster.local"
        )

    docs: list[dict[str, Any]] = []
    for s in range(stages):
        shard = f"{name}-shard-{s}"
        labels = {"app": name, "shard": str(s)}
        env = [
            {
                "name": "GREENSHARD_PIPELINE_INDEX",
                "valueFrom": {
                    "fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}
                },
            },
            {"name": "GREENSHARD_PIPELINE_COUNT", "value": str(replicas)},
            {"name": "GREENSHARD_SHARD_INDEX", "value": str(s)},
            {"name": "GREENSHARD_SHARD_COUNT", "value": str(stages)},
            {"name": "GREENSHARD_LEADER_ADDRESS", "value": address(0)},
            {"name": "GREENSHARD_PREV_ADDRESS", "value": address(s - 1) if s > 0 else ""},
            {"name": "GREENSHARD_NEXT_ADDRESS", "value": address(s + 1) if s < stages - 1 else ""},
            {"name": "GREENSHARD_PROBE_PORT", "value": str(port)},
        ]
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": shard},
                "spec": {
                    "clusterIP": "None",
                    "publishNotReadyAddresses": True,
                    "selector": labels,
                    "ports": [{"name": "http", "port": port}],
                },
            }
        )
        docs.append(
            {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": {"name": shard},
                "spec": {
                    "serviceName": shard,
                    "replicas": replicas,
                    "podManagementPolicy": "Parallel",
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "nodeSelector": {"greenshard.dev/real-node": "true"},
                            "tolerations": [
                                {"key": "greenshard.dev/real-node", "operator": "Exists"}
                            ],
                            "securityContext": {
                                "runAsNonRoot": True,
                                "seccompProfile": {"type": "RuntimeDefault"},
                            },
                            "containers": [
                                {
                                    "name": "engine",
                                    "image": "localhost/greenshard/pipeline-probe:0.1.0",
                                    "imagePullPolicy": "Never",
                                    "env": env,
                                    "ports": [{"name": "http", "containerPort": port}],
                                    "readinessProbe": {
                                        "exec": {"command": ["cat", "/tmp/pipeline-ok"]},
                                        "periodSeconds": 1,
                                    },
                                    "resources": {"limits": {"nvidia.com/gpu": "1"}},
                                    "securityContext": {
                                        "allowPrivilegeEscalation": False,
                                        "capabilities": {"drop": ["ALL"]},
                                    },
                                }
                            ],
                        },
                    },
                },
            }
        )
    return "\n---\n".join(json.dumps(d) for d in docs)
