"""`greenshard plan`: outputs for people and machines, and one-line errors with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from greenshard import cli

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "crds" / "samples"
DEPLOY = str(SAMPLES / "llama-70b.yaml")
NODES = str(ROOT / "examples" / "nodes.yaml")
PROFILE = str(SAMPLES / "gridprofile.yaml")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def plan_args(
    *extra: str, deploy: str = DEPLOY, nodes: str = NODES, profile: str = PROFILE
) -> list[str]:
    return ["plan", "-f", deploy, "--nodes", nodes, "--profile", profile, "--hour", "12", *extra]


def test_plan_json_has_the_documented_fields(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *plan_args("--solver", "exact", "-o", "json"))
    assert code == 0
    data = json.loads(out)
    assert data["pools"] == ["eu-north-1/NVIDIA-H100-80GB-HBM3", "us-east-1/NVIDIA-H100-80GB-HBM3"]
    placement = data["placement"]
    assert [p["shard"] for p in placement] == list(range(8))
    assert placement[0]["layers"] == [0, 9] and placement[7]["layers"] == [70, 79]
    # eu-north-1 is cleanest but has 2 GPUs: the 2 replicas of one shard (1 GPU each);
    # one region hop is allowed, so the first (or last) shard goes there.
    pools = [p["pool"] for p in placement]
    assert pools == ["eu-north-1/NVIDIA-H100-80GB-HBM3"] + ["us-east-1/NVIDIA-H100-80GB-HBM3"] * 7
    assert [p["gpusPerReplica"] for p in placement] == [1] * 8
    assert data["packing"]["eu-north-1/NVIDIA-H100-80GB-HBM3"] == {"eu-north-1-h100-0": [0, 0]}
    us_nodes = data["packing"]["us-east-1/NVIDIA-H100-80GB-HBM3"]
    assert sorted(s for v in us_nodes.values() for s in v) == sorted(list(range(1, 8)) * 2)
    assert all(len(v) <= 8 for v in us_nodes.values())  # 8 GPUs per node
    assert data["pipelineLatencyMs"] == 110.0  # one eu-north-1/us-east-1 boundary
    assert placement[0]["region"] == "eu-north-1"
    assert placement[0]["accelerator"] == "NVIDIA-H100-80GB-HBM3"
    assert data["emissionsGramsPerHour"] < data["baselineGramsPerHour"]
    savings = (
        100
        * (data["baselineGramsPerHour"] - data["emissionsGramsPerHour"])
        / data["baselineGramsPerHour"]
    )
    assert data["savingsPercent"] == pytest.approx(savings)
    solver = data["solver"]
    for key in ("method", "qubits", "depth", "optimumGramsPerHour", "gap", "wallSeconds"):
        assert key in solver
    assert solver["method"] == "exact-bruteforce" and solver["gap"] == 0.0


@pytest.mark.slow
def test_plan_auto_uses_qaoa_and_matches_the_exact_answer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, exact_out, _ = run(capsys, *plan_args("--solver", "exact", "-o", "json"))
    code, out, _ = run(capsys, *plan_args("--seed", "1", "-o", "yaml"))
    assert code == 0
    data, reference = yaml.safe_load(out), json.loads(exact_out)
    assert data["solver"]["method"] == "qaoa-sample"
    assert data["solver"]["ansatz"] == "threshold-grover"
    assert data["solver"]["qubits"] == 16  # one-hot: 8 shards x 2 pools
    assert data["placement"] == reference["placement"]
    assert data["solver"]["gap"] == 0.0
    assert isinstance(data["solver"]["samplingFoundOptimum"], bool)


def test_plan_table_is_for_people(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *plan_args("--solver", "exact"))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["SHARD", "LAYERS", "POOL", "GPUS/REPLICA", "NODES", "GCO2E/H"]
    assert lines[1].split()[:2] == ["0", "0-9"]
    assert any(line.startswith("savings:") and "%" in line for line in lines)
    assert any(line.startswith("optimum:") and "gap 0 (exact optimum)" in line for line in lines)


def write(tmp_path: Path, name: str, doc: Any) -> str:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return str(path)


def load(name: str) -> Any:
    path = {"llama-70b.yaml": DEPLOY, "nodes.yaml": NODES, "gridprofile.yaml": PROFILE}[name]
    return yaml.safe_load(Path(path).read_text())


def _bad_deploy(mutate: Any) -> Any:
    doc = load("llama-70b.yaml")
    mutate(doc)
    return doc


BAD = [
    ("malformed YAML", "deploy", "spec: [unclosed\n", ["deploy.yaml", "invalid YAML", "line"]),
    (
        "missing field",
        "deploy",
        _bad_deploy(lambda d: d["spec"]["model"].pop("layers")),
        ["deploy.yaml", "spec.model.layers", "required"],
    ),
    (
        "out of range",
        "deploy",
        _bad_deploy(lambda d: d["spec"]["workload"].update(tokensPerSecond=0)),
        ["deploy.yaml", "spec.workload.tokensPerSecond"],
    ),
    (
        "unknown dtype",
        "deploy",
        _bad_deploy(lambda d: d["spec"]["model"].update(dtype="fp64")),
        ["deploy.yaml", "spec.model.dtype", "bfloat16"],
    ),
    (
        "shards > layers",
        "deploy",
        _bad_deploy(lambda d: d["spec"]["sharding"].update(shards=100)),
        ["deploy.yaml", "spec.sharding.shards", "at most 80"],
    ),
    (
        "no candidate pool",
        "profile",
        {
            **load("gridprofile.yaml"),
            "spec": {**load("gridprofile.yaml")["spec"], "regions": {"mars-1": {"intensity": 1}}},
        },
        ["nodes.yaml", "no candidate pool", "spec.regions"],
    ),
    (
        "infeasible",
        "deploy",
        _bad_deploy(lambda d: d["spec"]["sharding"].update(replicas=20)),
        ["deploy.yaml", "no feasible placement", "replicas"],
    ),
    (
        "bad node quantity",
        "nodes",
        {
            "kind": "NodeList",
            "items": [{"metadata": {"name": "x"}, "status": {"allocatable": {"memory": "lots"}}}],
        },
        ["nodes.yaml", "items[0].status.allocatable.memory"],
    ),
    ("wrong kind", "profile", {"kind": "ConfigMap", "spec": {}}, ["profile.yaml", "kind"]),
    (
        "bad solver depth",
        "deploy",
        _bad_deploy(lambda d: d["spec"]["solver"].update(depth=0)),
        ["deploy.yaml", "spec.solver.depth", "1..1000"],
    ),
    (
        "unknown ansatz",
        "deploy",
        _bad_deploy(lambda d: d["spec"]["solver"].update(ansatz="qudit")),
        ["deploy.yaml", "spec.solver.ansatz", "onehot, binary"],
    ),
    (
        "two documents",
        "nodes",
        "kind: NodeList\nitems: []\n---\nkind: NodeList\n",
        ["nodes.yaml", "exactly one YAML document"],
    ),
]


@pytest.mark.parametrize(("case", "which", "doc", "needles"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    case: str,
    which: str,
    doc: Any,
    needles: list[str],
) -> None:
    files = {"deploy": DEPLOY, "nodes": NODES, "profile": PROFILE}
    files[which] = write(tmp_path, f"{which}.yaml", doc)
    if which != "nodes":
        files["nodes"] = write(tmp_path, "nodes.yaml", load("nodes.yaml"))
    code, out, err = run(
        capsys,
        *plan_args(
            "--solver",
            "exact",
            deploy=files["deploy"],
            nodes=files["nodes"],
            profile=files["profile"],
        ),
    )
    assert code == 2, case
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)


def test_missing_file_and_bad_flags(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, *plan_args(deploy=str(tmp_path / "nope.yaml")))
    assert code == 2 and "nope.yaml: cannot read" in err
    for flags, needle in [
        (["--hour", "24"], "--hour must be 0..23"),
        (["--solver", "magic"], "invalid choice"),
        (["--seed", "-1"], "--seed must be >= 0"),
    ]:
        with pytest.raises(SystemExit) as exc:
            cli.main(plan_args(*flags))
        assert exc.value.code == 2
        assert needle in capsys.readouterr().err


def test_console_script_runs_without_traceback(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", "spec: {model: {layers: -3}}")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "greenshard.cli",
            "plan",
            "-f",
            bad,
            "--nodes",
            NODES,
            "--profile",
            PROFILE,
        ],
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(ROOT / "operator"), "PATH": ""},
    )
    assert result.returncode == 2
    assert result.stderr.startswith("greenshard: error: ")
    assert "spec.model.layers" in result.stderr and "Traceback" not in result.stderr


def test_plan_counts_gpus_that_other_pods_hold(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    others = {
        "apiVersion": "v1",
        "kind": "PodList",
        "items": [
            {
                "metadata": {"name": "training", "namespace": "research"},
                "spec": {
                    "nodeName": "eu-north-1-h100-0",
                    "containers": [{"name": "t", "resources": {"limits": {"nvidia.com/gpu": 1}}}],
                },
                "status": {"phase": "Running"},
            },
            {  # finished: holds nothing
                "metadata": {"name": "done", "namespace": "research"},
                "spec": {
                    "nodeName": "eu-north-1-h100-0",
                    "containers": [{"name": "t", "resources": {"limits": {"nvidia.com/gpu": 1}}}],
                },
                "status": {"phase": "Succeeded"},
            },
        ],
    }
    pods_file = write(tmp_path, "pods.yaml", others)
    code, out, _ = run(capsys, *plan_args("--solver", "exact", "-o", "json", "--pods", pods_file))
    assert code == 0
    data = json.loads(out)
    # one GPU left on eu-north-1 cannot take both replicas of a shard: everything in us-east-1
    assert {p["pool"] for p in data["placement"]} == {"us-east-1/NVIDIA-H100-80GB-HBM3"}
    eu = [c for c in data["capacity"] if c["pool"].startswith("eu-north-1")]
    # the running pod holds one of the node's 110 pod slots too (the finished one none)
    assert eu == [
        {
            "pool": "eu-north-1/NVIDIA-H100-80GB-HBM3",
            "unit": "gpu",
            "free": 1,
            "total": 2,
            "freePodSlots": 109,
        }
    ]
    bad = write(tmp_path, "bad.yaml", {"kind": "NodeList", "items": []})
    code, _, err = run(capsys, *plan_args("--pods", bad))
    assert code != 0 and "bad.yaml" in err and "PodList" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_latency_limit_keeps_the_pipeline_in_one_region(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """12 shards of 1 GPU, H100 in eu-north-1 (2 GPUs here) and us-east-1: the greenest plan
    crosses the Atlantic once (70 ms); maxPipelineLatencyMs 50 keeps it in us-east-1."""
    doc = load("llama-70b.yaml")
    doc["spec"]["sharding"] = {"shards": 8, "replicas": 1}
    profile = load("gridprofile.yaml")
    profile["spec"]["network"] = {"latencyMs": {"eu-north-1/us-east-1": 70}}
    prof = write(tmp_path, "profile.yaml", profile)
    free = write(tmp_path, "free.yaml", doc)
    code, out, _ = run(
        capsys, *plan_args("--solver", "exact", "-o", "json", deploy=free, profile=prof)
    )
    assert code == 0
    data = json.loads(out)
    regions = [p["region"] for p in data["placement"]]
    assert "eu-north-1" in regions and "us-east-1" in regions
    assert data["pipelineLatencyMs"] == 70.0
    doc["spec"]["placement"]["maxPipelineLatencyMs"] = 50
    bounded = write(tmp_path, "bounded.yaml", doc)
    code, out, _ = run(
        capsys, *plan_args("--solver", "exact", "-o", "json", deploy=bounded, profile=prof)
    )
    assert code == 0
    data = json.loads(out)
    assert {p["region"] for p in data["placement"]} == {"us-east-1"}
    assert data["pipelineLatencyMs"] == 0.0
    # every solver keeps to the same rule
    for solver in ("genetic", "anneal", "qaoa"):
        code, out, _ = run(
            capsys, *plan_args("--solver", solver, "-o", "json", deploy=bounded, profile=prof)
        )
        assert code == 0 and json.loads(out)["pipelineLatencyMs"] <= 50
