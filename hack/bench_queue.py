#!/usr/bin/env python3
"""Queue benchmark: what a controller pass costs on a converged cluster, without an API server
(prints a table; not a test).

N node facts in kopf's own index class (as hack/bench_observe.py builds them), D
InferenceDeployments (the llama-70b sample, mode Apply, every other one without its nodeSelector)
planned, applied and reported by the real :class:`greenshard.k8s.controller.Controller` against
an in-memory API (writes land in the caches, as watch events would), and a bound pod per shard
replica. Then passes are timed:

* BEFORE: every pass visits every deployment (what the controller did before its queue; here
  :meth:`Controller.mark_all` before each pass);
* AFTER, quiet: a pass with nothing marked and nothing due (what a converged operator runs at
  least once a second);
* AFTER, 100 nodes heartbeat: new, equal node facts for 100 nodes, then a pass;
* AFTER, one deployment's shard changed: the owned-object event marks it, then a pass.

Usage: .venv/bin/python hack/bench_queue.py [--nodes 5000] [--deployments 200] [--passes 5]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT / "hack"))
from bench_observe import NodeIndex, deployments  # noqa: E402

from greenshard import planner  # noqa: E402
from greenshard.k8s import controller as ctl  # noqa: E402
from greenshard.k8s import observe, shardsets, workloads  # noqa: E402


def merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            merge(target[k], v)
        else:
            target[k] = copy.deepcopy(v)


class Api:
    """Writes land in the caches at once; every object is Ready."""

    def __init__(self, caches: observe.Caches) -> None:
        self.caches = caches
        self.writes = 0

    async def patch_infd_status(self, namespace: str, name: str, status: Any) -> Any:
        self.writes += 1
        body = self.caches.infds[(namespace, name)][0]
        merge(body.setdefault("status", {}), status)
        return body

    async def read_object(self, kind: str, namespace: str, name: str) -> Any:
        return None

    def _store(self, manifest: dict[str, Any]) -> None:
        meta = manifest["metadata"]
        owner = (meta["namespace"], meta["labels"][workloads.DEPLOYMENT_LABEL])
        facts = shardsets.object_facts(
            {**manifest, "metadata": {**meta, "generation": 1, "resourceVersion": "1"}}
        )
        n = facts["replicas"]
        facts["status"] = {
            "observedGeneration": 1,
            "replicas": n,
            "readyReplicas": n,
            "availableReplicas": n,
            "updatedReplicas": n,
            "currentReplicas": n,
            "updateRevision": "rev-1",
            "currentRevision": "rev-1",
        }
        shards = self.caches.shards.setdefault(owner, [{}])[0]
        shards[f"{manifest['kind']}/{meta['name']}"] = facts

    async def create_object(self, manifest: dict[str, Any]) -> None:
        self.writes += 1
        self._store(manifest)

    async def replace_object(self, manifest: dict[str, Any], current: dict[str, Any]) -> None:
        self.writes += 1
        self._store(manifest)

    async def delete_object(self, kind: str, namespace: str, name: str) -> None:
        self.writes += 1

    async def delete_pod(self, namespace: str, name: str) -> None:
        self.writes += 1

    async def post_event(self, owner: Any, reason: str, message: str, kind: str = "") -> None:
        pass


class Pods:
    """(ns, owner) -> [pod facts], and every pod (the operator's _PodView)."""

    def __init__(self) -> None:
        self.by_owner: dict[Any, list[dict[str, Any]]] = {}

    def get(self, key: Any, default: Any = None) -> Any:
        return self.by_owner.get(key, default)

    def all(self) -> list[Any]:
        return [p for pods in self.by_owner.values() for p in pods]


class Solver:
    async def plan(self, problem: Any, config: Any) -> planner.Plan:
        return planner.plan(problem, config)


def bind_pods(controller: ctl.Controller, pods: Pods) -> None:
    """A Running, Ready pod per replica of every shard, on the nodes its plan packed."""
    for key, record in controller.records.items():
        if record.booking is None:
            continue
        rows = []
        for i, (node, gpus) in enumerate(sorted(record.booking.gpus.items())):
            rows.append(
                {
                    "namespace": key[0],
                    "name": f"{key[1]}-{i}",
                    "node": node,
                    "phase": "Running",
                    "owner": key[1],
                    "controller": "",
                    "shard": str(i),
                    "podIndex": "0",
                    "revision": "rev-1",
                    "ready": True,
                    "deleting": False,
                    "gpus": gpus,
                    "memoryBytes": 0.0,
                }
            )
        pods.by_owner[key] = rows


def timed(controller: ctl.Controller, before: Any, passes: int) -> tuple[float, float]:
    """(ms per pass, deployments visited per pass)."""
    times, visited = [], []
    for _ in range(passes):
        before()
        start = time.perf_counter()
        asyncio.run(controller.pass_all())
        times.append(time.perf_counter() - start)
        visited.append(len(controller.visited))
    return statistics.median(times) * 1e3, statistics.mean(visited)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--deployments", type=int, default=200)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    profile = yaml.safe_load((ROOT / "crds/samples/gridprofile.yaml").read_text())
    nodes = NodeIndex(args.nodes)
    infds = deployments(args.deployments)
    for store in infds.values():
        store[0]["spec"]["solver"] = {"algorithm": "exact"}
        store[0]["metadata"]["uid"] = f"uid-{store[0]['metadata']['name']}"
    pods = Pods()
    caches = observe.Caches(
        nodes=nodes.index, profiles={"default": [profile]}, infds=infds, shards={}, pods=pods
    )
    api = Api(caches)
    clock = [1000.0]
    controller = ctl.Controller(api, Solver(), hour=lambda: 12, clock=lambda: clock[0])
    controller.sweep_seconds = 1e9  # the sweep is timed as BEFORE
    controller.attach(caches)
    start = time.perf_counter()
    for _ in range(4):  # plan, apply, report; then the pods are bound and it settles
        controller.mark_all()
        asyncio.run(controller.pass_all())
        bind_pods(controller, pods)
        clock[0] += 11
    controller.mark_all()
    asyncio.run(controller.pass_all())
    clock[0] += 11
    asyncio.run(controller.pass_all())
    converge = time.perf_counter() - start
    writes = api.writes
    planned = sum(1 for r in controller.records.values() if r.plan is not None)
    names = list(nodes.index)

    def nothing() -> None:
        pass

    def heartbeat() -> None:
        for name in names[-100:]:
            nodes.put(name, copy.deepcopy(nodes.facts(name)))

    def shard_event() -> None:
        controller.mark(next(iter(infds)))

    rows = [
        ("BEFORE: every deployment", *timed(controller, controller.mark_all, args.passes)),
        ("AFTER: quiet", *timed(controller, nothing, args.passes)),
        ("AFTER: 100 nodes heartbeat", *timed(controller, heartbeat, args.passes)),
        ("AFTER: one deployment marked", *timed(controller, shard_event, args.passes)),
    ]
    quiet_writes = api.writes - writes
    load = os.getloadavg()[0]
    print(
        f"{args.nodes} nodes, {args.deployments} deployments ({planned} planned, "
        f"{len(pods.all())} pods) converged in {converge:.1f} s; load average {load:.1f}"
    )
    print(f"{'PASS':<30} {'MS/PASS':>10} {'VISITED':>8}")
    for scenario, ms, visited in rows:
        print(f"{scenario:<30} {ms:>10.1f} {visited:>8.0f}")
    print(f"API writes during the timed passes: {quiet_writes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
