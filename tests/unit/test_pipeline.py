"""Pipeline objects (StatefulSets, headless Services, the front door) checked against YAML, and
every rendered pod's wiring."""

from __future__ import annotations

import pytest
import yaml

import podrender
from greenshard import model
from greenshard.k8s import pipeline

GPU = "nvidia.com/gpu"
SELECTOR = model.LabelSelector({"team": "ml"}, ())


def make_pipeline(shards: int = 3, replicas: int = 2) -> pipeline.Pipeline:
    layers = [(0, 9), (10, 19), (20, 29), (30, 39)][:shards]
    stages = tuple(
        pipeline.Stage(
            shard=s,
            first_layer=a,
            last_layer=b,
            region="eu-north-1",
            accelerator="NVIDIA-H100-80GB-HBM3" if s else "cpu",
            gpus=2 if s else 0,
            memory_bytes=0 if s else 3 * 2**30,
            nodes=(f"n{s}",),
        )
        for s, (a, b) in enumerate(layers)
    )
    return pipeline.Pipeline("llama", "ml", "u-1", stages, replicas, SELECTOR)


TEMPLATE = yaml.safe_load("""
metadata:
  labels: {team: ml}
spec:
  containers:
    - name: server
      image: vllm/vllm-openai:v0.6.3
      args: ["--rank", "$(GREENSHARD_SHARD_INDEX)"]
      ports: [{name: api, containerPort: 9000}]
      env:
        - {name: GREENSHARD_SHARD_INDEX, value: stale}
        - {name: MY_LEADER, value: "$(GREENSHARD_LEADER_ADDRESS):29500"}
      resources: {requests: {memory: 1Gi}}
    - name: sidecar
      image: busybox
""")

EXPECTED_SHARD_1 = yaml.safe_load("""
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: llama-shard-1
  namespace: ml
  labels:
    app.kubernetes.io/name: inference-shard
    app.kubernetes.io/instance: llama
    app.kubernetes.io/component: shard
    app.kubernetes.io/part-of: greenshard
    app.kubernetes.io/managed-by: greenshard
    greenshard.io/deployment: llama
    greenshard.io/shard: "1"
  annotations:
    greenshard.io/pool: eu-north-1/NVIDIA-H100-80GB-HBM3
  ownerReferences:
    - {apiVersion: greenshard.io/v1alpha1, kind: InferenceDeployment, name: llama, uid: u-1,
       controller: true, blockOwnerDeletion: true}
spec:
  serviceName: llama-shard-1
  replicas: 2
  podManagementPolicy: Parallel
  updateStrategy: {type: OnDelete}
  selector:
    matchLabels: {greenshard.io/deployment: llama, greenshard.io/shard: "1"}
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
        greenshard.io/shard: "1"
      annotations:
        greenshard.io/pool: eu-north-1/NVIDIA-H100-80GB-HBM3
    spec:
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
              - matchExpressions:
                  - {key: topology.kubernetes.io/region, operator: In, values: [eu-north-1]}
                  - {key: nvidia.com/gpu.product, operator: In, values: [NVIDIA-H100-80GB-HBM3]}
                  - {key: team, operator: In, values: [ml]}
                matchFields:
                  - {key: metadata.name, operator: In, values: [n1]}
      containers:
        - name: server
          image: vllm/vllm-openai:v0.6.3
          args: ["--rank", "$(GREENSHARD_SHARD_INDEX)"]
          ports: [{name: api, containerPort: 9000}]
          resources:
            requests: {memory: 1Gi}
            limits: {nvidia.com/gpu: "2"}
          env: &env
            - {name: GREENSHARD_POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
            - name: GREENSHARD_PIPELINE_INDEX
              valueFrom: {fieldRef: {fieldPath: "metadata.labels['apps.kubernetes.io/pod-index']"}}
            - {name: GREENSHARD_PIPELINE_COUNT, value: "2"}
            - {name: GREENSHARD_SHARD_INDEX, value: "1"}
            - {name: GREENSHARD_SHARD_COUNT, value: "3"}
            - {name: GREENSHARD_FIRST_LAYER, value: "10"}
            - {name: GREENSHARD_LAST_LAYER, value: "19"}
            - {name: GREENSHARD_LAYER_PARTITION, value: "10,10,10"}
            - {name: VLLM_PP_LAYER_PARTITION, value: "10,10,10"}
            - {name: GREENSHARD_GPUS, value: "2"}
            - {name: GREENSHARD_POOL, value: eu-north-1/NVIDIA-H100-80GB-HBM3}
            - name: GREENSHARD_LEADER_ADDRESS
              value: llama-shard-0-$(GREENSHARD_PIPELINE_INDEX).llama-shard-0.ml.svc.cluster.local
            - name: GREENSHARD_PREV_ADDRESS
              value: llama-shard-0-$(GREENSHARD_PIPELINE_INDEX).llama-shard-0.ml.svc.cluster.local
            - name: GREENSHARD_NEXT_ADDRESS
              value: llama-shard-2-$(GREENSHARD_PIPELINE_INDEX).llama-shard-2.ml.svc.cluster.local
            - {name: MY_LEADER, value: "$(GREENSHARD_LEADER_ADDRESS):29500"}
        - name: sidecar
          image: busybox
          env:
            - {name: GREENSHARD_POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
            - name: GREENSHARD_PIPELINE_INDEX
              valueFrom: {fieldRef: {fieldPath: "metadata.labels['apps.kubernetes.io/pod-index']"}}
            - {name: GREENSHARD_PIPELINE_COUNT, value: "2"}
            - {name: GREENSHARD_SHARD_INDEX, value: "1"}
            - {name: GREENSHARD_SHARD_COUNT, value: "3"}
            - {name: GREENSHARD_FIRST_LAYER, value: "10"}
            - {name: GREENSHARD_LAST_LAYER, value: "19"}
            - {name: GREENSHARD_LAYER_PARTITION, value: "10,10,10"}
            - {name: VLLM_PP_LAYER_PARTITION, value: "10,10,10"}
            - {name: GREENSHARD_GPUS, value: "2"}
            - {name: GREENSHARD_POOL, value: eu-north-1/NVIDIA-H100-80GB-HBM3}
            - name: GREENSHARD_LEADER_ADDRESS
              value: llama-shard-0-$(GREENSHARD_PIPELINE_INDEX).llama-shard-0.ml.svc.cluster.local
            - name: GREENSHARD_PREV_ADDRESS
              value: llama-shard-0-$(GREENSHARD_PIPELINE_INDEX).llama-shard-0.ml.svc.cluster.local
            - name: GREENSHARD_NEXT_ADDRESS
              value: llama-shard-2-$(GREENSHARD_PIPELINE_INDEX).llama-shard-2.ml.svc.cluster.local
""")


def test_statefulset_matches_yaml() -> None:
    p = make_pipeline()
    got = pipeline.stage_statefulset(p, p.stages[1], TEMPLATE)
    got_hash = got["metadata"]["annotations"].pop(pipeline.HASH_ANNOTATION)
    assert got == EXPECTED_SHARD_1
    assert len(got_hash) == 16
    assert TEMPLATE["spec"]["containers"][0]["env"][0]["value"] == "stale"  # input untouched


def test_services_match_yaml() -> None:
    p = make_pipeline()
    headless = pipeline.stage_service(p, p.stages[2])
    headless["metadata"].pop("annotations")
    assert headless["spec"] == yaml.safe_load("""
        clusterIP: None
        publishNotReadyAddresses: true
        selector: {greenshard.io/deployment: llama, greenshard.io/shard: "2"}
    """)
    front = pipeline.front_service(p, TEMPLATE)
    assert front["metadata"]["name"] == "llama"
    assert front["spec"] == yaml.safe_load("""
        type: ClusterIP
        selector: {greenshard.io/deployment: llama, greenshard.io/shard: "0"}
        ports: [{name: api, port: 9000, targetPort: 9000, protocol: TCP}]
    """)
    assert pipeline.front_service(p, {"spec": {"containers": [{"name": "c"}]}})["spec"][
        "ports"
    ] == [pipeline.DEFAULT_PORT]


def test_disruption_budget_matches_yaml() -> None:
    p = make_pipeline(replicas=1)  # 1 replica too: maxUnavailable 1 never blocks a drain
    got = pipeline.stage_disruption_budget(p, p.stages[2])
    assert len(got["metadata"]["annotations"].pop(pipeline.HASH_ANNOTATION)) == 16
    assert got == yaml.safe_load("""
apiVersion: policy/v1
kind: PodDisruptionBudget
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
  annotations: {}
  ownerReferences:
    - apiVersion: greenshard.io/v1alpha1
      kind: InferenceDeployment
      name: llama
      uid: u-1
      controller: true
      blockOwnerDeletion: true
spec:
  maxUnavailable: 1
  selector:
    matchLabels: {greenshard.io/deployment: llama, greenshard.io/shard: "2"}
  unhealthyPodEvictionPolicy: AlwaysAllow
""")
    # it selects exactly that shard's pods
    sts = pipeline.stage_statefulset(p, p.stages[2], TEMPLATE)
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert got["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    other = pipeline.stage_statefulset(p, p.stages[1], TEMPLATE)["spec"]["template"]["metadata"]
    assert not got["spec"]["selector"]["matchLabels"].items() <= other["labels"].items()


def test_cpu_stage_requests_the_replica_memory_and_no_gpu() -> None:
    p = make_pipeline()
    pod = pipeline.stage_statefulset(p, p.stages[0], TEMPLATE)["spec"]["template"]["spec"]
    res = pod["containers"][0]["resources"]
    assert res == {"requests": {"memory": str(3 * 2**30)}}
    affinity = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert {"key": "nvidia.com/gpu.product", "operator": "DoesNotExist"} in affinity[
        "nodeSelectorTerms"
    ][0]["matchExpressions"]


@pytest.mark.parametrize(("shards", "replicas"), [(1, 1), (3, 2), (4, 3)])
def test_every_rendered_pod_is_wired_into_its_pipeline(shards: int, replicas: int) -> None:
    p = make_pipeline(shards, replicas)
    seen = podrender.check_pipelines(pipeline.build_all(p, TEMPLATE), "llama")
    assert len(seen["pods"]) == shards * replicas
    assert seen["partition"] == ",".join(["10"] * shards)
    pod = seen["pipelines"][replicas - 1][shards - 1]
    container = podrender.resolved_containers(pod)[0]
    assert container["args"] == ["--rank", str(shards - 1)]
    assert container["env"]["MY_LEADER"] == (
        f"llama-shard-0-{replicas - 1}.llama-shard-0.ml.svc.cluster.local:29500"
    )


def test_template_asking_other_gpus_is_refused() -> None:
    p = make_pipeline()
    assert pipeline.template_gpu_problem(TEMPLATE, p.stages) == ""
    few = {"spec": {"containers": [{"name": "c", "resources": {"limits": {GPU: 1}}}]}}
    message = pipeline.template_gpu_problem(few, p.stages)
    assert "asks for nvidia.com/gpu: 1" in message and "needs 2 GPUs" in message

    def asking(n: int) -> dict[str, object]:
        return {"spec": {"containers": [{"name": "c", "resources": {"limits": {GPU: n}}}]}}

    more = asking(4)
    assert "is planned with 0 GPUs" in pipeline.template_gpu_problem(more, p.stages)
    exact = {
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": 2}}}]}
    }
    assert pipeline.template_gpu_problem(exact, p.stages[1:]) == ""
