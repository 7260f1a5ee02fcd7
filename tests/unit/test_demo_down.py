"""`make demo-down` returns only once the operator it stopped has exited."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# An "operator" that takes 2 s to shut down on SIGTERM, as kopf's cleanup can.
SLOW_EXIT = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(2), sys.exit(0)))\n"
    "while True: time.sleep(0.1)\n"
)


def test_demo_down_waits_for_the_operator_to_exit(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    state.mkdir()
    script = state / "operator.py"
    script.write_text(SLOW_EXIT)
    # started and disowned the way hack/demo.sh starts it (nohup ... &), so init reaps it
    launch = subprocess.run(
        ["bash", "-c", f'nohup "{sys.executable}" "{script}" >/dev/null 2>&1 & echo $!'],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(launch.stdout.strip())
    (state / "operator.pid").write_text(str(pid))
    time.sleep(0.5)  # its SIGTERM handler is installed
    env = dict(os.environ, GREENSHARD_DEMO_DIR=str(state))
    env.pop("GREENSHARD_CLUSTER_DIR", None)
    try:
        down = subprocess.run(
            ["bash", str(ROOT / "hack/demo.sh"), "down"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert down.returncode == 0, down.stderr
        assert not Path(f"/proc/{pid}").exists(), "demo-down returned with the operator running"
        assert not state.exists()
    finally:
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, 9)
