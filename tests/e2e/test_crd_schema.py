"""The CRDs as kube-apiserver serves them: spec.template is exactly what
hack/gen-pod-template-schema.py makes of this apiserver's own PodTemplateSpec (the drift check),
`kubectl explain` describes every field (coverage from the published OpenAPI document), a typo or
a bad value in the pod template is refused at admission, and `kubectl get` shows the Reason."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "hack" / "gen-pod-template-schema.py"
SAMPLE = yaml.safe_load((ROOT / "crds/samples/llama-70b.yaml").read_text())
KINDS = ("InferenceDeployment", "GridProfile")


def test_template_schema_matches_the_apiservers_pod_template_spec(crds: Any) -> None:
    if not crds.local:
        pytest.skip("the drift check needs the control plane pinned in hack/versions.env")
    res = subprocess.run(
        [sys.executable, str(GENERATOR), "--check", "--kubeconfig", crds.kubeconfig],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**crds.env, "PATH": f"{ROOT / 'hack' / 'bin'}:{crds.env.get('PATH', '')}"},
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "is up to date" in res.stdout


def published_fields(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for key, child in (node.get("properties") or {}).items():
        yield f"{path}.{key}", child
        yield from published_fields(child, f"{path}.{key}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from published_fields(node[key], path + "[]")


def test_kubectl_explain_describes_every_field(crds: Any) -> None:
    doc = json.loads(crds.kubectl("get", "--raw", "/openapi/v3/apis/greenshard.io/v1alpha1").stdout)
    schemas = doc["components"]["schemas"]
    for kind in KINDS:
        fields = list(published_fields(schemas[f"io.greenshard.v1alpha1.{kind}"], kind))
        missing = [name for name, node in fields if not node.get("description")]
        assert missing == [], f"{kind}: {len(fields) - len(missing)}/{len(fields)} described"
        assert len(fields) > (1000 if kind == "InferenceDeployment" else 40)
    out = crds.kubectl("explain", "inferencedeployment.spec.template.spec.containers.image").stdout
    assert "Container image name" in out
    out = crds.kubectl("explain", "inferencedeployment.status.solver.gap").stdout
    assert "gap of the placement to the optimum" in out


def infd(name: str, namespace: str, container: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(SAMPLE)
    doc["metadata"] = {"name": name, "namespace": namespace}
    doc["spec"]["mode"] = "DryRun"  # no operator here: only admission is under test
    doc["spec"]["template"] = {"spec": {"containers": [container]}}
    return doc


def test_a_typo_in_the_pod_template_is_refused(crds: Any, namespace: str) -> None:
    container = {"name": "server", "image": "registry.k8s.io/pause:3.10"}
    good = infd("good", namespace, container)
    crds.apply_yaml(yaml.safe_dump(good), namespace=namespace)

    typo = infd("typo", namespace, {**container, "imagePullPolcy": "Always"})
    res = crds.apply_yaml(yaml.safe_dump(typo), namespace=namespace, check=False)
    assert res.returncode != 0
    assert 'unknown field "spec.template.spec.containers[0].imagePullPolcy"' in res.stderr

    # Values are checked even without kubectl's field validation: a bad quantity, a bad enum.
    for bad, field in (
        ({"resources": {"limits": {"memory": "2Gib"}}}, "resources.limits.memory"),
        ({"imagePullPolicy": "Sometimes"}, "imagePullPolicy"),
        ({"ports": [{"containerPort": "http"}]}, "ports[0].containerPort"),
    ):
        doc = infd("bad", namespace, {**container, **bad})
        res = crds.kubectl(
            "create", "--validate=false", "-f", "-", namespace=namespace,
            input=json.dumps(doc), check=False,
        )  # fmt: skip
        assert res.returncode != 0, bad
        assert f"spec.template.spec.containers[0].{field}" in res.stderr, res.stderr


def test_get_shows_the_ready_reason(crds: Any, namespace: str) -> None:
    container = {"name": "server", "image": "registry.k8s.io/pause:3.10"}
    crds.apply_yaml(yaml.safe_dump(infd("shown", namespace, container)), namespace=namespace)
    status = {
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "DryRun",
                "message": "planned only",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ]
    }
    crds.kubectl(
        "patch", "infd", "shown", "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}), namespace=namespace,
    )  # fmt: skip
    header, row = crds.kubectl("get", "infd", "shown", namespace=namespace).stdout.splitlines()
    assert header.split()[5:8] == ["READY", "REASON", "AGE"], header
    assert row.split()[1:2] == ["8"] and "DryRun" in row.split(), row
