"""The operator as a real process (`greenshard run`) against the e2e cluster."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Operator:
    """Starts, kills and restarts `greenshard run`; reads its metrics."""

    def __init__(
        self, kubeconfig: str, workdir: Path, extra_env: dict[str, str] | None = None
    ) -> None:
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.hour_file = workdir / "hour"
        self.hour_file.write_text("12")
        self.log_path = workdir / "operator.log"
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.liveness_port = 0
        self.metrics_port = 0

    def start(self) -> None:
        self.liveness_port, self.metrics_port = free_port(), free_port()
        env = dict(
            os.environ,
            GREENSHARD_HOUR_FILE=str(self.hour_file),
            PYTHONPATH=str(ROOT / "operator"),
            **self.extra_env,
        )
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "greenshard.cli",
                "run",
                "--kubeconfig",
                self.kubeconfig,
                "--liveness-port",
                str(self.liveness_port),
                "--metrics-port",
                str(self.metrics_port),
                "--log-format",
                "json",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2
                ) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"operator did not become live: {self.log_tail()}")

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def set_hour(self, hour: int) -> None:
        self.hour_file.write_text(str(hour))

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"event": line, "level": "raw"})
        return out

    def metrics(self) -> str:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as resp:
            return str(resp.read().decode())

    def api_writes(self) -> float:
        total = 0.0
        for line in self.metrics().splitlines():
            if line.startswith("greenshard_api_writes_total{"):
                total += float(line.rsplit(" ", 1)[1])
        return total


@contextlib.contextmanager
def running_operator(kubeconfig: str, workdir: Path) -> Iterator[Operator]:
    """A started operator, stopped afterwards; fails the test if it logged an error."""
    op = Operator(kubeconfig, workdir)
    op.start()
    yield op
    op.stop()
    errors = [r for r in op.log_records() if r.get("level") in ("error", "critical")]
    assert not errors, errors[:3]
