#!/usr/bin/env python3
"""Observe benchmark: what one controller pass costs per InferenceDeployment at N nodes, without
an API server (prints a table; not a test).

Builds N node facts (the 12 shapes of hack/nodes.yaml, renamed) in a real kopf index (as the
operator's node_index holds them), D InferenceDeployments (the llama-70b sample; every other one
without its nodeSelector) and times :func:`greenshard.k8s.observe.observe` for all of them over
passes: the first (cold), repeated ones (nothing changed), ones after 100 nodes sent an event
that changes no fact (a heartbeat: new, equal facts objects, as the index handler makes them),
ones after a node's labels changed and ones after a node was deleted. Each row is
run twice: CACHED with the operator's ParsedNodes, UNCACHED with every node parsed and the
candidates fingerprinted again for every deployment (what observe did before ParsedNodes).

Usage: .venv/bin/python hack/bench_observe.py [--nodes 5000] [--deployments 50] [--passes 3]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))
from greenshard.k8s import observe  # noqa: E402


class NodeIndex:
    """kopf's own index (a private class: the bench only) fed as the node_index handler does."""

    def __init__(self, count: int) -> None:
        from kopf._core.engines import indexing  # noqa: PLC0415

        self.indexer = indexing.OperatorIndexer()
        self.index: Any = self.indexer.index
        shapes = yaml.safe_load((ROOT / "hack/nodes.yaml").read_text())["items"]
        for i in range(count):
            body = copy.deepcopy(shapes[i % len(shapes)])
            name = f"{body['metadata']['name']}-{i}"
            body["metadata"]["name"] = name
            body["metadata"]["labels"]["kubernetes.io/hostname"] = name
            body["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
            self.put(name, observe.node_facts(body))

    def put(self, name: str, facts: dict[str, Any]) -> None:
        self.indexer.replace((None, name), {name: facts})

    def delete(self, name: str) -> None:
        self.indexer.discard((None, name))

    def facts(self, name: str) -> dict[str, Any]:
        return dict(next(iter(self.index[name])))


class Uncached(observe.ParsedNodes):
    """Parses every node and fingerprints the candidates again on every call."""

    def current(self, index: Any) -> observe.NodeSet:
        return observe.ParsedNodes().current(index)


def deployments(count: int) -> dict[tuple[str, str], list[dict[str, Any]]]:
    sample = yaml.safe_load((ROOT / "crds/samples/llama-70b.yaml").read_text())
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for i in range(count):
        doc = copy.deepcopy(sample)
        doc["metadata"] = {"name": f"model-{i}", "namespace": "bench", "generation": 1}
        doc["spec"]["template"] = {"spec": {"containers": [{"name": "s", "image": "pause"}]}}
        if i % 2:
            doc["spec"].get("placement", {}).pop("nodeSelector", None)
        out[("bench", f"model-{i}")] = [doc]
    return out


def one_pass(caches: observe.Caches) -> list[float]:
    """Seconds per deployment for one pass over every deployment."""
    times = []
    for key, store in caches.infds.items():
        start = time.perf_counter()
        seen = observe.observe(key, store[0], caches, max_qubits=24)
        times.append(time.perf_counter() - start)
        assert isinstance(seen, observe.Observed), seen
    return times


def run(args: argparse.Namespace, parsed: observe.ParsedNodes) -> list[tuple[str, float, float]]:
    """(scenario, mean ms per deployment, ms per pass) per scenario, on a fresh cluster."""
    profile = yaml.safe_load((ROOT / "crds/samples/gridprofile.yaml").read_text())
    nodes = NodeIndex(args.nodes)
    caches = observe.Caches(
        nodes=nodes.index,
        profiles={"default": [profile]},
        infds=deployments(args.deployments),
        parsed_nodes=parsed,
    )
    names = list(nodes.index)

    def relabel() -> None:
        facts = copy.deepcopy(nodes.facts(names[0]))
        facts["metadata"]["labels"]["bench/touched"] = str(time.perf_counter())
        nodes.put(names[0], facts)

    def heartbeat() -> None:
        for name in names[-100:]:
            nodes.put(name, copy.deepcopy(nodes.facts(name)))  # new objects, equal facts

    def delete() -> None:
        nodes.delete(names.pop())

    rows = []
    for scenario, before, passes in (
        ("first pass", None, 1),
        ("nothing changed", None, args.passes),
        ("100 nodes heartbeat", heartbeat, args.passes),
        ("one node relabelled", relabel, args.passes),
        ("one node deleted", delete, args.passes),
    ):
        per_deployment: list[float] = []
        for _ in range(passes):
            if before is not None:
                before()
            per_deployment.extend(one_pass(caches))
        mean = statistics.mean(per_deployment)
        rows.append((scenario, mean * 1e3, mean * args.deployments * 1e3))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--deployments", type=int, default=50)
    parser.add_argument("--passes", type=int, default=3, help="repeated passes per scenario")
    parser.add_argument("--no-uncached", action="store_true", help="skip the UNCACHED rows")
    args = parser.parse_args()
    cached = observe.ParsedNodes()
    results = [("cached", run(args, cached))]
    if not args.no_uncached:
        results.append(("uncached", run(args, Uncached())))
    print(f"{args.nodes} nodes, {args.deployments} deployments; ms per deployment (ms per pass)")
    print(f"{'SCENARIO':<22}" + "".join(f" {mode.upper():>20}" for mode, _ in results))
    for i, (scenario, _, _) in enumerate(results[0][1]):
        cells = [f"{rows[i][1]:.2f} ({rows[i][2]:.0f})" for _, rows in results]
        print(f"{scenario:<22}" + "".join(f" {c:>20}" for c in cells))
    print(f"nodes parsed (cached): {cached.parses}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
