"""Soak: many KWOK nodes and InferenceDeployments; converge, then a quiet window with no API
write and flat memory. Reduced here (500 nodes, 10 deployments, 30 s); ``make soak`` runs the
full numbers (5000 nodes, 200 deployments, 5 minutes) with GREENSHARD_CHAOS=full.

It starts its own cluster (state in hack/.state/soak) beside the session's, and stops it.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chaos_harness import (
    cluster_sh,
    infd_doc,
    profile_doc,
    record,
    rss_bytes,
    scale,
    wait_converged,
)
from conftest import ROOT, Cluster
from operator_harness import Operator

from faultproxy import FaultProxy

NODES, DEPLOYMENTS, QUIET = scale(500, 5000), scale(10, 200), scale(30, 300)


@pytest.fixture(scope="module")
def soak_cluster(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Cluster, Path]]:
    if not cluster.local:
        pytest.skip("the soak starts its own hack/cluster.sh control plane")
    state = Path(os.environ.get("GREENSHARD_SOAK_DIR", ROOT / "hack/.state/soak")).resolve()
    cluster_sh("down", state_dir=state)
    start = time.monotonic()
    kubeconfig = cluster_sh(
        "up",
        "--nodes",
        str(NODES),
        "--real-nodes-file",
        "none",
        "--timeout",
        "1200",
        state_dir=state,
        timeout=1800,
    ).strip()
    up_seconds = time.monotonic() - start
    soak = Cluster(
        kubeconfig, started=True, local=True, helm_home=tmp_path_factory.mktemp("soak-helm")
    )
    try:
        soak.kubectl("apply", "-f", str(ROOT / "crds"))
        for crd in ("inferencedeployments.greenshard.io", "gridprofiles.greenshard.io"):
            soak.wait(  # a CRD just created has no conditions yet: kubectl wait errors then
                lambda crd=crd: (
                    soak.kubectl(
                        "wait",
                        "--for=condition=Established",
                        f"crd/{crd}",
                        "--timeout=10s",
                        check=False,
                    ).returncode
                    == 0
                ),
                timeout=90,
                what=f"{crd} Established",
            )
        print(f"\n[soak] cluster with {NODES} nodes up in {up_seconds:.1f} s", flush=True)
        yield soak, state
    finally:
        subprocess.run(
            ["bash", str(ROOT / "hack/cluster.sh"), "down"],
            env=dict(os.environ, GREENSHARD_CLUSTER_DIR=str(state)),
            capture_output=True,
            check=False,
            timeout=300,
        )


def test_soak_converges_then_stays_quiet_with_flat_memory(
    soak_cluster: tuple[Cluster, Path], tmp_path: Path
) -> None:
    soak, state = soak_cluster
    namespace = "soak"
    soak.kubectl("create", "namespace", namespace)
    soak.wait(
        lambda: (
            soak.kubectl("get", "sa", "default", namespace=namespace, check=False).returncode == 0
        ),
        timeout=60,
    )
    soak.apply_yaml(yaml.safe_dump(profile_doc("soak")))
    names = [f"s{i}" for i in range(DEPLOYMENTS)]
    with FaultProxy.for_cluster(state) as proxy:
        kubeconfig = str(proxy.write_kubeconfig(tmp_path / "kubeconfig"))
        op = Operator(kubeconfig, tmp_path)
        op.start()
        try:
            assert op.proc is not None
            pid = op.proc.pid
            rss_idle = rss_bytes(pid)
            start = time.monotonic()
            docs = [infd_doc(n, namespace, "soak") for n in names]
            for i in range(0, len(docs), 50):
                soak.apply_yaml(yaml.safe_dump_all(docs[i : i + 50]))
            converge = wait_converged(soak, namespace, names, timeout=scale(300, 3000))
            writes = proxy.writes_since(start)
            time.sleep(10)  # the last status echoes settle
            quiet_from = time.monotonic()
            rss_start = rss_bytes(pid)
            samples = []
            while time.monotonic() - quiet_from < QUIET:
                time.sleep(min(10.0, QUIET / 6))
                samples.append(rss_bytes(pid))
            rss_end = rss_bytes(pid)
            quiet_writes = proxy.writes_since(quiet_from)
            quiet_calls = proxy.calls_since(quiet_from)
        finally:
            op.stop()
    row: dict[str, Any] = record(
        "soak",
        nodes=NODES,
        deployments=DEPLOYMENTS,
        converge_seconds=round(converge, 1),
        api_writes_to_converge=writes,
        quiet_seconds=QUIET,
        quiet_api_writes=quiet_writes,
        quiet_api_calls=quiet_calls,
        rss_idle_mib=round(rss_idle / 2**20, 1),
        rss_start_mib=round(rss_start / 2**20, 1),
        rss_end_mib=round(rss_end / 2**20, 1),
        rss_max_mib=round(max(samples) / 2**20, 1),
    )
    assert quiet_writes == 0, row
    # flat: the quiet window does not grow memory by more than a few MiB
    assert rss_end - rss_start < 16 * 2**20, row
