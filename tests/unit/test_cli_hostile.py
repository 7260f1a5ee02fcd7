"""Hostile input to `greenshard plan`: every one ends in exit 2 and one line on stderr (never a
traceback, a recursion error or a terabyte allocation), or, when the input is merely big but
valid, in a plan."""

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
SAMPLE = ROOT / "crds" / "samples" / "llama-70b.yaml"
NODES = str(ROOT / "examples" / "nodes.yaml")
PROFILE = str(ROOT / "crds" / "samples" / "gridprofile.yaml")


def deployment(tmp_path: Path, layers: int, shards: int, **solver: Any) -> str:
    doc = yaml.safe_load(SAMPLE.read_text())
    doc["spec"]["model"]["layers"] = layers
    doc["spec"]["sharding"] = {"shards": shards, "replicas": 1}
    if solver:
        doc["spec"]["solver"] = solver
    path = tmp_path / f"d{shards}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def plan(capsys: pytest.CaptureFixture[str], deploy: str, *extra: str) -> tuple[int, str, str]:
    code = cli.main(
        ["plan", "-f", deploy, "--nodes", NODES, "--profile", PROFILE, "--hour", "12", *extra]
    )
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("greenshard: error: "), err
    return lines[0]


def test_non_utf8_input_names_the_byte(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"apiVersion: greenshard.io/v1alpha1\nkind: \xffInferenceDeployment\n")
    code, _, err = plan(capsys, str(bad))
    assert code == 2
    line = one_line(err)
    assert f"{bad}: not UTF-8 text (byte 0xff at offset 41)" in line
    assert "save the file as UTF-8" in line


@pytest.mark.parametrize("opener", ["[", "{a: "])
def test_deep_nesting_is_refused_before_it_is_built(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, opener: str
) -> None:
    closer = "]" if opener == "[" else "}"
    deep = tmp_path / "deep.yaml"
    deep.write_text(opener * 100_000 + closer * 100_000 + "\n")
    code, _, err = plan(capsys, str(deep))
    assert code == 2
    line = one_line(err)
    assert f"{deep}: nested deeper than {cli.MAX_YAML_DEPTH} levels at line 1" in line


def test_oversized_input_is_refused_without_parsing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:
        handle.write(b"# padding\n" * (cli.MAX_INPUT_BYTES // 10 + 1))
    code, _, err = plan(capsys, str(SAMPLE), "--nodes", str(big))
    assert code == 2
    assert f"{big}: larger than the 32 MiB input limit" in one_line(err)


def test_qaoa_over_the_qubit_budget_is_refused_before_allocating(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    deploy = deployment(tmp_path, 80, 40)
    code, _, err = plan(capsys, deploy, "--solver", "qaoa")
    assert code == 2
    line = one_line(err)
    assert (
        "qaoa (threshold ansatz) needs a placement table of 2**40 = 1099511627776 placements for "
        "40 shards on 2 pools (about 128 GiB)"
    ) in line
    assert "over maxQubits=20; use the auto or exact solver" in line


def test_a_thousand_shards_plan_without_recursion(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    deploy = deployment(tmp_path, 1024, 1024, algorithm="exact")
    # 1024 replicas need 1024 GPUs and 1024 pods: the example nodes with 512 GPUs and room
    # for 512 pods each
    nodes = yaml.safe_load(Path(NODES).read_text())
    for node in nodes["items"]:
        if "nvidia.com/gpu" in node["status"].get("allocatable", {}):
            node["status"]["allocatable"]["nvidia.com/gpu"] = "512"
            node["status"]["allocatable"]["pods"] = "512"
    big = tmp_path / "nodes.yaml"
    big.write_text(yaml.safe_dump(nodes))
    args = ["plan", "-f", deploy, "--nodes", str(big), "--profile", PROFILE, "--hour", "12"]
    code = cli.main([*args, "-o", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert len(data["placement"]) == 1024
    assert data["solver"]["gap"] == 0.0


def test_hostile_inputs_never_print_a_traceback(tmp_path: Path) -> None:
    """The console entry point, as a user runs it: exit 2 and one line, for each input."""
    (tmp_path / "bad.yaml").write_bytes(b"\xfe\xff\x00k")
    (tmp_path / "deep.yaml").write_text("[" * 50_000 + "]" * 50_000)
    for path in ("bad.yaml", "deep.yaml"):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "greenshard.cli",
                "plan",
                "-f",
                str(tmp_path / path),
                "--nodes",
                NODES,
                "--profile",
                PROFILE,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            env={"PYTHONPATH": str(ROOT / "operator"), "PATH": "/usr/bin:/bin"},
        )
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        one_line(proc.stderr)
