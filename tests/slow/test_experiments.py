"""`greenshard experiment static|dynamic|noisy --quick`: reports, real figures, and outcomes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from greenshard import cli

pytestmark = pytest.mark.slow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_experiment(name: str, out: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(["experiment", name, "--out", str(out), "--quick", "--seed", "0"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == out / name / "report.md"
    return path.read_text(encoding="utf-8")


def check_figures(report: str, directory: Path, expected: set[str]) -> None:
    linked = set(re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", report))
    assert linked == expected
    import matplotlib.image

    for name in linked:
        path = directory / name
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC), name
        assert 5_000 < len(data) < 300_000, (name, len(data))
        pixels = matplotlib.image.imread(path)
        assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
        colours = np.unique(pixels.reshape(-1, pixels.shape[2]), axis=0)
        assert len(colours) > 10, name


def table_rows(report: str, heading: str) -> list[list[str]]:
    """The cells of the first table after ``heading``."""
    section = report.split(heading, 1)[1]
    rows = []
    started = False
    for line in section.splitlines():
        if line.startswith("|"):
            started = True
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif started:
            break
    return [r for r in rows[1:] if not set("".join(r)) <= {"-"}]


def test_static_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = run_experiment("static", tmp_path, capsys)
    for heading in (
        "## Optimality gap, probability of the optimum, time to solution, peak memory",
        "## Seconds per QAOA energy evaluation against n: where the wall is",
        "## Against the preprint",
    ):
        assert heading in report
    check_figures(report, tmp_path / "static", {"solvers.png", "evaluation.png"})
    rows = table_rows(report, "## Optimality gap")
    solvers = {r[1] for r in rows}
    assert {
        "qaoa p=1",
        "qaoa p=3",
        "qaoa threshold (default)",
        "bruteforce",
        "genetic",
        "anneal",
    } <= solvers
    for row in rows:  # every answer verified optimal (QAOA after its local search)
        assert row[3] == f"{row[2]}/{row[2]}", row
        assert float(row[4]) == 0.0
    evaluations = table_rows(report, "## Seconds per QAOA energy evaluation")
    assert [int(r[0]) for r in evaluations] == [6, 8, 10, 12, 14, 16]
    assert all(float(r[1]) > 0 for r in evaluations)

    # per instance and ansatz: the state's figures, and the controls at the same shots
    per = table_rows(report, "## Per instance and ansatz, beside the controls")
    assert {(r[0], r[3]) for r in per} == {
        (n, a)
        for n in ("6", "8")
        for a in ("qaoa binary p=300 (CRD defaults)", "qaoa onehot XY", "qaoa threshold (default)")
    }
    for row in per:
        p_opt, ratio_all, ratio_feasible, tts99 = (float(c) for c in row[4:8])
        assert 0 < p_opt <= 1 and ratio_feasible <= ratio_all and tts99 >= 1, row
        assert row[9] == "2048", row
        for cell in row[10:14]:
            assert cell == "found" or cell.startswith("gap ") or cell == "no feasible", row
    threshold = [r for r in per if r[3] == "qaoa threshold (default)"]
    assert all(float(r[4]) >= 0.96 and r[8] == "found" for r in threshold)
    assert "Where QAOA loses: in " in report

    # the wall in the preprint's unit: shards over 5 pools, solved by QAOA sampling
    wall = table_rows(report, "## The wall in the preprint's unit")
    assert {(r[0], r[1]) for r in wall} == {
        ("threshold", "4"),
        ("threshold", "5"),
        ("threshold", "6"),
        ("onehot", "4"),
        ("onehot", "5"),
    }
    for row in wall:
        assert row[2] == "5" and int(row[3]) == 5 ** int(row[1]), row
        assert row[4] == "qaoa-sample" and float(row[5]) == 0.0, row
        assert float(row[12]) > 0
    preprint = table_rows(report, "## Against the preprint")
    assert "threshold: N = 6 shards x 5 pools solved exactly by QAOA sampling" in preprint[1][2]


def test_dynamic_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = run_experiment("dynamic", tmp_path, capsys)
    for heading in (
        "## Regions",
        "## Total over 24 hours",
        "## Against the preprint",
        "## Placement per hour",
        "## Sensitivity: migration cost and hysteresis threshold",
    ):
        assert heading in report
    assert "23.76 gCO2e" in report
    check_figures(
        report, tmp_path / "dynamic", {"intensity.png", "placement.png", "cumulative.png"}
    )
    totals = {r[0]: float(r[4]) for r in table_rows(report, "## Total over 24 hours")}
    assert totals["hindsight"] <= totals["hourly"] + 1e-6
    assert totals["hindsight"] <= totals["hourly + hysteresis"] + 1e-6
    assert totals["hourly"] <= totals["hour-0 kept"] <= totals["baseline"]
    assert totals["hourly + hysteresis"] <= totals["hour-0 kept"]
    assert len(table_rows(report, "## Placement per hour")) == 24


def test_dynamic_hysteresis_rule_matches_the_operator() -> None:
    """The experiment's strategy uses the operator's rule: a move only for >= the threshold."""
    from greenshard import model
    from greenshard.experiments import dynamic

    day = dynamic.solve_day(0, "exact")
    kept = dynamic.with_hysteresis(day, 5.0)
    for h in range(1, dynamic.HOURS):
        if kept[h] != kept[h - 1]:
            assert kept[h] == day.plans[h].solution.placement
            before = model.emissions(day.problems[h], kept[h - 1])
            assert 100 * (before - day.plans[h].emissions) / before >= 5.0
    assert dynamic.with_hysteresis(day, 0.0) == [p.solution.placement for p in day.plans]


def test_noisy_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = run_experiment("noisy", tmp_path, capsys)
    for heading in (
        "## 6 qubits",
        "## Approximation ratio against depth",
        "## qsim trajectories against the exact density matrix",
        "## Summary",
    ):
        assert heading in report
    check_figures(report, tmp_path / "noisy", {"noise-rate-6q.png", "depth.png"})
    summary = table_rows(report, "## Summary")
    assert {r[0] for r in summary} == {"depolarizing", "amplitude damping"}
    for row in summary:  # best over depths: "0.8379 (p=3)" per rate, from 0 to the highest
        clean, noisy = (float(cell.split()[0]) for cell in (row[1], row[-1]))
        assert 0.0 < noisy <= clean <= 1.0
    for row in table_rows(report, "## qsim trajectories"):  # qsim agrees with the exact average
        exact = float(row[5])
        mean, se = (float(x) for x in row[6].split("±"))
        assert abs(mean - exact) <= 4 * se + 0.02, row
