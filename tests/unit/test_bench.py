"""`greenshard bench`: the documented JSON rows, and one-line usage errors with exit 2."""

from __future__ import annotations

import json

import pytest

from greenshard import cli


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


def test_bench_table_names_the_backends(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli.main(["bench", "--qubits", "6", "--depth", "1", "--backends", "qsim", "--repeat", "1"])
        == 0
    )
    out, _ = capsys.readouterr()
    assert "SECONDS/EVAL" in out
    assert any(line.split()[:2] == ["6", "qsim"] for line in out.splitlines())


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
    assert "qsim,cirq" in capsys.readouterr().err
