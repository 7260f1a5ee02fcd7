"""The CRDs as files: every field has a description (what `kubectl explain` prints), spec.template
is a structural PodTemplateSpec schema made by hack/gen-pod-template-schema.py, and the CRD fits
the `kubectl apply` annotation. The drift check against the built kube-apiserver's own OpenAPI
document, and what the apiserver makes of these schemas, are in tests/e2e/test_crd_schema.py."""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRDS = sorted((ROOT / "crds").glob("*.yaml"))
GENERATOR = ROOT / "hack" / "gen-pod-template-schema.py"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_pod_template_schema", GENERATOR)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gen = load_generator()


@functools.cache
def _load(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_crd(path: Path) -> dict[str, Any]:
    crd: dict[str, Any] = copy.deepcopy(_load(path))
    return crd


def schema_of(path: Path) -> dict[str, Any]:
    crd = load_crd(path)
    (version,) = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def fields(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every field (property at any depth: what `kubectl explain --recursive` lists)."""
    for key, child in (node.get("properties") or {}).items():
        yield f"{path}.{key}", child
        yield from fields(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        yield from fields(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from fields(node["additionalProperties"], f"{path}[*]")


def explain_coverage(path: Path) -> tuple[int, int, list[str]]:
    # The root metadata may not be described in a CRD: kube-apiserver puts ObjectMeta there.
    all_fields = [f for f in fields(schema_of(path), path.stem) if f[0] != f"{path.stem}.metadata"]
    missing = [name for name, node in all_fields if not str(node.get("description", "")).strip()]
    return len(all_fields) - len(missing), len(all_fields), missing


@pytest.mark.parametrize("path", CRDS, ids=[p.stem for p in CRDS])
def test_every_field_is_described(path: Path) -> None:
    described, total, missing = explain_coverage(path)
    assert missing == [], f"{described}/{total} fields described; missing: {missing}"
    assert total >= 40
    assert schema_of(path).get("description")


KEYWORDS = {
    "type", "format", "description", "properties", "required", "items", "additionalProperties",
    "enum", "default", "minimum", "maximum", "exclusiveMinimum", "minLength", "maxLength",
    "minItems", "maxItems", "minProperties", "maxProperties", "pattern", "anyOf", "nullable",
    "x-kubernetes-validations", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type", "x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields",
}  # fmt: skip


@pytest.mark.parametrize("path", CRDS, ids=[p.stem for p in CRDS])
def test_schemas_use_only_schema_keywords(path: Path) -> None:
    """A misquoted flow mapping ({description: a, b}) turns into a stray key: caught here."""
    for name, node in [(path.stem, schema_of(path)), *fields(schema_of(path), path.stem)]:
        assert set(node) <= KEYWORDS, f"{name}: {set(node) - KEYWORDS}"


def test_explain_coverage_counts_a_missing_description() -> None:
    schema = schema_of(CRDS[0])
    del schema["properties"]["spec"]["properties"]["regions"]["description"]
    missing = [n for n, node in fields(schema, "gp") if not node.get("description")]
    assert missing == ["gp.metadata", "gp.spec.regions"]


# ------------------------------------------------------------------------------ template


def template_schema() -> dict[str, Any]:
    path = ROOT / "crds" / "greenshard.io_inferencedeployments.yaml"
    template: dict[str, Any] = schema_of(path)["properties"]["spec"]["properties"]["template"]
    return template


def nodes(node: Any, where: str = "template") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield where, node
        for key, child in node.items():
            if key in ("properties", "additionalProperties", "items"):
                if key == "properties":
                    for name, sub in child.items():
                        yield from nodes(sub, f"{where}.{name}")
                else:
                    yield from nodes(child, f"{where}[{key}]")


def test_template_is_a_full_structural_pod_template_spec() -> None:
    template = template_schema()
    pod = template["properties"]["spec"]
    assert pod["required"] == ["containers"]
    container = pod["properties"]["containers"]["items"]
    for field in ("image", "resources", "env", "ports", "volumeMounts", "securityContext"):
        assert field in container["properties"], field
    for field in ("affinity", "tolerations", "volumes", "nodeSelector", "schedulerName"):
        assert field in pod["properties"], field
    assert set(template["properties"]["metadata"]["properties"]) == {"labels", "annotations"}
    count = 0
    for where, node in nodes(template):
        count += 1
        # Structural: a type everywhere, or int-or-string; nothing a CRD cannot hold.
        assert "type" in node or node.get("x-kubernetes-int-or-string") is True, where
        assert "x-kubernetes-preserve-unknown-fields" not in node, where
        for key in ("$ref", "allOf", "oneOf", "default", "x-kubernetes-patch-strategy"):
            assert key not in node, f"{where}: {key}"
        if node.get("x-kubernetes-list-type") == "map":
            assert set(node["x-kubernetes-list-map-keys"]) <= set(node["items"]["required"]), where
    assert count > 900
    limits = container["properties"]["resources"]["properties"]["limits"]["additionalProperties"]
    assert limits["x-kubernetes-int-or-string"] is True
    assert limits["pattern"] == gen.QUANTITY_PATTERN


def test_crd_fits_the_kubectl_apply_annotation() -> None:
    """`kubectl apply` stores the object as JSON in an annotation of at most 256 KiB."""
    for path in CRDS:
        size = len(json.dumps(load_crd(path), separators=(",", ":")))
        assert size < 230_000, f"{path.name}: {size} bytes of JSON"


def test_ready_reason_printer_column() -> None:
    crd = load_crd(ROOT / "crds" / "greenshard.io_inferencedeployments.yaml")
    columns = {c["name"]: c for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert columns["Reason"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].reason'
    names = list(columns)
    assert names.index("Reason") == names.index("Ready") + 1


# ------------------------------------------------------------------------------ generator


def ref(name: str, description: str = "") -> dict[str, Any]:
    node: dict[str, Any] = {"allOf": [{"$ref": f"#/components/schemas/{name}"}], "default": {}}
    if description:
        node["description"] = description
    return node


def openapi(**extra: Any) -> dict[str, Any]:
    """A small OpenAPI v3 document shaped like /openapi/v3/api/v1."""
    schemas: dict[str, Any] = {
        gen.ROOT_TYPE: {
            "description": "PodTemplateSpec describes the data a pod should have.",
            "type": "object",
            "properties": {
                "metadata": ref(gen.OBJECT_META, "Standard object's metadata."),
                "spec": ref("io.k8s.api.core.v1.PodSpec", "Specification of the pod."),
            },
        },
        gen.OBJECT_META: {
            "description": "ObjectMeta.",
            "type": "object",
            "properties": {
                "labels": {
                    "description": "Labels.",
                    "type": "object",
                    "additionalProperties": {"type": "string", "default": ""},
                },
                "annotations": {
                    "description": "Annotations.",
                    "type": "object",
                    "additionalProperties": {"type": "string", "default": ""},
                },
                "managedFields": {"description": "Internal.", "type": "array", "items": {}},
            },
        },
        gen.QUANTITY: {"description": "Quantity.", "oneOf": [{"type": "string"}]},
        "io.k8s.api.core.v1.PodSpec": {
            "description": "PodSpec.",
            "type": "object",
            "required": ["containers"],
            "properties": {
                "containers": {
                    "description": "Containers.",
                    "type": "array",
                    "items": ref("io.k8s.api.core.v1.Container"),
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "x-kubernetes-patch-strategy": "merge",
                },
            },
        },
        "io.k8s.api.core.v1.Container": {
            "description": "A container.",
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"description": "Name. " + "Long words here. " * 40, "type": "string"},
                "memory": ref(gen.QUANTITY, "Memory."),
                "ports": {
                    "description": "Ports.",
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["containerPort"],
                        "properties": {
                            "containerPort": {"description": "Port.", "type": "integer"},
                            "protocol": {"description": "Protocol.", "type": "string"},
                        },
                    },
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
                },
            },
        },
    }
    schemas.update(extra)
    return {"components": {"schemas": schemas}}


def generated(doc: dict[str, Any]) -> dict[str, Any]:
    text = gen.generate(doc, "v0.0.0")
    assert text.startswith(gen.BEGIN) and text.rstrip().endswith(gen.END)
    assert "kube-apiserver v0.0.0" in text
    schema: dict[str, Any] = yaml.safe_load(text)["template"]
    return schema


def test_generator_inlines_references_and_makes_them_structural() -> None:
    schema = generated(openapi())
    container = schema["properties"]["spec"]["properties"]["containers"]
    assert container["description"] == "Containers."
    assert container["x-kubernetes-list-map-keys"] == ["name"]
    assert container["minItems"] == 1
    assert "x-kubernetes-patch-strategy" not in container
    props = container["items"]["properties"]
    assert props["memory"] == {
        "description": "Memory.",
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": gen.QUANTITY_PATTERN,
        "x-kubernetes-int-or-string": True,
    }
    # protocol is not required: the list cannot be a map, so it is atomic.
    assert "x-kubernetes-list-type" not in props["ports"]
    assert len(props["name"]["description"]) <= gen.DESC_MAX + 4
    meta = schema["properties"]["metadata"]
    assert set(meta["properties"]) == {"labels", "annotations"}
    assert meta["properties"]["labels"]["additionalProperties"] == {"type": "string"}
    assert schema["properties"]["spec"]["description"] == "Specification of the pod."


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (
            {
                "io.k8s.api.core.v1.Container": {
                    "description": "x",
                    "type": "object",
                    "properties": {"self": ref("io.k8s.api.core.v1.Container", "loop")},
                }
            },
            "recursive type io.k8s.api.core.v1.Container",
        ),
        (
            {
                "io.k8s.api.core.v1.PodSpec": {
                    "description": "x",
                    "type": "object",
                    "properties": {"containers": {"type": "string"}},
                }
            },
            "template.spec.containers: no description",
        ),
        (
            {
                "io.k8s.api.core.v1.PodSpec": {
                    "description": "x",
                    "properties": {"containers": {"description": "c", "type": "string"}},
                }
            },
            "template.spec: no type",
        ),
    ],
)
def test_generator_refuses_what_a_crd_cannot_hold(change: dict[str, Any], complaint: str) -> None:
    with pytest.raises(gen.InputError, match=complaint.replace("[", r"\[")):
        gen.generate(openapi(**change), "v0.0.0")


def test_generator_names_a_document_without_pod_templates(tmp_path: Path) -> None:
    doc = tmp_path / "openapi.json"
    doc.write_text(json.dumps({"components": {"schemas": {}}}))
    assert gen.main(["--check", "--openapi", str(doc)]) == 2


def test_splice_replaces_only_the_generated_block() -> None:
    crd = f"a:\n  b:\n    {gen.BEGIN}\n    old: 1\n    {gen.END}\n  c: 2\n"
    block = f"{gen.BEGIN}\nnew:\n  x: 1\n{gen.END}\n"
    assert gen.splice(crd, block) == (
        f"a:\n  b:\n    {gen.BEGIN}\n    new:\n      x: 1\n    {gen.END}\n  c: 2\n"
    )
    with pytest.raises(gen.InputError):
        gen.splice("a: 1\n", block)
