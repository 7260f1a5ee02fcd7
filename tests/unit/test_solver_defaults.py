"""One solver configuration: the CRD's spec.solver defaults, the CLI and the operator agree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from greenshard import cli, planner
from greenshard.errors import InputError
from greenshard.k8s import resources
from greenshard.solvers import registry, threshold

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "greenshard.io_inferencedeployments.yaml"
SAMPLES = ROOT / "crds" / "samples"


def _crd_solver_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    version = crd["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return dict(spec["properties"]["solver"]["properties"])


def test_crd_defaults_are_the_solver_config_defaults() -> None:
    schema = _crd_solver_schema()
    defaults = registry.SolverConfig()
    assert set(schema) == set(registry.SPEC_FIELDS)
    for field, (attr, _, allowed) in registry.SPEC_FIELDS.items():
        assert schema[field]["default"] == getattr(defaults, attr), field
        if "enum" in schema[field]:
            assert tuple(schema[field]["enum"]) == tuple(allowed), field
        else:
            assert (schema[field]["minimum"], schema[field]["maximum"]) == allowed, field


def test_operator_settings_use_the_same_defaults() -> None:
    settings = resources.parse_settings({"solver": {}}, max_qubits_cap=28)
    assert settings.solver == registry.SolverConfig()
    capped = resources.parse_settings({"solver": {"maxQubits": 26, "depth": 7}}, max_qubits_cap=24)
    assert capped.solver.max_qubits == 24 and capped.solver.depth == 7


def test_config_from_spec_takes_the_file_then_the_flags_given() -> None:
    spec = {"algorithm": "qaoa", "ansatz": "binary", "depth": 5, "shots": 99}
    config = registry.config_from_spec(spec, depth=None, shots=7, seed=None)
    assert (config.algorithm, config.ansatz, config.depth, config.shots) == ("qaoa", "binary", 5, 7)
    assert config.mixer == registry.SolverConfig().mixer


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"depth": "3"}, "spec.solver.depth: must be an integer"),
        ({"depth": True}, "spec.solver.depth: must be an integer"),
        ({"maxQubits": 29}, "spec.solver.maxQubits: must be 1..28"),
        ({"mixer": "star"}, "spec.solver.mixer: use one of complete, ring"),
        ({"colour": 1}, "spec.solver.colour: unknown field"),
    ],
)
def test_bad_spec_solver_names_the_field(spec: dict[str, Any], needle: str) -> None:
    with pytest.raises(InputError, match=needle.replace(".", r"\.")):
        registry.config_from_spec(spec)


def _plan(capsys: pytest.CaptureFixture[str], deploy: str, *flags: str) -> dict[str, Any]:
    code = cli.main(
        [
            "plan", "-f", deploy, "--nodes", str(ROOT / "examples" / "nodes.yaml"),
            "--profile", str(SAMPLES / "gridprofile.yaml"), "--hour", "12", "-o", "json", *flags,
        ]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    return dict(json.loads(out))


def _deploy_with(tmp_path: Path, solver: dict[str, Any]) -> str:
    doc = yaml.safe_load((SAMPLES / "llama-70b.yaml").read_text())
    doc["spec"]["solver"] = solver
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_plan_honours_the_files_spec_solver(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = _plan(capsys, _deploy_with(tmp_path, {"algorithm": "exact"}))
    assert data["solver"]["algorithm"] == "exact"
    # a flag given on the command line wins over the file
    data = _plan(capsys, _deploy_with(tmp_path, {"algorithm": "genetic"}), "--solver", "exact")
    assert data["solver"]["algorithm"] == "exact"


def test_plan_runs_the_ansatz_the_file_names_and_says_which(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    solver = {"algorithm": "qaoa", "ansatz": "binary", "depth": 4, "shots": 256, "seed": 100_003}
    data = _plan(capsys, _deploy_with(tmp_path, solver))
    assert data["solver"]["ansatz"] == "binary-x"
    assert data["solver"]["depth"] == 4 and data["solver"]["qubits"] == 8
    solver = {"algorithm": "qaoa", "ansatz": "onehot", "mixer": "ring", "depth": 6, "seed": 100_004}
    data = _plan(capsys, _deploy_with(tmp_path, solver))
    assert data["solver"]["ansatz"] == "onehot-xy-ring"
    assert data["solver"]["depth"] == 6 and data["solver"]["qubits"] == 16
    for key in ("probabilityOfOptimum", "samplingFoundOptimum", "feasibleSetRatio"):
        assert key in data["solver"], key
    solver = {"algorithm": "qaoa", "seed": 100_005}  # the default ansatz
    data = _plan(capsys, _deploy_with(tmp_path, solver))
    assert data["solver"]["ansatz"] == "threshold-grover"
    assert data["solver"]["gap"] == 0 and data["solver"]["samplingFoundOptimum"] is True
    assert data["solver"]["probabilityOfOptimum"] >= 1 - threshold.DEFAULT_DELTA**2 - 1e-9
    assert data["solver"]["rounds"] >= 1 and data["solver"]["oracleQueries"] > 0


def test_auto_says_the_state_size_it_judged() -> None:
    from greenshard import instances

    problem = instances.family_problem("heldout-close-hops", 8, 3, instances.HELD_OUT_SEEDS[50])
    config = registry.SolverConfig(max_qubits=12, depth=3, shots=64)
    assert registry.state_qubits(problem, config) == 13  # 3**8 = 6561 > 2**12
    solution = planner.solve(problem, config)
    assert solution.method.startswith("exact")
    assert "3**8 = 6561 placements exceeds maxQubits=12" in solution.details["reason"]
    solution = planner.solve(problem, registry.SolverConfig(max_qubits=13, depth=3, shots=64))
    assert solution.details["ansatz"] == "threshold-grover"
    assert "within maxQubits=13" in solution.details["reason"]
