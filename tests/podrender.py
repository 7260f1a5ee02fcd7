"""What Kubernetes makes of our objects, for tests: the pods a StatefulSet creates, their env
resolved as the kubelet does (downward API fieldRefs and $(VAR) expansion), and DNS names
checked against the Services that exist."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined variables are replaced, $$ is a literal $,
    undefined references stay as they are."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _REF.sub(sub, text)


def _field(pod: Mapping[str, Any], path: str) -> str:
    meta = pod["metadata"]
    if path == "metadata.name":
        return str(meta["name"])
    if path == "metadata.namespace":
        return str(meta["namespace"])
    if path == "spec.nodeName":
        return str(pod["spec"].get("nodeName", ""))
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise AssertionError(f"unsupported fieldRef {path}")


def container_env(pod: Mapping[str, Any], container: Mapping[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in container.get("env") or []:
        if "valueFrom" in entry:
            ref = entry["valueFrom"].get("fieldRef")
            if ref is None:  # a Secret or ConfigMap: not ours to resolve
                env[entry["name"]] = f"<{entry['name']}>"
                continue
            env[entry["name"]] = _field(pod, ref["fieldPath"])
        else:
            env[entry["name"]] = expand(str(entry.get("value", "")), env)
    return env


def statefulset_pods(sts: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The pods the StatefulSet controller creates (names, labels; not scheduled)."""
    out = []
    name = sts["metadata"]["name"]
    for ordinal in range(int(sts["spec"]["replicas"])):
        template = sts["spec"]["template"]
        pod_name = f"{name}-{ordinal}"
        labels = {
            **(template["metadata"].get("labels") or {}),
            POD_INDEX_LABEL: str(ordinal),
            "statefulset.kubernetes.io/pod-name": pod_name,
        }
        out.append(
            {
                "metadata": {
                    "name": pod_name,
                    "namespace": sts["metadata"]["namespace"],
                    "labels": labels,
                },
                "spec": {
                    **template["spec"],
                    "hostname": pod_name,
                    "subdomain": sts["spec"]["serviceName"],
                },
            }
        )
    return out


def resolved_containers(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each container with its env resolved and command/args expanded."""
    out = []
    for container in pod["spec"].get("containers") or []:
        env = container_env(pod, container)
        out.append(
            {
                "name": container["name"],
                "env": env,
                "command": [expand(str(c), env) for c in container.get("command") or []],
                "args": [expand(str(a), env) for a in container.get("args") or []],
            }
        )
    return out


def selects(service: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    selector = service["spec"].get("selector") or {}
    labels = pod["metadata"].get("labels") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def resolve_address(
    address: str, pods: Sequence[Mapping[str, Any]], services: Sequence[Mapping[str, Any]]
) -> Mapping[str, Any]:
    """The pod that ``<pod>.<service>.<ns>.svc.<domain>`` names: the Service must exist, be
    headless, govern the pod (its subdomain) and select it."""
    parts = address.split(".")
    assert len(parts) >= 5 and parts[3] == "svc", f"not a pod DNS name: {address!r}"
    pod_name, svc_name, namespace = parts[0], parts[1], parts[2]
    svc = [
        s
        for s in services
        if s["metadata"]["name"] == svc_name and s["metadata"]["namespace"] == namespace
    ]
    assert svc, f"{address}: no Service {namespace}/{svc_name}"
    assert svc[0]["spec"].get("clusterIP") == "None", f"{svc_name} is not headless"
    match = [
        p
        for p in pods
        if p["metadata"]["name"] == pod_name and p["metadata"]["namespace"] == namespace
    ]
    assert match, f"{address}: no pod {namespace}/{pod_name}"
    pod = match[0]
    assert pod["spec"].get("subdomain") == svc_name, f"{pod_name} is not governed by {svc_name}"
    assert selects(svc[0], pod), f"{svc_name} does not select {pod_name}"
    return pod


def check_pipelines(objects: Sequence[Mapping[str, Any]], owner: str) -> dict[str, Any]:
    """Render every pod of the pipeline objects and check that each pipeline's ranks, leader,
    neighbours and layer partition agree; returns what it saw (for further asserts)."""
    services = [o for o in objects if o["kind"] == "Service"]
    sets = [o for o in objects if o["kind"] == "StatefulSet"]
    pods = [p for sts in sets for p in statefulset_pods(sts)]
    envs = {p["metadata"]["name"]: resolved_containers(p)[0]["env"] for p in pods}
    shard_count = len(sets)
    pipelines: dict[int, dict[int, Mapping[str, Any]]] = {}
    partitions = set()
    for pod in pods:
        env = envs[pod["metadata"]["name"]]
        r = int(env["GREENSHARD_PIPELINE_INDEX"])
        s = int(env["GREENSHARD_SHARD_INDEX"])
        assert pod["metadata"]["labels"][POD_INDEX_LABEL] == str(r)
        assert int(env["GREENSHARD_SHARD_COUNT"]) == shard_count
        assert env["VLLM_PP_LAYER_PARTITION"] == env["GREENSHARD_LAYER_PARTITION"]
        partitions.add(env["GREENSHARD_LAYER_PARTITION"])
        counts = [int(x) for x in env["GREENSHARD_LAYER_PARTITION"].split(",")]
        assert len(counts) == shard_count
        first, last = int(env["GREENSHARD_FIRST_LAYER"]), int(env["GREENSHARD_LAST_LAYER"])
        assert first == sum(counts[:s]) and last == first + counts[s] - 1
        leader = resolve_address(env["GREENSHARD_LEADER_ADDRESS"], pods, services)
        assert envs[leader["metadata"]["name"]]["GREENSHARD_SHARD_INDEX"] == "0"
        assert envs[leader["metadata"]["name"]]["GREENSHARD_PIPELINE_INDEX"] == str(r)
        for key, want in (("GREENSHARD_PREV_ADDRESS", s - 1), ("GREENSHARD_NEXT_ADDRESS", s + 1)):
            if 0 <= want < shard_count:
                other = resolve_address(env[key], pods, services)
                assert envs[other["metadata"]["name"]]["GREENSHARD_SHARD_INDEX"] == str(want)
                assert envs[other["metadata"]["name"]]["GREENSHARD_PIPELINE_INDEX"] == str(r)
            else:
                assert env[key] == "", f"{key} must be empty at the pipeline's end"
        assert s not in pipelines.setdefault(r, {}), f"two pods are stage {s} of pipeline {r}"
        pipelines[r][s] = pod
    assert len(partitions) == 1, f"pods disagree on the partition: {partitions}"
    replica_count = {int(envs[p["metadata"]["name"]]["GREENSHARD_PIPELINE_COUNT"]) for p in pods}
    assert replica_count == {len(pipelines)}
    for r, stages in pipelines.items():
        assert sorted(stages) == list(range(shard_count)), f"pipeline {r} lacks a stage"
    front = [s for s in services if s["metadata"]["name"] == owner]
    assert front, f"no front-door Service {owner}"
    fronted = [p for p in pods if selects(front[0], p)]
    assert {envs[p["metadata"]["name"]]["GREENSHARD_SHARD_INDEX"] for p in fronted} == {"0"}
    assert len(fronted) == len(pipelines)
    return {"pods": pods, "envs": envs, "pipelines": pipelines, "partition": partitions.pop()}
