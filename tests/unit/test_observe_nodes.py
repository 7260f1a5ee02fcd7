"""Parsed nodes cached with the index (#17): each node is parsed once per change, not once per
InferenceDeployment per pass, and what observe returns is what parsing every node again gives."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from test_controller import KEY, ROOT, infd, load

from greenshard.errors import InputError
from greenshard.k8s import observe, resources
from greenshard.k8s.loop import first

H100 = "eu-north-1-h100-0"  # a node the sample's nodeSelector (H100, eu-north-1/us-east-1) picks


class Store:
    """What a kopf index holds per key: an iterable of values, not a mapping."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __iter__(self) -> Iterator[Any]:
        return iter([self.value])


def facts_by_name() -> dict[str, dict[str, Any]]:
    return {
        n["metadata"]["name"]: observe.node_facts(n) for n in load("examples/nodes.yaml")["items"]
    }


def uncached(index: Any) -> tuple[Any, ...]:
    """What observe did before the cache: parse every node of the index."""
    return tuple(resources.node_info(f) for f in (first(v) for v in index.values()) if f)


def relabelled(facts: dict[str, Any], **labels: str) -> dict[str, Any]:
    """A new facts object, as the kopf index handler makes one per event."""
    changed = copy.deepcopy(facts)
    changed["metadata"]["labels"].update(labels)
    return changed


def renamed(facts: dict[str, Any], name: str) -> dict[str, Any]:
    copied = copy.deepcopy(facts)
    copied["metadata"]["name"] = name
    return copied


def caches(nodes: Any) -> observe.Caches:
    return observe.Caches(
        nodes=nodes, profiles={"default": load("crds/samples/gridprofile.yaml")}, infds={}
    )


def seen(c: observe.Caches, body: dict[str, Any] | None = None) -> observe.Observed:
    result = observe.observe(KEY, body or infd(), c, max_qubits=24)
    assert isinstance(result, observe.Observed), result
    return result


@pytest.mark.parametrize("wrap", [lambda f: f, Store], ids=["plain", "kopf-store"])
def test_a_relabelled_node_is_seen_at_once(wrap: Any) -> None:
    """A stale cache fails this: the node's new labels reach observe, and the inputs change."""
    nodes = {name: wrap(f) for name, f in facts_by_name().items()}
    c = caches(nodes)
    before = seen(c)
    node = next(n for n in before.nodes if n.name == H100)
    assert node.labels["topology.kubernetes.io/region"] == "eu-north-1"

    # Moved out of the selector's regions: no longer a candidate.
    nodes[H100] = wrap(
        relabelled(first(nodes[H100]), **{"topology.kubernetes.io/region": "ap-southeast-2"})
    )
    after = seen(c)
    node = next(n for n in after.nodes if n.name == H100)
    assert node.labels["topology.kubernetes.io/region"] == "ap-southeast-2"
    assert after.nodes == uncached(nodes)
    assert after.inputs != before.inputs

    # And back: the inputs are those of the first observation again.
    nodes[H100] = wrap(
        relabelled(first(nodes[H100]), **{"topology.kubernetes.io/region": "eu-north-1"})
    )
    assert seen(c).inputs == before.inputs


def test_each_change_is_parsed_once_for_all_deployments() -> None:
    nodes = facts_by_name()
    c = caches(nodes)
    bodies = [infd(), infd(placement={}), infd(replicas=2)]
    first_pass = [seen(c, b) for b in bodies]
    assert c.parsed_nodes.parses == len(nodes)
    assert first_pass[0].nodes is first_pass[1].nodes is first_pass[2].nodes  # one tuple
    for _ in range(3):  # passes with nothing changed: nothing parsed, the same inputs
        assert [seen(c, b).inputs for b in bodies] == [o.inputs for o in first_pass]
    assert c.parsed_nodes.parses == len(nodes)

    nodes[H100] = relabelled(nodes[H100], team="a")
    for b in bodies:
        seen(c, b)
    assert c.parsed_nodes.parses == len(nodes) + 1  # that node, once


def test_a_heartbeat_parses_nothing_and_keeps_the_digests() -> None:
    """Every Node event makes new facts; equal ones are not parsed and change nothing."""
    nodes = facts_by_name()
    c = caches(nodes)
    before = c.parsed_nodes.current(nodes)
    digest = before.candidates_digest(seen(c).deployment.selector)
    for name in list(nodes):
        nodes[name] = copy.deepcopy(nodes[name])
    after = c.parsed_nodes.current(nodes)
    assert after is before
    assert c.parsed_nodes.parses == len(nodes)
    assert after.candidates_digest(seen(c).deployment.selector) == digest


def test_cached_results_equal_parsing_every_node_again() -> None:
    """Through adds, deletes, re-adds (another position), relabels, cordons and heartbeats,
    the cached nodes and digests equal those of a cache that has seen nothing."""
    base = facts_by_name()
    nodes: dict[str, Any] = {}
    c = caches(nodes)
    selectors = [seen(caches(base), b).deployment.selector for b in (infd(), infd(placement={}))]
    names = sorted(base)
    steps: list[Any] = [
        lambda: nodes.update(base),
        lambda: nodes.pop(names[0]),
        lambda: nodes.update({names[0]: base[names[0]]}),  # the same object, now last
        lambda: nodes.update({H100: relabelled(nodes[H100], team="b")}),
        lambda: nodes.update({names[3]: {**nodes[names[3]], "spec": {"unschedulable": True}}}),
        lambda: nodes.update({n: copy.deepcopy(f) for n, f in nodes.items()}),
        lambda: nodes.update({"extra": renamed(base[H100], "extra")}),
        lambda: nodes.update({"extra": {**nodes["extra"], "metadata": {"name": "extra"}}}),
        nodes.clear,
    ]
    for step in steps:
        step()
        cached = c.parsed_nodes.current(nodes)
        fresh = observe.ParsedNodes().current(nodes)
        assert cached.nodes == fresh.nodes == uncached(nodes)
        assert [n.name for n in cached.nodes] == list(nodes)  # index order
        for selector in selectors:
            assert cached.candidates_digest(selector) == fresh.candidates_digest(selector)


def test_a_node_that_cannot_be_parsed_raises_every_time_until_fixed() -> None:
    nodes = facts_by_name()
    c = caches(nodes)
    seen(c)
    good = nodes[H100]
    bad = copy.deepcopy(good)
    bad["status"]["allocatable"]["memory"] = "lots"
    nodes[H100] = bad
    for _ in range(2):  # not cached as parsed
        with pytest.raises(InputError, match="allocatable.memory"):
            seen(c)
    nodes[H100] = relabelled(good, fixed="1")
    assert seen(c).nodes == uncached(nodes)


def test_the_candidates_digest_covers_what_planning_reads() -> None:
    nodes = facts_by_name()
    c = caches(nodes)
    selector = seen(c).deployment.selector
    digest = c.parsed_nodes.current(nodes).candidates_digest(selector)

    def changed(name: str, edit: Any) -> str:
        facts = copy.deepcopy(base[name])
        edit(facts)
        return observe.ParsedNodes().current({**base, name: facts}).candidates_digest(selector)

    base = dict(nodes)
    assert changed(H100, lambda f: f["metadata"]["labels"].update(x="1")) != digest
    assert changed(H100, lambda f: f["status"]["conditions"][0].update(status="False")) != digest
    assert changed(H100, lambda f: f["status"]["allocatable"].update({"nvidia.com/gpu": "1"})) != (
        digest
    )
    assert changed(H100, lambda f: f["spec"].update(unschedulable=True)) != digest
    # A node the selector does not pick changes nothing.
    other = next(n for n in nodes if "l4" in n)
    assert changed(other, lambda f: f["metadata"]["labels"].update(x="1")) == digest


def test_bench_observe_runs_small() -> None:
    """hack/bench_observe.py (make bench-observe) on a tiny cluster: it feeds kopf's own index
    class, so a kopf upgrade that moves it fails here rather than in the benchmark."""
    res = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "bench_observe.py"), "--nodes", "40",
         "--deployments", "3", "--passes", "1"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "40 nodes, 3 deployments; ms per deployment (ms per pass)"
    assert lines[1].split() == ["SCENARIO", "CACHED", "UNCACHED"]
    assert len(lines) == 2 + 5 + 1
    assert lines[-1].startswith("nodes parsed (cached): 41")  # 40, then the relabelled one
