"""What the fault-injection scenarios share: scale, InferenceDeployments, convergence, results.

``GREENSHARD_CHAOS=full`` (``make chaos`` / ``make soak``) runs the full numbers; without it the
scenarios run reduced, bounded versions that ``make test`` can afford. Every scenario appends one
JSON line of numbers to ``hack/.state/chaos/results.jsonl`` (``make chaos`` prints them).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml
from operator_harness import ROOT

FULL = os.environ.get("GREENSHARD_CHAOS", "") == "full"
RESULTS = ROOT / "hack" / ".state" / "chaos" / "results.jsonl"
SAMPLE = yaml.safe_load((ROOT / "crds/samples/llama-70b.yaml").read_text())
PROFILE = yaml.safe_load((ROOT / "crds/samples/gridprofile.yaml").read_text())
LABEL = "greenshard.io/deployment"


def scale(reduced: int, full: int) -> int:
    return full if FULL else reduced


def cluster_state_dir() -> Path:
    return Path(os.environ.get("GREENSHARD_CLUSTER_DIR", ROOT / "hack/.state/cluster")).resolve()


def cluster_sh(*args: str, state_dir: Path | None = None, timeout: float = 300) -> str:
    env = dict(os.environ)
    if state_dir is not None:
        env["GREENSHARD_CLUSTER_DIR"] = str(state_dir)
    proc = subprocess.run(
        ["bash", str(ROOT / "hack/cluster.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"hack/cluster.sh {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}"
        )
    return proc.stdout


def record(scenario: str, **numbers: Any) -> dict[str, Any]:
    row = {
        "scenario": scenario,
        "full": FULL,
        "at": time.strftime("%FT%TZ", time.gmtime()),
        **numbers,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, sort_keys=True) + "\n")
    print(f"\n[chaos] {json.dumps(row, sort_keys=True)}", flush=True)
    return row


def profile_doc(name: str) -> dict[str, Any]:
    doc = copy.deepcopy(PROFILE)
    doc["metadata"] = {"name": name}
    return doc


def infd_doc(
    name: str, namespace: str, profile: str, shards: int = 8, replicas: int = 1, **spec: Any
) -> dict[str, Any]:
    doc = copy.deepcopy(SAMPLE)
    doc["metadata"] = {"name": name, "namespace": namespace}
    doc["spec"]["template"] = {
        "spec": {"containers": [{"name": "server", "image": "registry.k8s.io/pause:3.10"}]}
    }
    doc["spec"]["carbon"] = {**doc["spec"].get("carbon", {}), "gridProfile": profile}
    doc["spec"]["sharding"] = {"shards": shards, "replicas": replicas}
    # A 1B model on the CPU-only nodes: the scenarios' many deployments all fit at once (the
    # shared e2e cluster has 32 GPUs; whole-GPU packing would leave some Infeasible).
    doc["spec"]["model"] = {**doc["spec"]["model"], "parametersBillions": 1}
    doc["spec"]["placement"] = {
        **doc["spec"].get("placement", {}),
        "nodeSelector": {
            "matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "DoesNotExist"}]
        },
    }
    for key, value in spec.items():
        doc["spec"][key] = value
    return doc


def _ready(body: dict[str, Any]) -> bool:
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def convergence(cluster: Any, namespace: str, names: list[str]) -> list[str]:
    """What still keeps NAMES from having converged ([] when they have): every
    InferenceDeployment observed at its generation, Ready, one placement row per shard; exactly
    its shard StatefulSets, each controlled by it with every replica ready; no per-shard
    Deployment of the previous version left, and nothing of an unknown owner."""
    infds = {i["metadata"]["name"]: i for i in cluster.items("infd", namespace=namespace)}
    sets = cluster.items("statefulsets", "-l", LABEL, namespace=namespace)
    problems = [
        f"per-shard Deployment {d['metadata']['name']} left"
        for d in cluster.items("deployments", "-l", LABEL, namespace=namespace)
    ]
    by_owner: dict[str, list[dict[str, Any]]] = {}
    for sts in sets:
        by_owner.setdefault(sts["metadata"]["labels"][LABEL], []).append(sts)
    for owner in sorted(set(by_owner) - set(names)):
        problems.append(
            f"orphaned StatefulSets of {owner}: {[d['metadata']['name'] for d in by_owner[owner]]}"
        )
    for name in names:
        body = infds.get(name)
        if body is None:
            problems.append(f"{name}: InferenceDeployment lost")
            continue
        meta, status = body["metadata"], body.get("status") or {}
        shards = body["spec"]["sharding"]["shards"]
        if status.get("observedGeneration") != meta.get("generation"):
            problems.append(
                f"{name}: observed {status.get('observedGeneration')} of "
                f"generation {meta.get('generation')}"
            )
        if not _ready(body):
            problems.append(f"{name}: not Ready")
        if len(status.get("placement") or []) != shards:
            problems.append(
                f"{name}: {len(status.get('placement') or [])} placement rows for {shards} shards"
            )
        want = {f"{name}-shard-{i}" for i in range(shards)}
        have = by_owner.get(name, [])
        names_have = [d["metadata"]["name"] for d in have]
        if sorted(names_have) != sorted(want):
            problems.append(f"{name}: shard StatefulSets {sorted(names_have)}, want {sorted(want)}")
        for sts in have:
            refs = [r for r in sts["metadata"].get("ownerReferences") or [] if r.get("controller")]
            if [r.get("uid") for r in refs] != [meta["uid"]]:
                problems.append(f"{sts['metadata']['name']}: not controlled by {name}")
            wanted = (sts.get("spec") or {}).get("replicas", 1)
            ready = (sts.get("status") or {}).get("readyReplicas", 0)
            if ready != wanted:
                problems.append(f"{sts['metadata']['name']}: {ready} of {wanted} replicas ready")
    return problems


def wait_converged(cluster: Any, namespace: str, names: list[str], timeout: float) -> float:
    """Seconds until NAMES converged; raises with what is missing on timeout."""
    start = time.monotonic()
    problems: list[str] = ["not checked"]
    while time.monotonic() - start < timeout:
        try:
            problems = convergence(cluster, namespace, names)
        except Exception as exc:  # the API server may be restarting
            problems = [f"{type(exc).__name__}: {exc}"]
        if not problems:
            return time.monotonic() - start
        time.sleep(0.5)
    raise AssertionError(f"not converged after {timeout:.0f} s: {problems[:8]}")


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0
