"""The scheduler extender with the real kube-scheduler.

This module starts its own local control plane (state dir ``$GREENSHARD_CLUSTER_DIR-extender``)
with ``hack/cluster.sh up --scheduler-config``, the config being ``hack/scheduler-config.yaml``
pointed at a free loopback port, and runs ``greenshard extender`` there as a local process with
a GridProfile of flat intensities (so the outcome does not depend on the hour):

    eu-north-1 30 gCO2e/kWh x PUE 1.2, us-east-1 400 x 1.1, ap-southeast-2 700 x 1.3
    L4 1.5 J/TFLOP < H100 1.75 < A100 3.2 < cpu 60

so the greenest GPU nodes are eu-north-1-l4-0 (4 GPUs), then eu-north-1-h100-0 (8 GPUs).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import HACK, ROOT, Cluster

PROFILE = "e2e-extender"
GRID_PROFILE = f"""
apiVersion: greenshard.io/v1alpha1
kind: GridProfile
metadata: {{name: {PROFILE}}}
spec:
  regions:
    eu-north-1: {{intensity: 30, pue: 1.2}}
    us-east-1: {{intensity: 400, pue: 1.1}}
    ap-southeast-2: {{intensity: 700, pue: 1.3}}
  accelerators:
    NVIDIA-H100-80GB-HBM3: {{joulesPerTeraflop: 1.75}}
    NVIDIA-A100-SXM4-40GB: {{joulesPerTeraflop: 3.2}}
    NVIDIA-L4: {{joulesPerTeraflop: 1.5}}
    cpu: {{joulesPerTeraflop: 60}}
  links: {{samePoolJoulesPerByte: 1.0e-9, sameRegionJoulesPerByte: 2.0e-7,
          crossRegionJoulesPerByte: 2.0e-6}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ExtenderProcess:
    """`greenshard extender` as a local process."""

    def __init__(self, kubeconfig: str, port: int, log_path: Path) -> None:
        self.kubeconfig = kubeconfig
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [
            sys.executable,
            "-c",
            "import sys; from greenshard.cli import main; sys.exit(main())",
            "extender",
            "--address",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--grid-profile",
            PROFILE,
            "--kubeconfig",
            self.kubeconfig,
            "--log-format",
            "json",
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
            )
        Cluster.wait(
            self.ready, timeout=60, what=f"the extender on :{self.port} (log {self.log_path})"
        )

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as err:
            with err:
                return err.code, err.read()

    def ready(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log_path.read_text()
        status, _ = self.get("/readyz")
        health = json.loads(self.get("/healthz")[1])
        return status == 200 and health["gridProfileLoaded"] and health["nodes"] == 15

    def metric(self, name: str, **labels: str) -> float:
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in self.get("/metrics")[1].decode().splitlines():
            if line.startswith(f"{name}{{") and all(
                f'{k}="{v}"' in line for k, v in labels.items()
            ):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no sample {name}{{{want}}}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, ExtenderProcess]]:
    if os.environ.get("GREENSHARD_E2E_KUBECONFIG"):
        pytest.skip("needs the local control plane: kube-scheduler is started with the extender")
    tmp = tmp_path_factory.mktemp("extender")
    base = os.environ.get("GREENSHARD_CLUSTER_DIR") or str(HACK / ".state" / "cluster")
    env = dict(os.environ, GREENSHARD_CLUSTER_DIR=f"{base.rstrip('/')}-extender")
    port = free_port()
    config = tmp / "scheduler-config.yaml"
    text = (HACK / "scheduler-config.yaml").read_text()
    assert "http://127.0.0.1:8888" in text
    config.write_text(text.replace("http://127.0.0.1:8888", f"http://127.0.0.1:{port}"))
    subprocess.run(["bash", str(HACK / "build-tools.sh")], cwd=ROOT, check=True, env=env)
    cluster_sh = ["bash", str(HACK / "cluster.sh")]
    subprocess.run(["bash", str(HACK / "cluster.sh"), "down"], cwd=ROOT, env=env, check=False)
    up = subprocess.run(
        [*cluster_sh, "up", "--real-nodes-file", "none", "--scheduler-config", str(config)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert up.returncode == 0, up.stderr
    assert "kube-scheduler configured from" in up.stderr
    kubeconfig = up.stdout.strip().splitlines()[-1]
    extender: ExtenderProcess | None = None
    try:
        cluster = Cluster(kubeconfig, started=True, local=True, helm_home=tmp / "helm")
        cluster.kubectl("apply", "-f", str(ROOT / "crds" / "greenshard.io_gridprofiles.yaml"))
        cluster.kubectl(
            "wait", "--for=condition=Established", "crd/gridprofiles.greenshard.io", "--timeout=60s"
        )
        cluster.apply_yaml(GRID_PROFILE)
        extender = ExtenderProcess(kubeconfig, port, tmp / "extender.log")
        extender.start()
        yield cluster, extender
    finally:
        if extender is not None:
            extender.stop()
        if os.environ.get("GREENSHARD_E2E_KEEP_CLUSTER", "") in ("", "0"):
            subprocess.run([*cluster_sh, "down"], cwd=ROOT, env=env, check=False, timeout=120)


def make_namespace(cluster: Cluster, stem: str) -> str:
    name = f"e2e-ext-{stem}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    cluster.wait(
        lambda: (
            cluster.kubectl("get", "sa", "default", namespace=name, check=False).returncode == 0
        ),
        timeout=60,
        what=f"ServiceAccount default in {name}",
    )
    return name


def pod(
    name: str,
    *,
    carbon_aware: bool,
    gpus: int = 0,
    max_intensity: str | None = None,
    app: str = "extender-e2e",
) -> dict[str, Any]:
    labels = {"app": app} | ({"greenshard.io/carbon-aware": "true"} if carbon_aware else {})
    annotations = {"greenshard.io/max-intensity": max_intensity} if max_intensity else {}
    resources: dict[str, Any] = {"requests": {"cpu": "100m", "memory": "64Mi"}}
    if gpus:
        resources["requests"]["nvidia.com/gpu"] = str(gpus)
        resources["limits"] = {"nvidia.com/gpu": str(gpus)}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {
            "containers": [
                {"name": "main", "image": "registry.k8s.io/pause:3.10", "resources": resources}
            ]
        },
    }


def bound_nodes(cluster: Cluster, namespace: str, count: int) -> list[str]:
    def nodes() -> list[str] | None:
        names = [p["spec"].get("nodeName") for p in cluster.pods(namespace)]
        return sorted(names) if len(names) == count and all(names) else None

    result: list[str] = cluster.wait(nodes, timeout=60, what=f"{count} pods bound in {namespace}")
    return result


def test_opted_in_pods_land_on_the_lowest_carbon_nodes_that_fit(
    setup: tuple[Cluster, ExtenderProcess],
) -> None:
    cluster, extender = setup
    ns = make_namespace(cluster, "green")
    before = extender.metric(
        "greenshard_extender_decisions_total", verb="prioritize", decision="scored"
    )
    # One at a time: each must see the GPUs the previous ones took.
    for i in range(4):
        cluster.apply_yaml(json.dumps(pod(f"green-{i}", carbon_aware=True, gpus=2)), namespace=ns)
        bound_nodes(cluster, ns, i + 1)
    # 2 GPUs each: eu-north-1-l4-0 (the greenest: 30 x 1.2 x 1.5) holds two, then the next
    # greenest node with free GPUs, eu-north-1-h100-0 (30 x 1.2 x 1.75), takes the others.
    assert bound_nodes(cluster, ns, 4) == [
        "eu-north-1-h100-0",
        "eu-north-1-h100-0",
        "eu-north-1-l4-0",
        "eu-north-1-l4-0",
    ]
    after = extender.metric(
        "greenshard_extender_decisions_total", verb="prioritize", decision="scored"
    )
    assert after - before >= 4


def test_pods_without_the_label_spread_as_usual(setup: tuple[Cluster, ExtenderProcess]) -> None:
    cluster, extender = setup
    ns = make_namespace(cluster, "plain")
    before = extender.metric(
        "greenshard_extender_decisions_total", verb="filter", decision="passthrough"
    )
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "plain"},
        "spec": {
            "replicas": 6,
            "selector": {"matchLabels": {"app": "plain"}},
            "template": {
                "metadata": {"labels": {"app": "plain"}},
                "spec": pod("x", carbon_aware=False, app="plain")["spec"],
            },
        },
    }
    cluster.apply_yaml(json.dumps(deployment), namespace=ns)
    nodes = bound_nodes(cluster, ns, 6)
    regions = {n.rsplit("-", 2)[0] for n in nodes}
    # The default scheduler spreads a ReplicaSet's pods (topology spread by host and zone):
    # nothing pulls them to the greenest node or region.
    assert len(set(nodes)) >= 4, nodes
    assert len(regions) >= 2, nodes
    after = extender.metric(
        "greenshard_extender_decisions_total", verb="filter", decision="passthrough"
    )
    assert after - before >= 6


def test_a_ceiling_no_node_meets_stays_pending_with_the_reason(
    setup: tuple[Cluster, ExtenderProcess],
) -> None:
    cluster, _ = setup
    ns = make_namespace(cluster, "ceiling")
    cluster.apply_yaml(
        json.dumps(pod("too-clean", carbon_aware=True, max_intensity="10")), namespace=ns
    )

    def reason() -> str | None:
        events = cluster.items(
            "events", "--field-selector", "involvedObject.name=too-clean", namespace=ns
        )
        for event in events:
            if event.get("reason") == "FailedScheduling" and "greenshard:" in event["message"]:
                return str(event["message"])
        return None

    message = cluster.wait(reason, timeout=60, what="a FailedScheduling event from the extender")
    assert "0/15 nodes are available" in message
    assert "region eu-north-1 intensity 30 gCO2e/kWh is above" in message
    assert "greenshard.io/max-intensity 10" in message
    time.sleep(2)
    got = cluster.get_json("pod", "too-clean", namespace=ns)
    assert got["status"]["phase"] == "Pending"
    assert not got["spec"].get("nodeName")


def test_scheduling_goes_on_without_the_extender(setup: tuple[Cluster, ExtenderProcess]) -> None:
    cluster, extender = setup
    ns = make_namespace(cluster, "ignorable")
    extender.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{extender.port}/healthz", timeout=2)
    # The same ceiling that kept a pod Pending: with the extender gone (ignorable: true), the
    # scheduler places it as if no extender were configured.
    cluster.apply_yaml(
        json.dumps(pod("anyway", carbon_aware=True, max_intensity="10")), namespace=ns
    )
    assert len(bound_nodes(cluster, ns, 1)) == 1
