"""The Helm chart without a cluster or helm: its CRDs are the top-level ones, its values schema is
closed at every level and matches values.yaml, every value is documented, and the default
GridProfile is the sample. helm lint / template / install: tests/e2e/test_chart.py (this file's
name differs: pytest cannot collect two modules of one basename from folders without __init__)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from greenshard import memory as greenshard_memory

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "greenshard"
SYNC = ROOT / "hack" / "sync-chart-crds.sh"


def load_schema() -> dict[str, Any]:
    import json

    schema: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return schema


def load_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local "$ref": "#/definitions/NAME"."""
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/definitions/"), f"only local refs keep installs offline: {ref}"
        node = schema["definitions"][ref.removeprefix("#/definitions/")]
    return node


# ------------------------------------------------------------------------------------- CRDs


def run_sync(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script), *args], capture_output=True, text=True, check=False, timeout=60
    )


def test_chart_crds_are_the_top_level_crds() -> None:
    res = run_sync(SYNC, "--check")
    assert res.returncode == 0, f"run `make chart-crds`:\n{res.stdout}{res.stderr}"
    top = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    assert top == sorted(p.name for p in (CHART / "crds").iterdir())
    assert len(top) == 2


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """The script, crds/ and an in-sync chart crds/ in a scratch repository root."""
    (tmp_path / "hack").mkdir()
    shutil.copy(SYNC, tmp_path / "hack" / SYNC.name)
    crds = shutil.ignore_patterns("samples")
    shutil.copytree(ROOT / "crds", tmp_path / "crds", ignore=crds)
    shutil.copytree(ROOT / "crds", tmp_path / "charts" / "greenshard" / "crds", ignore=crds)
    return tmp_path


@pytest.mark.parametrize("drift", ["changed", "missing", "extra"])
def test_drift_check_fails_and_a_sync_repairs_it(tree: Path, drift: str) -> None:
    script = tree / "hack" / SYNC.name
    chart_crds = tree / "charts" / "greenshard" / "crds"
    assert run_sync(script, "--check").returncode == 0
    name = "greenshard.io_gridprofiles.yaml"
    if drift == "changed":
        path = chart_crds / name
        path.write_text(path.read_text().replace("maxProperties: 256", "maxProperties: 255", 1))
    elif drift == "missing":
        (chart_crds / name).unlink()
    else:
        name = "greenshard.io_stale.yaml"
        (chart_crds / name).write_text("kind: CustomResourceDefinition\n")

    res = run_sync(script, "--check")
    assert res.returncode == 1, res.stdout + res.stderr
    assert name in res.stderr

    assert run_sync(script).returncode == 0
    assert run_sync(script, "--check").returncode == 0
    assert sorted(p.name for p in chart_crds.iterdir()) == sorted(
        p.name for p in (tree / "crds").glob("*.yaml")
    )
    for src in (tree / "crds").glob("*.yaml"):
        assert (chart_crds / src.name).read_bytes() == src.read_bytes()


# ------------------------------------------------------------------------------- metadata


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "greenshard"
    assert chart["appVersion"] == project["version"] == "0.1.0"
    assert chart["kubeVersion"] == ">=1.30.0-0"


def test_one_resource_per_template_and_prefixed_helpers() -> None:
    templates = sorted((CHART / "templates").glob("*.yaml"))
    assert len(templates) >= 8
    for path in templates:
        kinds = re.findall(r"^kind: (\w+)", path.read_text(), flags=re.MULTILINE)
        assert len(kinds) == 1, f"{path.name}: one resource a file, found {kinds}"
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    defined = re.findall(r'{{-? define "([^"]+)"', helpers)
    assert defined
    assert all(name.startswith("greenshard.") for name in defined), defined
    for path in [*templates, CHART / "templates" / "NOTES.txt"]:
        for used in re.findall(r'include "([^"]+)"', path.read_text()):
            assert used in defined, f"{path.name} includes undefined {used}"


# ---------------------------------------------------------------------------- values schema


def schema_nodes(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every subschema of SCHEMA with its JSON pointer."""

    def walk(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
        if isinstance(node, dict):
            yield where, node
            for key, child in node.items():
                yield from walk(child, f"{where}/{key}")
        elif isinstance(node, list):
            for i, child in enumerate(node):
                yield from walk(child, f"{where}/{i}")

    yield from walk(schema, "#")


def test_schema_closes_every_object() -> None:
    schema = load_schema()
    objects = 0
    for where, node in schema_nodes(schema):
        if "properties" in node:
            objects += 1
            assert node.get("additionalProperties") is False, f"{where} is open to typos"
        elif node.get("type") == "object" and where != "#/properties/global":
            # A map (labels, regions): keys are free, the values are typed.
            assert isinstance(node.get("additionalProperties"), dict), f"{where} is untyped"
    assert objects >= 15


def closed_pairs(
    schema: dict[str, Any], values: Any, node: dict[str, Any], path: str
) -> Iterator[tuple[str, set[str], set[str]]]:
    """(path, keys in values.yaml, properties in the schema) for every closed object."""
    node = resolve(schema, node)
    if not isinstance(values, dict):
        return
    if "properties" in node:
        yield path, set(values), set(node["properties"]) - {"global"}
        for key, child in values.items():
            if key in node["properties"]:
                yield from closed_pairs(schema, child, node["properties"][key], f"{path}.{key}")
    elif isinstance(node.get("additionalProperties"), dict):
        for key, child in values.items():
            yield from closed_pairs(schema, child, node["additionalProperties"], f"{path}.{key}")


def test_values_yaml_sets_exactly_the_keys_the_schema_allows() -> None:
    schema = load_schema()
    pairs = list(closed_pairs(schema, load_values(), schema, "values"))
    assert len(pairs) >= 15
    for path, keys, properties in pairs:
        assert keys <= properties, f"{path}: not in values.schema.json: {keys - properties}"
        # An empty object ({}: affinity) is an optional Kubernetes object, unset by default.
        assert properties <= keys or not keys, (
            f"{path}: undocumented in values.yaml: {properties - keys}"
        )


def test_schema_bounds_the_qubit_budget() -> None:
    schema = load_schema()
    qubits = schema["properties"]["solver"]["properties"]["maxQubits"]
    assert (qubits["type"], qubits["minimum"], qubits["maximum"]) == ("integer", 1, 28)
    assert load_values()["solver"]["maxQubits"] == 20


def test_every_value_is_commented() -> None:
    """Every key of values.yaml has a comment on the lines just above it or at its end,
    except the data inside gridProfile.spec (the GridProfile itself, commented as a whole)."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    data_indent: int | None = None  # inside gridProfile.spec while set
    checked = 0
    for i, line in enumerate(lines):
        m = re.match(r"^( *)([A-Za-z][\w.-]*):(.*)$", line)
        if not m:
            continue
        indent, key, rest = len(m.group(1)), m.group(2), m.group(3)
        if data_indent is not None:
            if indent > data_indent:
                continue
            data_indent = None
        above = lines[i - 1].strip() if i else ""
        assert above.startswith("#") or "#" in rest, f"values.yaml:{i + 1}: {key} has no comment"
        checked += 1
        if key == "spec" and indent == 2:
            data_indent = indent
    assert checked >= 30


def test_default_grid_profile_is_the_sample() -> None:
    sample = yaml.safe_load((ROOT / "crds" / "samples" / "gridprofile.yaml").read_text())
    values = load_values()["gridProfile"]
    assert values["create"] is True
    assert values["name"] == sample["metadata"]["name"] == "default"
    assert values["spec"] == sample["spec"]


def test_values_document_the_memory_formula() -> None:
    text = (CHART / "values.yaml").read_text()
    assert "2^solver.maxQubits * resources.memory.bytesPerAmplitude" in text
    assert "20 qubits -> 640 + 24 = 664Mi" in text
    memory = load_values()["resources"]["memory"]
    assert (memory["baseMi"], memory["bytesPerAmplitude"]) == (640, 24)
    assert memory["baseMi"] + (2**20 * memory["bytesPerAmplitude"] + 2**20 - 1) // 2**20 == 664


def test_the_chart_sizes_memory_with_the_one_estimate() -> None:
    """The chart's bytes per amplitude is the figure the operator's bound and bench use."""
    memory = load_values()["resources"]["memory"]
    assert memory["bytesPerAmplitude"] == greenshard_memory.BYTES_PER_AMPLITUDE
