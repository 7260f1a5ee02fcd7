"""Admission refuses what the operator would turn into unsafe or broken workloads: names too long
for the shard workloads' names and labels, templates that reach the node, malformed node
selectors, re-planning intervals that would keep the solver busy."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from operator_harness import ROOT

SAMPLE = yaml.safe_load((ROOT / "crds/samples/llama-70b.yaml").read_text())
CONTAINER = {"name": "server", "image": "registry.k8s.io/pause:3.10"}


def doc(name: str = "ok", **spec: Any) -> dict[str, Any]:
    out = copy.deepcopy(SAMPLE)
    out["metadata"] = {"name": name}
    out["spec"]["template"] = {"spec": {"containers": [dict(CONTAINER)]}}
    out["spec"].update(spec)
    return out


def pod(**spec: Any) -> dict[str, Any]:
    return {"spec": {"containers": [dict(CONTAINER)], **spec}}


def selector(**sel: Any) -> dict[str, Any]:
    return {"nodeSelector": sel, "maxRegionHops": 1}


REFUSED = [
    ("name over 42", doc("n" * 43), "metadata.name must be at most 42 characters"),
    ("hostNetwork", doc(template=pod(hostNetwork=True)), "must not set hostNetwork"),
    ("hostPID", doc(template=pod(hostPID=True)), "must not set hostNetwork, hostPID or hostIPC"),
    (
        "hostPath",
        doc(template=pod(volumes=[{"name": "root", "hostPath": {"path": "/"}}])),
        "must not use hostPath",
    ),
    (
        "privileged",
        doc(
            template={
                "spec": {"containers": [{**CONTAINER, "securityContext": {"privileged": True}}]}
            }
        ),
        "must not be privileged",
    ),
    (
        "privileged init container",
        doc(
            template=pod(
                initContainers=[{**CONTAINER, "name": "i", "securityContext": {"privileged": True}}]
            )
        ),
        "must not be privileged",
    ),
    (
        "matchLabels key",
        doc(placement=selector(matchLabels={"bad key!": "x"})),
        "label keys must be [prefix/]name",
    ),
    (
        "matchLabels value",
        doc(placement=selector(matchLabels={"zone": "-x"})),
        "label values must be empty or at most 63",
    ),
    (
        "matchExpressions key",
        doc(placement=selector(matchExpressions=[{"key": "/x", "operator": "Exists"}])),
        "a label key must be [prefix/]name",
    ),
    (
        "interval under a minute",
        doc(carbon={"reoptimizeInterval": "10s"}),
        "reoptimizeInterval must be at least 1m",
    ),
]


@pytest.mark.parametrize(("body", "message"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refused_at_admission_with_the_fix(
    crds: Any, namespace: str, body: dict[str, Any], message: str
) -> None:
    proc = crds.kubectl(
        "create",
        "--dry-run=server",
        "-f",
        "-",
        namespace=namespace,
        input=yaml.safe_dump(body),
        check=False,
    )
    assert proc.returncode != 0, f"accepted: {proc.stdout}"
    assert message in proc.stderr, proc.stderr


def test_the_limits_themselves_are_accepted(crds: Any, namespace: str) -> None:
    bodies = [
        doc("n" * 42),
        doc(placement=selector(matchLabels={"example.com/zone-a": "a.b_c", "empty": ""})),
        doc(placement=selector(matchExpressions=[{"key": "k8s.io/x", "operator": "Exists"}])),
        doc(carbon={"reoptimizeInterval": "1m"}),
        doc(template=pod(hostNetwork=False, volumes=[{"name": "scratch", "emptyDir": {}}])),
    ]
    for body in bodies:
        crds.kubectl(
            "create",
            "--dry-run=server",
            "-f",
            "-",
            namespace=namespace,
            input=yaml.safe_dump(body),
        )
