"""The evaluation's cost in passes over its state, its peak memory per amplitude, the malloc
environment of the workers that time it, the qsim GPU option's fallback on a CPU-only wheel, and
that the faster configuration prepares the same states as the one it replaced."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import weakref

import numpy as np
import numpy.typing as npt
import pytest

from greenshard import hamiltonian, harness, instances, memory
from greenshard.solvers import backends
from greenshard.solvers.qaoa.engine import QAOAEngine
from greenshard.solvers.qaoa.schedule import linear_ramp

# ------------------------------------------------------------------------------ passes


def test_time_pass_copies_the_state_and_returns_each_sample() -> None:
    source = np.arange(1 << 12, dtype=np.float32).astype(np.complex64)
    samples = harness.time_pass(source, repeat=4)
    assert len(samples) == 4
    assert all(0 < s < 5 for s in samples)


def test_a_pass_over_a_bigger_state_takes_longer() -> None:
    small = np.ones(1 << 10, dtype=np.complex64)
    big = np.ones(1 << 22, dtype=np.complex64)  # 32 MiB: beyond the caches, 4096x the bytes
    assert min(harness.time_pass(big, 3)) > 10 * min(harness.time_pass(small, 3))


def test_peak_per_amplitude_is_the_peak_over_the_state_size() -> None:
    run = harness.Evaluation(
        seconds=1.5,
        pass_seconds=0.05,
        passes=30.0,
        setup=0.0,
        threads=1,
        amplitudes=1 << 20,
        peak_bytes=21 << 20,
        backend="qsim",
        fallback="",
        engine=None,
        state=None,
    )
    assert run.peak_bytes_per_amplitude == pytest.approx(21.0)


@pytest.mark.parametrize("ansatz", ["binary", "onehot"])
def test_time_evaluation_reports_passes_and_peak_per_amplitude(ansatz: str) -> None:
    problem = instances.synthetic_problem(14, 3)
    run = harness.time_evaluation(problem, 2, threads=1, repeat=2, ansatz=ansatz)
    assert run.amplitudes == 1 << 14 == run.state.size
    assert run.seconds > 0 and run.pass_seconds > 0
    assert run.passes > 0  # the median of per-evaluation ratios, each against its own pass
    assert run.seconds / run.pass_seconds / 10 < run.passes < 10 * run.seconds / run.pass_seconds
    assert run.peak_bytes >= 0
    expected = run.engine.expectation(run.state)
    assert math.isfinite(expected)


# ------------------------------------------------------------------- malloc environment


def test_hugepage_malloc_keeps_other_tunables_and_is_idempotent() -> None:
    env = {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=0", "X": "1"}
    once = memory.hugepage_malloc(env)
    assert once["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    assert memory.hugepage_malloc(once) == once
    assert once["X"] == "1"
    back = memory.without_hugepage_malloc(once)
    assert back["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2"
    only = {"GLIBC_TUNABLES": memory.HUGEPAGE_TUNABLE}
    assert "GLIBC_TUNABLES" not in memory.without_hugepage_malloc(only)
    assert env["GLIBC_TUNABLES"].endswith("hugetlb=0")  # the input is not modified


def _started_with_hugepages(env: dict[str, str]) -> bool:
    code = "from greenshard import memory; print(memory.hugepage_malloc_active())"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip() == "True"


def test_hugepage_malloc_active_reads_the_environment_the_process_started_with() -> None:
    assert _started_with_hugepages(memory.hugepage_malloc())
    assert not _started_with_hugepages(memory.without_hugepage_malloc())


def test_hugepage_children_restores_this_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    with memory.hugepage_children():
        assert os.environ["GLIBC_TUNABLES"].endswith(memory.HUGEPAGE_TUNABLE)
        assert _started_with_hugepages(dict(os.environ))
    assert os.environ["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2"
    monkeypatch.delenv("GLIBC_TUNABLES")
    with memory.hugepage_children():
        pass
    assert "GLIBC_TUNABLES" not in os.environ


# ----------------------------------------------------------------------- GPU fallback


def test_qsim_gpu_on_a_cpu_only_wheel_runs_on_the_cpu_and_says_why() -> None:
    if backends.gpu_unavailable_reason() == "":  # pragma: no cover - a CUDA build of qsim
        pytest.skip("this qsimcirq has a CUDA build: the fallback does not apply")
    gpu = backends.Backend(backends.BackendOptions("qsim-gpu", threads=1))
    assert gpu.name == "qsim"
    assert "qsim-gpu" in gpu.fallback
    assert "CPU-only" in gpu.fallback
    assert "CUDA" in gpu.fallback
    cpu = backends.Backend(backends.BackendOptions("qsim", threads=1))
    assert cpu.fallback == ""
    ham = hamiltonian.CostHamiltonian(instances.synthetic_problem(10, 1))
    gammas, betas = linear_ramp(2, 0.3, 0.1)
    np.testing.assert_allclose(
        QAOAEngine(ham, 2, gpu).state(gammas, betas),
        QAOAEngine(ham, 2, cpu).state(gammas, betas),
        atol=1e-6,
    )


def test_gpu_reason_is_empty_when_qsim_has_a_cuda_module(monkeypatch: pytest.MonkeyPatch) -> None:
    import qsimcirq

    monkeypatch.setattr(qsimcirq, "qsim_gpu", object())
    assert backends.gpu_unavailable_reason() == ""
    monkeypatch.setattr(qsimcirq, "qsim_gpu", None)
    assert "CPU-only" in backends.gpu_unavailable_reason()


def test_without_cupy_the_gpu_pass_is_left_to_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)  # import fails, as where CuPy is missing
    assert harness.gpu_pass_seconds(1 << 10) == []


def test_unknown_backend_names_the_choices() -> None:
    with pytest.raises(ValueError, match="qsim, qsim-gpu, cirq"):
        backends.Backend(backends.BackendOptions("gpu"))


# ------------------------------------------------------------------------ correctness


@pytest.mark.parametrize(("qubits", "seed"), [(10, 41), (12, 42), (14, 43), (15, 44)])
def test_the_faster_configuration_prepares_the_same_state(qubits: int, seed: int) -> None:
    """The default (fused gates of up to 3 qubits) vs every other fusion size vs
    cirq.Simulator: amplitudes to 1e-5, energy (float32 sums of ~30) to 1e-5 relative."""
    ham = hamiltonian.CostHamiltonian(instances.synthetic_problem(qubits, seed))
    gammas, betas = linear_ramp(3, 0.3, 0.1)
    configurations = {
        "after": backends.BackendOptions("qsim", 1),
        **{f"f{n}": backends.BackendOptions("qsim", 1, n) for n in (1, 2, 4)},
        "cirq": backends.BackendOptions("cirq"),
    }
    engines = {
        name: QAOAEngine(ham, 3, backends.Backend(options), "diagonal")
        for name, options in configurations.items()
    }
    assert engines["after"].backend.options.max_fused_gate_size == 3
    states = {name: e.state(gammas, betas) for name, e in engines.items()}
    energies = {name: engines[name].expectation(s) for name, s in states.items()}
    for name in ("f1", "f2", "f4", "cirq"):
        assert np.abs(states["after"] - states[name]).max() <= 1e-5
        assert energies["after"] == pytest.approx(energies[name], rel=1e-5)
    assert np.abs(states["after"]).max() > 0.5 * 2 ** (-qubits / 2)  # not a zero state


def test_energy_reuses_its_last_state_and_lets_it_go_after_the_first_layer() -> None:
    """The kept buffer becomes the next first layer and is freed when the backend's copy replaces
    it: repeated energies equal a fresh state's, and no third state is ever alive."""
    ham = hamiltonian.CostHamiltonian(instances.synthetic_problem(12, 7))
    engine = QAOAEngine(ham, 3, backends.Backend(backends.BackendOptions("qsim", 1)), "diagonal")
    gammas, betas = linear_ramp(3, 0.3, 0.1)
    first = engine.energy(gammas, betas)
    kept = weakref.ref(engine._spare) if engine._spare is not None else None
    assert kept is not None
    alive: list[bool] = []
    run = engine.backend.run

    def watching(*args: object, **kwargs: object) -> npt.NDArray[np.complex64]:
        alive.append(kept() is not None)
        return run(*args, **kwargs)  # type: ignore[arg-type]

    engine.backend.run = watching  # type: ignore[method-assign]
    second = engine.energy(gammas, betas)
    assert alive == [True, False, False]
    assert first == second == engine.expectation(engine.state(gammas, betas))
    engine.release()
    assert engine._spare is None
