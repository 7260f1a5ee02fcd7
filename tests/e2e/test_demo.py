"""The README's first command works: `make demo`, then `make demo-down` leaves nothing."""

from __future__ import annotations

import os
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
            timeout=1500,
            check=False,
        )
        out = demo.stdout
        assert demo.returncode == 0, (out[-4000:], demo.stderr[-4000:])
        assert "condition met" in out  # kubectl wait --for=condition=Ready
        wide = out.split("kubectl get infd -o wide", 1)[1]
        assert wide.splitlines()[2].split()[0] == "llama-70b"
        assert "True" in wide.splitlines()[2]
        placement = out.split("Placement per shard", 1)[1]
        assert sum(" gCO2e/h" in line for line in placement.splitlines()) >= 8
        assert "% saved" in placement
        pods = out.split("Pods and the nodes", 1)[1]
        assert pods.count("Running") == 16  # 8 shards x 2 replicas, bound to KWOK nodes
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
