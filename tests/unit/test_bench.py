"""`greenshard bench`: the documented JSON rows, and one-line usage errors with exit 2."""

from __future__ import annotations

import json

import pytest

from greenshard import cli, memory


def test_bench_json_rows_have_the_documented_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["bench", "--qubits", "8,10", "--depth", "1", "--repeat", "1", "-o", "json"])
    out, _ = capsys.readouterr()
    assert code == 0
    rows = json.loads(out)
    assert isinstance(rows, list)
    assert {(r["qubits"], r["backend"]) for r in rows} == {
        (8, "qsim"),
        (8, "cirq"),
        (10, "qsim"),
        (10, "cirq"),
    }
    for row in rows:
        assert row["depth"] == 1
        assert row["kind"] == "evaluation"
        assert row["secondsPerEvaluation"] > 0
        assert row["peakMemoryBytes"] > 2**20
        assert 0 < row["probabilityOfOptimum"] <= 1
        assert row["amplitudes"] == 2 ** row["qubits"]
        assert row["secondsPerPass"] > 0
        assert row["passes"] > 0
        assert row["passReference"] == "host"
        assert row["peakBytesPerAmplitude"] >= 0
        assert row["estimateBytesPerAmplitude"] == memory.BYTES_PER_AMPLITUDE
        assert row["path"] == "after"
        assert row["ansatz"] == "binary"


def test_bench_table_names_the_backends(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli.main(["bench", "--qubits", "6", "--depth", "1", "--backends", "qsim", "--repeat", "1"])
        == 0
    )
    out, _ = capsys.readouterr()
    assert "SECONDS/EVAL" in out
    assert any(line.split()[:3] == ["6", "binary", "qsim"] for line in out.splitlines())


@pytest.mark.parametrize("qubits", ["abc", "8,x", "0", "99", "", "16,,-3"])
def test_bad_qubits_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], qubits: str) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--qubits", qubits])
    assert exc.value.code == 2
    _, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1
    assert "--qubits" in err


def test_bad_backend_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--backends", "qsim,gpu"])
    assert exc.value.code == 2
    assert "qsim,cirq,qsim-gpu" in capsys.readouterr().err


def test_before_and_after_gpu_fallback_and_the_xy_ansatz_in_one_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--paths before,after times both configurations in workers started with and without huge
    page malloc; qsim-gpu on a CPU-only wheel runs on the CPU and the table says so; --ansatz
    onehot adds the XY-mixer ansatz with its own passes; --profile splits an evaluation."""
    argv = ["bench", "--qubits", "10", "--depth", "2", "--repeat", "1", "--profile"]
    argv += ["--backends", "qsim,qsim-gpu", "--ansatz", "binary,onehot", "--paths", "before,after"]
    assert cli.main([*argv, "-o", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    got = {(r["backend"], r["ansatz"], r["path"]): r for r in rows}
    assert set(got) == {
        ("qsim", "binary", "before"),
        ("qsim", "binary", "after"),
        ("qsim-gpu", "binary", "before"),
        ("qsim-gpu", "binary", "after"),
        ("numpy", "onehot", "after"),
    }
    before, after = got["qsim", "binary", "before"], got["qsim", "binary", "after"]
    assert (before["fusedGateSize"], after["fusedGateSize"]) == (3, 3)
    assert before["hugepageMalloc"] is False
    assert after["hugepageMalloc"] is True
    assert before["probabilityOfOptimum"] == pytest.approx(after["probabilityOfOptimum"], rel=1e-4)
    gpu = got["qsim-gpu", "binary", "after"]
    assert gpu["ranOn"] == "qsim"
    assert "CPU-only" in gpu["fallback"]
    onehot = got["numpy", "onehot", "after"]
    assert onehot["amplitudes"] == 4**5  # K**S: 5 shards on 4 pools
    assert onehot["passes"] > 0
    for row in (before, after):
        stages = row["profile"]
        assert stages["fusedGates"] == -(-10 // row["fusedGateSize"])
        assert all(stages[k] > 0 for k in ("initialPhase", "phase", "mixer", "expectation"))
    assert "profile" not in onehot

    assert cli.main([*argv[:-4], "--paths", "before,after"]) == 0
    table = capsys.readouterr().out
    assert "qsim-gpu->qsim" in table
    assert "note: backend qsim-gpu asked for" in table
    assert "before (f3,4k)" in table and "after (f3,hp)" in table
    assert "PASSES" in table and "PEAK B/AMP" in table
    assert "INITIALPHASE" in table


def test_fusion_paths_time_the_current_configuration_at_other_fusion_sizes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """after-fN is the current configuration (huge pages) with qsim fusing up to N qubits: what a
    same-run comparison of fusion sizes needs. The state does not depend on it."""
    argv = ["bench", "--qubits", "9", "--depth", "2", "--repeat", "1", "--backends", "qsim"]
    assert cli.main([*argv, "--paths", "after-f1,after-f4", "--profile", "-o", "json"]) == 0
    rows = {r["path"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"after-f1", "after-f4"}
    f1, f4 = rows["after-f1"], rows["after-f4"]
    assert (f1["fusedGateSize"], f4["fusedGateSize"]) == (1, 4)
    assert f1["hugepageMalloc"] is True and f4["hugepageMalloc"] is True
    assert f1["profile"]["fusedGates"] == 9 and f4["profile"]["fusedGates"] == 3
    assert f1["probabilityOfOptimum"] == pytest.approx(f4["probabilityOfOptimum"], rel=1e-4)
    with pytest.raises(SystemExit) as exc:
        cli.main([*argv, "--paths", "after-f5"])
    assert exc.value.code == 2


def test_solve_rows_per_ansatz_carry_their_figures_and_the_controls_at_their_shots(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["bench", "--qubits", "12", "--backends", "qsim", "--repeat", "1", "--solve"]
    args += ["--qaoa-ansatz", "threshold,onehot,binary", "--solvers", "qaoa,bruteforce"]
    assert cli.main([*args, "-o", "json"]) == 0
    rows = [r for r in json.loads(capsys.readouterr().out) if r["kind"] == "solve"]
    qaoa = {r["ansatz"]: r for r in rows if r["solver"] == "qaoa"}
    assert set(qaoa) == {"threshold-grover", "onehot-xy-complete", "binary-x"}
    (brute,) = [r for r in rows if r["solver"] == "bruteforce"]
    assert brute["gap"] == 0.0 and "controls" not in brute
    for name, row in qaoa.items():
        assert 0 < row["probabilityOfOptimum"] <= 1, name
        assert row["tts99Shots"] >= 1, name
        assert row["feasibleSetRatio"] <= row["uniformRatio"], name
        assert [c["name"] for c in row["controls"]] == [
            "uniform",
            "local-search",
            "genetic",
            "anneal",
        ]
        for c in row["controls"]:
            assert c["budget"] == row["shots"] == 2048
            assert 0 < c["evaluations"] <= c["budget"]
            assert c["found"] == (c["gap"] == 0.0)
    assert cli.main(args) == 0
    table = capsys.readouterr().out
    assert "UNIFORM  LOCAL SEARCH  GENETIC  ANNEAL" in table
    lines = [line.split() for line in table.splitlines()]
    assert ["12", "threshold-grover", "2048", "yes"] in [line[:4] for line in lines]
