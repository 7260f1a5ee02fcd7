"""The README's first command works: `make demo` (the image built here, the chart's operator and
scheduler extender running as pods on the real node), then `make demo-down` leaves nothing."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_make_demo_then_demo_down(tmp_path: Path) -> None:
    env = dict(os.environ, GREENSHARD_DEMO_DIR=str(tmp_path / "demo"))
    env.pop("GREENSHARD_CLUSTER_DIR", None)
    env.pop("KUBECONFIG", None)
    try:
        demo = subprocess.run(
            ["make", "demo"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=2700,  # a cold image build (debootstrap, pip) takes ~15 min on 2 busy cores
            check=False,
        )
        out = demo.stdout
        if demo.returncode != 0:  # what failed, before demo-down removes the cluster's logs
            logs = sorted((tmp_path / "demo" / "cluster" / "logs").glob("*.log"))
            tails = "".join(
                f"\n--- {log.name}\n"
                + "\n".join(log.read_text(errors="replace").splitlines()[-25:])
                for log in logs
            )
            pytest.fail(
                f"make demo exited {demo.returncode}\n--- stdout\n{out[-3000:]}\n"
                f"--- stderr\n{demo.stderr[-5000:]}{tails}",
                pytrace=False,
            )
        assert "condition met" in out  # kubectl wait --for=condition=Ready
        # The last lines say how to reach the cluster from the user's shell, and it works.
        (exported,) = [ln.split("=", 1)[1] for ln in out.splitlines() if "export KUBECONFIG=" in ln]
        nodes = subprocess.run(
            ["kubectl", "--kubeconfig", exported.strip(), "get", "infd", "llama-70b"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert nodes.returncode == 0, nodes.stderr
        wide = out.split("kubectl get infd -o wide", 1)[1]
        assert wide.splitlines()[2].split()[0] == "llama-70b"
        assert "True" in wide.splitlines()[2]
        placement = out.split("Placement per shard", 1)[1]
        assert sum(" gCO2e/h" in line for line in placement.splitlines()) >= 8
        assert "% saved" in placement
        pods = out.split("Pods and the nodes", 1)[1]
        assert pods.split("== The scheduler extender")[0].count("Running") == 16  # 8 x 2, KWOK
        # The operator ran as a pod of the chart, on the real node, as its ServiceAccount.
        operator = re.search(
            r"operator pod (\S+) on (\S+): (\w+), ServiceAccount (\S+), image (\S+)", out
        )
        assert operator, out
        assert operator.group(2, 3, 4) == ("real-0", "Running", "greenshard")
        assert operator.group(5) == "ghcr.io/greenshard/greenshard:0.1.0"
        ready = re.search(r"operator pod Ready ([0-9.]+)s after helm install", out)
        assert ready, out
        # kube-scheduler called the extender pod through its Service (10.96.0.20:8888).
        calls = re.search(
            r'greenshard_extender_requests_total\{code="200",verb="filter"\} ([0-9.]+)', out
        )
        assert calls and float(calls.group(1)) >= 16, out
    finally:
        down = subprocess.run(
            ["make", "demo-down"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert down.returncode == 0, down.stderr
    assert not (tmp_path / "demo").exists()
    leftovers = subprocess.run(
        ["pgrep", "-f", str(tmp_path / "demo")], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout.strip() == "", "processes of the demo are still running"
    assert not Path("/run/greenshard-node").exists(), "the real node's state is still there"
