"""Every pod of each sample, rendered as Kubernetes would create it from the objects the operator
builds for its plan: every pipeline's ranks, leader and partition agree, every address names a
pod through a Service that exists, and the engines' flags come out right."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import podrender
from greenshard import model, parsing, planner
from greenshard.k8s import pipeline, shardsets
from greenshard.solvers.registry import SolverConfig

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "crds" / "samples"


def objects_for(sample: str) -> tuple[dict[str, Any], list[dict[str, Any]], planner.Plan]:
    doc = yaml.safe_load((SAMPLES / sample).read_text())
    doc["metadata"]["uid"] = "uid-1"
    deployment = parsing.parse_deployment(doc)
    nodes = parsing.parse_nodes(yaml.safe_load((ROOT / "examples" / "nodes.yaml").read_text()))
    profile = parsing.parse_grid_profile(yaml.safe_load((SAMPLES / "gridprofile.yaml").read_text()))
    problem = model.build_problem(deployment, nodes, profile, 12)
    plan = planner.plan(problem, SolverConfig(algorithm="exact"))
    p = shardsets.pipeline_of(doc, plan, deployment.selector)
    template = doc["spec"]["template"]
    assert pipeline.template_gpu_problem(template, p.stages) == ""
    return doc, pipeline.build_all(p, template), plan


@pytest.mark.parametrize("sample", ["llama-70b.yaml", "llama-70b-sglang.yaml"])
def test_every_pod_of_the_sample_is_wired(sample: str) -> None:
    doc, objects, plan = objects_for(sample)
    seen = podrender.check_pipelines(objects, doc["metadata"]["name"])
    shards = doc["spec"]["sharding"]["shards"]
    replicas = doc["spec"]["sharding"]["replicas"]
    assert len(seen["pods"]) == shards * replicas
    assert seen["partition"] == ",".join([str(80 // shards)] * shards)
    gpus = model.gpus_per_replica(plan.problem, plan.solution.placement)
    for pod in seen["pods"]:
        env = seen["envs"][pod["metadata"]["name"]]
        shard = int(env["GREENSHARD_SHARD_INDEX"])
        limits = pod["spec"]["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == str(gpus[shard]) == env["GREENSHARD_GPUS"]
        terms = pod["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]["nodeSelectorTerms"]
        packed = {
            n
            for n, s in model.packing(plan.problem, plan.solution.placement)[
                env["GREENSHARD_POOL"]
            ].items()
            if shard in s
        }
        assert set(terms[0]["matchFields"][0]["values"]) == packed


def test_sglang_flags_come_from_the_pipeline() -> None:
    doc, objects, _ = objects_for("llama-70b-sglang.yaml")
    seen = podrender.check_pipelines(objects, doc["metadata"]["name"])
    for r, stages in seen["pipelines"].items():
        for s, pod in stages.items():
            args = podrender.resolved_containers(pod)[0]["args"]
            assert "--pp-size=4" in args and "--nnodes=4" in args
            assert f"--node-rank={s}" in args
            leader = (
                f"llama-70b-sglang-shard-0-{r}.llama-70b-sglang-shard-0.default.svc.cluster.local"
            )
            assert f"--dist-init-addr={leader}:5000" in args
            assert "--tp-size=1" in args


def test_vllm_stages_join_their_own_pipeline_leader() -> None:
    _, objects, _ = objects_for("llama-70b.yaml")
    seen = podrender.check_pipelines(objects, "llama-70b")
    for r, stages in seen["pipelines"].items():
        leader = f"llama-70b-shard-0-{r}.llama-70b-shard-0.default.svc.cluster.local"
        script = podrender.resolved_containers(stages[3])[0]["args"][0]
        assert f'--address="{leader}:6379"' in script
        head = podrender.resolved_containers(stages[0])[0]["args"][0]
        assert '--pipeline-parallel-size "8"' in head
        assert seen["envs"][stages[0]["metadata"]["name"]]["VLLM_PP_LAYER_PARTITION"] == (
            "10,10,10,10,10,10,10,10"
        )
