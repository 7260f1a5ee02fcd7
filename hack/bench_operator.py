#!/usr/bin/env python3
"""Operator benchmark on the local control plane (prints a table; not a test).

1. `kubectl apply` -> Ready for an 8-shard InferenceDeployment on N KWOK nodes (default 50),
   and the solver's share of it;
2. M InferenceDeployments on K nodes (default 20 on 500) converging without errors.

Usage: .venv/bin/python hack/bench_operator.py [--nodes 50] [--scale-nodes 500] [--scale 20]
It starts its own cluster in a separate state dir and stops it at the end.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from operator_harness import Operator  # noqa: E402


def sh(*argv: str, env: dict[str, str], input_text: str | None = None) -> str:
    return subprocess.run(
        argv, env=env, check=True, capture_output=True, text=True, input=input_text
    ).stdout


def kubectl(env: dict[str, str], *args: str, input_text: str | None = None) -> str:
    return sh("kubectl", *args, env=env, input_text=input_text)


def cluster_up(state: Path, nodes: int) -> dict[str, str]:
    env = dict(os.environ, GREENSHARD_CLUSTER_DIR=str(state))
    subprocess.run(
        ["bash", str(ROOT / "hack/cluster.sh"), "down"], env=env, check=False, capture_output=True
    )
    start = time.monotonic()
    subprocess.run(
        [
            "bash",
            str(ROOT / "hack/cluster.sh"),
            "up",
            "--real-nodes-file",
            "none",
            "--nodes",
            str(nodes),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    print(f"cluster up with {nodes} nodes: {time.monotonic() - start:.1f} s", flush=True)
    env["KUBECONFIG"] = str(state / "kubeconfig")
    kubectl(env, "apply", "-f", str(ROOT / "crds"))
    kubectl(env, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    kubectl(env, "apply", "-f", str(ROOT / "crds/samples/gridprofile.yaml"))
    return env


def sample(name: str, namespace: str) -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "crds/samples/llama-70b.yaml").read_text())
    doc = copy.deepcopy(doc)
    doc["metadata"] = {"name": name, "namespace": namespace}
    doc["spec"]["template"] = {
        "spec": {"containers": [{"name": "server", "image": "registry.k8s.io/pause:3.10"}]}
    }
    return doc


def ready(env: dict[str, str], namespace: str) -> tuple[int, int, list[str]]:
    items = json.loads(kubectl(env, "get", "infd", "-n", namespace, "-o", "json"))["items"]
    done, degraded = 0, []
    for item in items:
        conds = {c["type"]: c for c in (item.get("status") or {}).get("conditions") or []}
        if conds.get("Ready", {}).get("status") == "True":
            done += 1
        if conds.get("Degraded", {}).get("status") == "True":
            degraded.append(f"{item['metadata']['name']}: {conds['Degraded']['message']}")
    return done, len(items), degraded


def wait_all(env: dict[str, str], namespace: str, count: int, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        done, total, degraded = ready(env, namespace)
        if degraded:
            raise SystemExit(f"degraded: {degraded[:3]}")
        if total == count and done == count:
            return time.monotonic() - start
        time.sleep(0.2)
    raise SystemExit(f"timed out: {ready(env, namespace)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--scale-nodes", type=int, default=500)
    parser.add_argument("--scale", type=int, default=20)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="gs-bench-") as tmp:
        state = Path(tmp) / "cluster"
        try:
            for nodes, count in ((args.nodes, 1), (args.scale_nodes, args.scale)):
                env = cluster_up(state, nodes)
                op = Operator(env["KUBECONFIG"], Path(tmp))
                op.start()
                try:
                    kubectl(env, "create", "namespace", "bench")
                    start = time.monotonic()
                    docs = [sample(f"llama-{i}", "bench") for i in range(count)]
                    kubectl(env, "apply", "-f", "-", input_text=yaml.safe_dump_all(docs))
                    wait_all(env, "bench", count, 600)
                    elapsed = time.monotonic() - start  # from before the apply
                    items = json.loads(kubectl(env, "get", "infd", "-n", "bench", "-o", "json"))[
                        "items"
                    ]
                    solve = max(i["status"]["solver"]["wallSeconds"] for i in items)
                    errors = [
                        r for r in op.log_records() if r.get("level") in ("error", "critical")
                    ]
                    for record in errors[:5]:
                        print(f"  error log: {str(record.get('event'))[:300]}", flush=True)
                    rows.append((nodes, count, elapsed, solve, len(errors)))
                    print(
                        f"{count} x 8-shard on {nodes} nodes: Ready in {elapsed:.1f} s "
                        f"(max solver {solve:.2f} s, {len(errors)} error logs)",
                        flush=True,
                    )
                finally:
                    op.stop()
        finally:
            subprocess.run(
                ["bash", str(ROOT / "hack/cluster.sh"), "down"],
                check=False,
                env=dict(os.environ, GREENSHARD_CLUSTER_DIR=str(state)),
                capture_output=True,
            )
    print()
    print(
        f"{'nodes':>6} {'deployments':>12} {'apply->Ready s':>15} {'max solve s':>12} {'errors':>7}"
    )
    for nodes, count, elapsed, solve, errors in rows:
        print(f"{nodes:>6} {count:>12} {elapsed:>15.1f} {solve:>12.2f} {errors:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
