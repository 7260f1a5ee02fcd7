"""The container image without a container engine: the Dockerfile is multi-stage on a slim
Python pinned by full version, runs as 65532 with `greenshard run`, installs from a lock with
hashes, and its builder steps, run here in a fresh virtual environment, give a working
`greenshard` (the slow test)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements.lock"
VENV = "/opt/greenshard"  # where the builder stage puts the virtual environment
BASE = re.compile(r"^python:(?P<minor>3\.\d+)\.\d+-slim-(?:bookworm|trixie)$")


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """The stages of a Dockerfile: continuation lines joined, comments dropped, and the ARGs
    declared before the first FROM substituted into FROM."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            image = re.sub(
                r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), args
            )
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", image, re.I)
            assert m, f"cannot parse FROM {args}"
            stages.append(Stage(m.group(1), m.group(2)))
        elif not stages:
            assert keyword == "ARG", f"{keyword} before the first FROM"
            name, _, default = args.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append((keyword, args))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"use the exec (JSON) form: {args}"
    return [str(v) for v in value]


def test_base_is_slim_python_pinned_by_full_version(stages: list[Stage]) -> None:
    names = {s.name for s in stages if s.name}
    bases = [s.image for s in stages if s.image not in names]
    assert bases, "no base image"
    for image in bases:
        assert BASE.match(image), (
            f"pin the base by its full version, e.g. python:3.11.13-slim-bookworm: {image}"
        )
    assert len(set(bases)) == 1, f"one base for every stage: {bases}"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    match = BASE.match(bases[0])
    assert match
    assert requires == f">={match.group('minor')}", "the image runs the oldest supported Python"


def test_multi_stage_build_copies_only_the_venv(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    builder, final = stages[0], stages[-1]
    assert builder.name == "builder"
    assert final.args("COPY") == [f"--from=builder {VENV} {VENV}"]
    assert not final.args("RUN"), "the runtime stage installs nothing"
    assert any(f"{VENV}/bin" in env for env in final.args("ENV"))


def test_runs_as_65532_with_greenshard_run(stages: list[Stage]) -> None:
    final = stages[-1]
    assert final.args("USER") == ["65532:65532"]
    assert [exec_form(a) for a in final.args("ENTRYPOINT")] == [["greenshard"]]
    assert [exec_form(a) for a in final.args("CMD")] == [["run"]]


def test_dependencies_come_from_the_lock_with_hashes(stages: list[Stage]) -> None:
    runs = " ".join(stages[0].args("RUN"))
    assert (
        f"{VENV}/bin/pip install --require-hashes --only-binary=:all: -r requirements.lock" in runs
    )
    assert f"{VENV}/bin/pip install --no-deps --no-build-isolation ." in runs


def lock_pins() -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of requirements.lock."""
    pins: dict[str, tuple[str, int]] = {}
    text = LOCK.read_text()
    for block in re.split(r"\n(?=[A-Za-z])", text):
        m = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", block)
        if m:
            pins[canonical(m.group(1))] = (m.group(2), block.count("--hash=sha256:"))
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_lock_pins_every_runtime_dependency_with_hashes() -> None:
    pins = lock_pins()
    assert len(pins) >= 40
    for name, (_, hashes) in pins.items():
        assert hashes >= 1, f"{name} has no hash"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dep in project["dependencies"]:
        name = canonical(re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0])
        assert name in pins, (
            f"{name} is a dependency but not in requirements.lock: run hack/lock-requirements.sh"
        )
    constraints = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            constraints[canonical(name)] = version.strip()
    for name, (version, _) in pins.items():
        if name in constraints:
            assert version == constraints[name], (
                f"{name}: lock {version}, constraints {constraints[name]}"
            )


def test_dockerignore_admits_what_the_dockerfile_copies(stages: list[Stage]) -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "ignore everything, then admit what the build needs"
    admitted = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied: set[str] = set()
    for stage in stages:
        for args in stage.args("COPY"):
            if not args.startswith("--from"):
                copied.update(s.rstrip("/") for s in args.split()[:-1])
    assert copied == admitted
    for source in copied:
        assert (ROOT / source).exists(), source


# ------------------------------------------------------------------------ the install steps


def interpreter(minor: str) -> str:
    """A Python of the image's minor version: this one, or pythonX.Y on PATH."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == minor:
        return sys.executable
    found = shutil.which(f"python{minor}")
    if not found:
        pytest.fail(f"the image runs Python {minor}: install python{minor} to check its steps")
    return found


@pytest.mark.slow
def test_builder_steps_give_a_working_greenshard(stages: list[Stage], tmp_path: Path) -> None:
    """Run the builder stage here: COPY into a scratch context, RUN with the venv in tmp_path
    (ENV is not applied: pip keeps its cache, so a rerun is quick)."""
    builder, final = stages[0], stages[-1]
    match = BASE.match(builder.image)
    assert match
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(interpreter(match.group("minor")))
    venv = tmp_path / "venv"
    workdir = tmp_path / "context"
    workdir.mkdir()
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    env.pop("VIRTUAL_ENV", None)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")

    for keyword, args in builder.instructions:
        if keyword == "WORKDIR":
            continue  # the context dir stands for it
        if keyword == "COPY":
            *sources, dest = args.split()
            target = workdir / dest
            for source in sources:
                src = ROOT / source
                if src.is_dir():
                    shutil.copytree(src, target, ignore=ignore, dirs_exist_ok=True)
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy(src, target / src.name)
        elif keyword == "RUN":
            command = args.replace(VENV, str(venv))
            res = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", command],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=900,
            )
            assert res.returncode == 0, f"RUN {args}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"

    check = subprocess.run(
        [str(venv / "bin" / "pip"), "check"], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr

    # The runtime stage: PATH has the venv's bin, so ENTRYPOINT ["greenshard"] is the script.
    (entrypoint,) = [exec_form(a) for a in final.args("ENTRYPOINT")]
    run_env = dict(env, PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}")
    assert shutil.which(entrypoint[0], path=run_env["PATH"]) == str(venv / "bin" / "greenshard")
    res = subprocess.run(
        [*entrypoint, "--help"], env=run_env, capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stderr
    assert re.search(r"\bplan\b", res.stdout), res.stdout
    assert re.search(r"\brun\b", res.stdout), res.stdout
    # CMD ["run"] with the flags the chart passes (charts/greenshard/templates/deployment.yaml).
    (cmd,) = [exec_form(a) for a in final.args("CMD")]
    res = subprocess.run(
        [*entrypoint, *cmd, "--help"], env=run_env, capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stderr
    for flag in ("--liveness-port", "--metrics-port"):
        assert flag in res.stdout, res.stdout
