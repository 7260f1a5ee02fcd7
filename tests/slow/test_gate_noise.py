"""The noisy experiment runs the compiled circuit: 1- and 2-qubit gates only, equal to the
subspace simulator without noise, and noise that costs what it should."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from greenshard.experiments import gate_noise
from greenshard.solvers import onehot


@pytest.mark.slow
def test_quick_gate_noise_experiment() -> None:
    config = gate_noise.QUICK
    space = gate_noise.small_problem(config)
    sim = onehot.SubspaceSimulator(space)
    gammas, betas = onehot.linear_ramp(3, 1.3, 0.4)
    circuit, qubits = gate_noise.compiled_circuit(sim, list(gammas), list(betas))
    assert all(len(op.qubits) <= 2 for op in circuit.all_operations())
    final = circuit.final_state_vector(qubit_order=qubits, dtype=np.complex128)
    register = onehot.register_index(space, np.arange(space.size))
    # equal up to a global phase (the emissions offset is not a gate)
    ideal = sim.state(gammas, betas)
    overlap = np.vdot(final[register], ideal)
    assert abs(abs(overlap) - 1.0) < 1e-5

    result = gate_noise.run_experiment(config)
    rows = {(r["channel"], r["rate"]): r for r in result["rows"]}
    clean = rows[("none", 0.0)]
    assert clean["pOpt"] == pytest.approx(clean["subspacePOpt"], abs=1e-5)
    assert clean["pOneHot"] == pytest.approx(1.0, abs=1e-5)
    base = result["baselines"]
    assert clean["pFeasible"] > base["pFeasibleUniformPlacements"]
    for channel in gate_noise.CHANNELS:
        low, high = (rows[(channel, r)] for r in config.rates)
        assert clean["pFeasible"] > low["pFeasible"] > high["pFeasible"]
        assert high["pOneHot"] < 1 - 1e-3  # noise leaks out of the one-hot subspace


@pytest.mark.slow
def test_threshold_gate_noise_experiment() -> None:
    config = dataclasses.replace(gate_noise.QUICK, ansatz="threshold", rates=(1e-2,))
    space = gate_noise.small_problem(config)
    circuit, qubits, ideal, layers = gate_noise.threshold_circuit(space, config.delta)
    assert layers >= 1
    assert all(len(op.qubits) <= 2 for op in circuit.all_operations())
    final = circuit.final_state_vector(qubit_order=qubits, dtype=np.complex128)
    register = onehot.register_index(space, np.arange(space.size))
    assert abs(abs(np.vdot(final[register], ideal)) - 1.0) < 1e-5  # up to the global (-1)^l

    result = gate_noise.run_experiment(config)
    rows = {(r["channel"], r["rate"]): r for r in result["rows"]}
    clean = rows[("none", 0.0)]
    # complex64 density matrix over ~1400 gates: float32 rounding of order 1e-5
    assert clean["pOpt"] == pytest.approx(clean["subspacePOpt"], abs=1e-4)
    assert clean["pOpt"] >= 1 - config.delta**2 - 1e-6  # the optimum is the marked placement
    for channel in gate_noise.CHANNELS:
        noisy = rows[(channel, 1e-2)]
        assert noisy["pOpt"] < clean["pOpt"] - 0.5  # deep multi-controlled gates: noise wins
        assert noisy["pOneHot"] < 1 - 1e-3
