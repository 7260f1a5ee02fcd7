"""Fault injection against the real control plane: the operator converges through SIGKILLs,
kube-apiserver and etcd restarts, and injected API errors, with nothing duplicated, orphaned or
lost, and without hot loops (every API call is counted by tests/faultproxy.py).

Reduced numbers here (``make test``); ``make chaos`` runs the full ones (GREENSHARD_CHAOS=full).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chaos_harness import (
    cluster_sh,
    cluster_state_dir,
    infd_doc,
    profile_doc,
    record,
    scale,
    wait_converged,
)
from operator_harness import Operator

from faultproxy import FaultProxy, classify

WRITES = ("create", "update", "patch", "delete", "deletecollection")


@pytest.fixture(scope="module")
def proxy(crds: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultProxy]:
    if not crds.local:
        pytest.skip("restarts and the proxy need the local hack/cluster.sh control plane")
    with FaultProxy.for_cluster(cluster_state_dir()) as fp:
        fp.write_kubeconfig(tmp_path_factory.mktemp("proxy") / "kubeconfig")
        yield fp


@pytest.fixture
def proxy_kubeconfig(proxy: FaultProxy, tmp_path: Path) -> str:
    return str(proxy.write_kubeconfig(tmp_path / "kubeconfig"))


def apply(cluster: Any, *docs: dict[str, Any]) -> None:
    cluster.apply_yaml(yaml.safe_dump_all(list(docs)))


def test_classify_names_verbs_and_resources() -> None:
    assert classify("GET", "/api/v1/nodes", {"watch": "true"}) == ("watch", "nodes")
    assert classify("GET", "/api/v1/nodes", {}) == ("list", "nodes")
    assert classify(
        "PATCH", "/apis/greenshard.io/v1alpha1/namespaces/a/inferencedeployments/x/status", {}
    ) == ("patch", "inferencedeployments/status")
    assert classify("PUT", "/apis/apps/v1/namespaces/a/deployments/d", {}) == (
        "update",
        "deployments",
    )
    assert classify("POST", "/api/v1/namespaces/a/events", {}) == ("create", "events")
    assert classify("DELETE", "/apis/apps/v1/namespaces/a/deployments/d", {}) == (
        "delete",
        "deployments",
    )
    assert classify("GET", "/api/v1/namespaces/a", {}) == ("get", "namespaces")
    assert classify("GET", "/readyz", {}) == ("nonresource", "/readyz")


def test_proxy_injects_and_counts(
    cluster: Any, proxy: FaultProxy, proxy_kubeconfig: str, namespace: str
) -> None:
    def kubectl(*args: str) -> Any:
        return cluster.run(
            [str(cluster.kubectl_bin), "--kubeconfig", proxy_kubeconfig, "-n", namespace, *args],
            check=False,
        )

    before = proxy.snapshot()
    proxy.inject(409, verb="create", resource="configmaps")
    first = kubectl("create", "configmap", "c1", "--from-literal=a=b")
    assert first.returncode != 0
    assert "injected 409 for create configmaps" in first.stderr
    assert kubectl("create", "configmap", "c1", "--from-literal=a=b").returncode == 0
    proxy.inject(429, verb="get", resource="configmaps", retry_after=1)
    start = time.monotonic()
    got = kubectl("get", "configmap", "c1", "-o", "name")  # kubectl honours Retry-After
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == "configmap/c1"
    assert time.monotonic() - start >= 1.0
    counts = proxy.snapshot() - before
    assert counts[("create", "configmaps")] == 2
    assert counts[("get", "configmaps")] == 2


# ---------------------------------------------------------------------------- scenarios


def test_operator_sigkills_converge_without_duplicates_or_orphans(
    cluster: Any, proxy: FaultProxy, proxy_kubeconfig: str, namespace: str, tmp_path: Path
) -> None:
    kills, count = scale(10, 50), scale(4, 10)
    rng = random.Random(17)
    apply(cluster, profile_doc("chaos-kill"))
    names = [f"k{i}" for i in range(count)]
    apply(cluster, *(infd_doc(n, namespace, "chaos-kill") for n in names))
    op = Operator(proxy_kubeconfig, tmp_path)
    killed_at: list[float] = []
    start_calls = time.monotonic()
    try:
        for i in range(kills):
            # keep reconciles happening: a shard-count or replica change before each start
            target = names[i % count]
            shards = (8, 6, 4)[(i // count) % 3]
            apply(
                cluster,
                infd_doc(target, namespace, "chaos-kill", shards=shards, replicas=1 + i % 2),
            )
            op.start()
            delay = rng.uniform(0.0, 3.0)
            time.sleep(delay)
            op.stop(kill=True)
            killed_at.append(round(delay, 2))
        op.start()
        converge = wait_converged(cluster, namespace, names, timeout=scale(300, 900))
        writes = proxy.writes_since(start_calls)
        time.sleep(5)
        quiet_from = time.monotonic()
        time.sleep(scale(15, 60))
        quiet_writes = proxy.writes_since(quiet_from)
        rows = cluster.items("statefulsets", "-l", "greenshard.io/deployment", namespace=namespace)
    finally:
        op.stop()
    record(
        "operator-sigkill",
        kills=kills,
        deployments=count,
        converge_seconds=round(converge, 1),
        api_writes_total=writes,
        quiet_seconds=scale(15, 60),
        quiet_writes=quiet_writes,
        shard_statefulsets=len(rows),
    )
    assert quiet_writes == 0


def test_apiserver_and_etcd_restarts_lose_nothing(
    cluster: Any, proxy: FaultProxy, proxy_kubeconfig: str, namespace: str, tmp_path: Path
) -> None:
    apiserver_restarts, etcd_restarts = scale(3, 10), scale(1, 3)
    apply(cluster, profile_doc("chaos-restart"))
    names = [f"r{i}" for i in range(3)]
    apply(cluster, *(infd_doc(n, namespace, "chaos-restart") for n in names))
    op = Operator(proxy_kubeconfig, tmp_path, {"GREENSHARD_API_TIMEOUT": "10"})
    op.start()
    plan = ["kube-apiserver"] * apiserver_restarts + ["etcd"] * etcd_restarts
    rng = random.Random(11)
    rng.shuffle(plan)
    downtime = []
    try:
        wait_converged(cluster, namespace, names, timeout=180)
        start = time.monotonic()
        for i, component in enumerate(plan):
            # a change in flight when the component goes away
            target = names[i % len(names)]
            apply(cluster, infd_doc(target, namespace, "chaos-restart", shards=(6, 8)[i % 2]))
            time.sleep(rng.uniform(0.0, 1.5))
            t0 = time.monotonic()
            cluster_sh("restart", component, *(["--kill"] if i % 2 else []))
            downtime.append(round(time.monotonic() - t0, 1))
        converge = wait_converged(cluster, namespace, names, timeout=scale(240, 600))
        writes = proxy.writes_since(start)
        assert op.proc is not None
        assert op.proc.poll() is None, "the operator died: " + op.log_tail()
    finally:
        op.stop()
    record(
        "apiserver-etcd-restarts",
        apiserver_restarts=apiserver_restarts,
        etcd_restarts=etcd_restarts,
        restart_seconds=downtime,
        converge_seconds_after_last=round(converge, 1),
        api_writes_total=writes,
    )


def test_injected_api_errors_converge_without_hot_loops(
    cluster: Any, proxy: FaultProxy, proxy_kubeconfig: str, namespace: str, tmp_path: Path
) -> None:
    apply(cluster, profile_doc("chaos-faults"))
    op = Operator(proxy_kubeconfig, tmp_path, {"GREENSHARD_API_TIMEOUT": "5"})
    op.start()
    steps: list[dict[str, Any]] = []
    try:
        apply(cluster, infd_doc("f0", namespace, "chaos-faults"))
        wait_converged(cluster, namespace, ["f0"], timeout=120)

        def step(name: str, arm: Any, change: dict[str, Any], names: list[str]) -> None:
            fault = arm()
            t0 = time.monotonic()
            apply(cluster, change)
            cluster.wait(lambda: fault.fired, timeout=60, what=f"the {name} fault to fire")
            seconds = wait_converged(cluster, namespace, names, timeout=120)
            calls = proxy.calls_since(t0)
            writes = proxy.writes_since(t0)
            steps.append(
                {
                    "fault": name,
                    "converge_seconds": round(seconds, 1),
                    "api_calls": calls,
                    "api_writes": writes,
                }
            )

        step(
            "500 on create statefulsets",
            lambda: proxy.inject(500, verb="create", resource="statefulsets"),
            infd_doc("f1", namespace, "chaos-faults"),
            ["f0", "f1"],
        )
        step(
            "409 on update statefulsets",
            lambda: proxy.inject(409, verb="update", resource="statefulsets"),
            infd_doc("f1", namespace, "chaos-faults", replicas=2),
            ["f0", "f1"],
        )
        step(
            "429 Retry-After 2 on patch status",
            lambda: proxy.inject(
                429, verb="patch", resource="inferencedeployments/status", retry_after=2
            ),
            infd_doc("f0", namespace, "chaos-faults", shards=6),
            ["f0", "f1"],
        )
        step(
            "timeout on patch status",
            lambda: proxy.inject(
                kind="timeout", verb="patch", resource="inferencedeployments/status", hold=120
            ),
            infd_doc("f0", namespace, "chaos-faults", shards=8),
            ["f0", "f1"],
        )

        def expire() -> Any:
            fault = proxy.inject(kind="expire", verb="watch", resource="inferencedeployments")
            proxy.cut_watches("inferencedeployments")
            return fault

        step(
            "410 on watch inferencedeployments",
            expire,
            infd_doc("f1", namespace, "chaos-faults", shards=4),
            ["f0", "f1"],
        )

        def watch_timeout() -> Any:
            fault = proxy.inject(kind="timeout", verb="watch", resource="statefulsets", hold=10)
            proxy.cut_watches("statefulsets")
            return fault

        step(
            "timeout on watch statefulsets",
            watch_timeout,
            infd_doc("f1", namespace, "chaos-faults", shards=8),
            ["f0", "f1"],
        )

        time.sleep(5)
        quiet_from = time.monotonic()
        time.sleep(scale(15, 60))
        quiet = proxy.snapshot()
        quiet_calls = proxy.calls_since(quiet_from)
        quiet_writes = proxy.writes_since(quiet_from)
    finally:
        op.stop()
    record(
        "injected-errors",
        steps=steps,
        quiet_seconds=scale(15, 60),
        quiet_api_calls=quiet_calls,
        quiet_api_writes=quiet_writes,
        writes_by_resource_total={
            f"{v} {r}": n for (v, r), n in sorted(quiet.items()) if v in WRITES
        },
    )
    assert quiet_writes == 0
    for row in steps:
        # a handful of writes per change, not one per second for the whole step
        assert row["api_writes"] <= 60, row


def test_a_slow_plan_is_bounded_and_others_unaffected(
    cluster: Any, proxy: FaultProxy, proxy_kubeconfig: str, namespace: str, tmp_path: Path
) -> None:
    """16 shards x 8 memory-bound pools (its exact solve and tie pass take minutes here) with a
    5 s solver bound: planned in under 10 s, and a deployment behind it still converges."""
    import numpy as np

    import factories

    deployment, nodes, profile = factories.random_documents(
        np.random.default_rng(1), 16, 8, regions=3, hops=2, tight=True
    )
    node_docs = []
    for node in nodes:
        meta = node["metadata"]
        labels = {**meta["labels"], "chaos.greenshard.io/hard": "true"}
        node_docs.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": f"hard-{meta['name']}",
                    "labels": labels,
                    "annotations": {"kwok.x-k8s.io/node": "fake"},
                },
                "status": {"allocatable": {**node["status"]["allocatable"], "pods": "110"}},
            }
        )
    names = [d["metadata"]["name"] for d in node_docs]
    hard = infd_doc("hard", namespace, "chaos-hard", shards=16, mode="DryRun")
    hard["spec"]["model"] = {**hard["spec"]["model"], **deployment["spec"]["model"]}
    hard["spec"]["workload"] = deployment["spec"]["workload"]
    hard["spec"]["placement"] = {
        "nodeSelector": {"matchLabels": {"chaos.greenshard.io/hard": "true"}},
        "maxRegionHops": 2,
    }
    hard["spec"]["solver"] = {"algorithm": "exact"}
    hard_profile = {
        "apiVersion": "greenshard.io/v1alpha1",
        "kind": "GridProfile",
        "metadata": {"name": "chaos-hard"},
        "spec": profile["spec"],
    }
    apply(cluster, *node_docs)
    op = Operator(proxy_kubeconfig, tmp_path, {"GREENSHARD_SOLVER_TIMEOUT": "5"})
    try:
        apply(cluster, hard_profile, profile_doc("chaos-slow"))
        cluster.wait(
            lambda: all(
                any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in (n.get("status") or {}).get("conditions") or []
                )
                for n in cluster.items("nodes", "-l", "chaos.greenshard.io/hard=true")
            ),
            timeout=60,
            what="the hard nodes Ready",
        )
        op.start()
        apply(cluster, infd_doc("warm", namespace, "chaos-slow"))
        wait_converged(cluster, namespace, ["warm"], timeout=180)  # the solver child is warm
        start = time.monotonic()
        apply(cluster, hard, infd_doc("after", namespace, "chaos-slow"))

        def hard_planned() -> dict[str, Any] | None:
            body: dict[str, Any] = cluster.get_json("infd", "hard", namespace=namespace)
            return body if (body.get("status") or {}).get("solver") else None

        body = cluster.wait(hard_planned, timeout=60, interval=0.2, what="the hard plan")
        hard_seconds = time.monotonic() - start
        after_seconds = wait_converged(cluster, namespace, ["warm", "after"], timeout=120)
    finally:
        op.stop()
        cluster.kubectl("delete", "node", *names, "--ignore-not-found", check=False)
        cluster.kubectl("delete", "gridprofile", "chaos-hard", "--ignore-not-found", check=False)
    solver = body["status"]["solver"]
    record(
        "bounded-solve",
        shards=16,
        pools=8,
        bound_seconds=5,
        planned_seconds=round(hard_seconds, 1),
        other_converged_seconds=round(after_seconds + hard_seconds, 1),
        method=solver.get("method"),
        fallback=solver.get("fallbackReason"),
    )
    assert hard_seconds < 10.0
    assert "5 s solver time bound" in solver["fallbackReason"]
    assert len(body["status"]["placement"]) == 16
