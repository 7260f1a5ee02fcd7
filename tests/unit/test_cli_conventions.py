"""What users expect of a command line: --version, `-f -` from stdin, exit 2 for usage and input
errors and 1 for runtime failures (one line, no traceback), and a progress bar for the long
commands only on a terminal."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from greenshard import cli, harness

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "crds" / "samples" / "llama-70b.yaml"
PLAN = [
    "plan", "--nodes", str(ROOT / "examples" / "nodes.yaml"),
    "--profile", str(ROOT / "crds" / "samples" / "gridprofile.yaml"),
    "--hour", "12", "--solver", "exact", "-o", "json",
]  # fmt: skip


def greenshard(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "greenshard.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT / "operator")},
    )


def test_version() -> None:
    res = greenshard("--version")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert (res.returncode, res.stdout.strip()) == (0, f"greenshard {version}")


def timeless(text: str) -> Any:
    doc = json.loads(text)
    doc["solver"].pop("wallSeconds")
    return doc


def test_dash_reads_the_deployment_from_stdin() -> None:
    from_file = greenshard(*PLAN, "-f", str(SAMPLE))
    from_stdin = greenshard(*PLAN, "-f", "-", stdin=SAMPLE.read_text())
    assert from_file.returncode == from_stdin.returncode == 0, from_stdin.stderr
    assert timeless(from_stdin.stdout) == timeless(from_file.stdout)
    bad = greenshard(*PLAN, "-f", "-", stdin="spec: [\n")
    assert bad.returncode == 2
    assert bad.stderr.startswith("greenshard: error: -: invalid YAML at line 2")
    assert len(bad.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["plan", "-f", "x", "--nodes", "y", "--profile", "z", "--bogus"], 2, "unrecognized"),
        (["plan", "-f", "/nonexistent.yaml", "--nodes", "x", "--profile", "y"], 2, "cannot read"),
        ([], 2, "the following arguments are required"),
    ],
)
def test_usage_and_input_errors_exit_2(args: list[str], code: int, needle: str) -> None:
    res = greenshard(*args)
    assert res.returncode == code
    assert needle in res.stderr
    assert "Traceback" not in res.stderr


def test_runtime_failures_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The report folder cannot be written: the environment, not the input.
    def cannot_write(args: Any) -> int:
        raise PermissionError(13, "Permission denied", str(tmp_path / "out"))

    monkeypatch.setattr(cli, "cmd_experiment", cannot_write)
    assert cli.main(["experiment", "dynamic", "--quick", "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        f"greenshard: error: {tmp_path / 'out'}: Permission denied\n"
    )

    def provider_down(args: Any) -> int:
        raise cli.CliRuntimeError("gp.yaml: region eu-north-1 (wattTime): HTTP 503")

    monkeypatch.setattr(cli, "cmd_intensity", provider_down)
    assert cli.main(["intensity", "--profile", "gp.yaml"]) == 1
    assert "HTTP 503" in capsys.readouterr().err


def test_help_documents_the_exit_status() -> None:
    text = greenshard("--help").stdout
    assert "Exit status: 0 success, 1 runtime failure, 2 usage or input error" in text


class Terminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_bar_on_a_terminal_only() -> None:
    ticks = iter(range(0, 100, 10))
    shown = Terminal(tty=True)
    bar = harness.Progress(4, "bench", stream=shown, clock=lambda: float(next(ticks)))
    for _ in range(4):
        bar.advance()
    bar.close()
    text = shown.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n")
    assert "bench [##############################] 4/4  0:40 elapsed, ~0:00 left" in text
    assert "1/4  0:10 elapsed, ~0:30 left" in text

    piped = Terminal(tty=False)
    bar = harness.Progress(4, "bench", stream=piped)
    for _ in range(4):
        bar.advance()
    bar.close()
    assert piped.getvalue() == ""


def test_the_dynamic_experiment_shows_its_progress_hour_by_hour(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from greenshard.experiments import dynamic

    shown = Terminal(tty=True)
    monkeypatch.setattr(sys, "stderr", shown)
    day = dynamic.solve_day(0, "exact")
    text = shown.getvalue()
    assert len(day.plans) == dynamic.HOURS
    assert text.count("\r") == dynamic.HOURS and text.endswith("\n")
    assert f"dynamic: exact, hour by hour [{'#' * 30}] 24/24" in text
