"""Shard Deployments from a plan, checked against YAML."""

from __future__ import annotations

import yaml

from greenshard import model, parsing
from greenshard.k8s import workloads

OWNER = {
    "apiVersion": "greenshard.io/v1alpha1",
    "kind": "InferenceDeployment",
    "metadata": {"name": "llama", "namespace": "ml", "uid": "u-1"},
}
SHARD = model.Shard(
    index=2,
    first_layer=20,
    last_layer=29,
    layers=10,
    flops_per_token=1.0,
    weight_bytes=1.0,
    memory_bytes=1.0,
)
POOL = model.Pool(
    index=1,
    region="eu-north-1",
    accelerator="NVIDIA-H100-80GB-HBM3",
    nodes=("n1",),
    capacity_bytes=1.0,
    intensity=30.0,
    pue=1.1,
    joules_per_flop=1e-12,
)

TEMPLATE = yaml.safe_load("""
metadata:
  labels: {team: ml}
spec:
  containers:
    - name: server
      image: vllm/vllm-openai:v0.6.0
      env: [{name: GREENSHARD_SHARD_INDEX, value: stale}, {name: HF_HOME, value: /cache}]
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
          - matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [amd64]}]
""")

EXPECTED = yaml.safe_load("""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: llama-shard-2
  namespace: ml
  labels:
    app.kubernetes.io/name: inference-shard
    app.kubernetes.io/instance: llama
    app.kubernetes.io/component: shard
    app.kubernetes.io/part-of: greenshard
    app.kubernetes.io/managed-by: greenshard
    greenshard.io/deployment: llama
    greenshard.io/shard: "2"
  ownerReferences:
    - {apiVersion: greenshard.io/v1alpha1, kind: InferenceDeployment, name: llama, uid: u-1,
       controller: true, blockOwnerDeletion: true}
spec:
  replicas: 3
  selector:
    matchLabels: {greenshard.io/deployment: llama, greenshard.io/shard: "2"}
  template:
    metadata:
      labels:
        team: ml
        app.kubernetes.io/name: inference-shard
        app.kubernetes.io/instance: llama
        app.kubernetes.io/component: shard
        app.kubernetes.io/part-of: greenshard
        app.kubernetes.io/managed-by: greenshard
        greenshard.io/deployment: llama
        greenshard.io/shard: "2"
      annotations: {greenshard.io/pool: eu-north-1/NVIDIA-H100-80GB-HBM3}
    spec:
      containers:
        - name: server
          image: vllm/vllm-openai:v0.6.0
          env:
            - {name: HF_HOME, value: /cache}
            - {name: GREENSHARD_SHARD_INDEX, value: "2"}
            - {name: GREENSHARD_SHARD_COUNT, value: "8"}
            - {name: GREENSHARD_FIRST_LAYER, value: "20"}
            - {name: GREENSHARD_LAST_LAYER, value: "29"}
            - {name: GREENSHARD_POOL, value: eu-north-1/NVIDIA-H100-80GB-HBM3}
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
              - matchExpressions:
                  - {key: kubernetes.io/arch, operator: In, values: [amd64]}
                  - {key: topology.kubernetes.io/region, operator: In, values: [eu-north-1]}
                  - {key: nvidia.com/gpu.product, operator: In, values: [NVIDIA-H100-80GB-HBM3]}
                  - {key: tier, operator: In, values: [gpu]}
                  - {key: spot, operator: DoesNotExist}
""")


def test_shard_deployment_matches_yaml() -> None:
    selector = parsing.parse_selector(
        {
            "matchLabels": {"tier": "gpu"},
            "matchExpressions": [{"key": "spot", "operator": "DoesNotExist"}],
        },
        "sel",
    )
    manifest = workloads.shard_deployment(OWNER, TEMPLATE, SHARD, 8, POOL, 3, selector)
    annotations = manifest["metadata"].pop("annotations")
    assert annotations[workloads.POOL_ANNOTATION] == "eu-north-1/NVIDIA-H100-80GB-HBM3"
    assert len(annotations[workloads.HASH_ANNOTATION]) == 16
    assert manifest == EXPECTED
    # the template given is not modified
    assert TEMPLATE["spec"]["containers"][0]["env"][0]["value"] == "stale"


def test_cpu_pool_requires_no_gpu_label_and_hash_tracks_changes() -> None:
    cpu = model.Pool(0, "us-east-1", "cpu", ("c",), 1.0, 300.0, 1.2, 6e-11)
    a = workloads.shard_deployment(OWNER, TEMPLATE, SHARD, 8, cpu, 1, model.LabelSelector())
    reqs = a["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"][0]["matchExpressions"]
    assert {"key": "nvidia.com/gpu.product", "operator": "DoesNotExist"} in reqs
    b = workloads.shard_deployment(OWNER, TEMPLATE, SHARD, 8, POOL, 1, model.LabelSelector())
    same = workloads.shard_deployment(OWNER, TEMPLATE, SHARD, 8, cpu, 1, model.LabelSelector())
    hashes = [m["metadata"]["annotations"][workloads.HASH_ANNOTATION] for m in (a, b, same)]
    assert hashes[0] != hashes[1]
    assert hashes[0] == hashes[2]
