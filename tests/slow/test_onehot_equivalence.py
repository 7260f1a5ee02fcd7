"""The subspace simulator is the one-hot qubit circuit: qsim running the full S*K-qubit circuit
(W states, Z/CZ-power cost gates, ISWAP-power XY mixers, the coupled-constraint penalty as a
register diagonal) gives the same amplitudes on the one-hot states, to 1e-5, on 20 random
constrained instances of 9 to 20 qubits (held-out families and seeds, both mixers, random angles).
"""

from __future__ import annotations

import math

import cirq
import numpy as np
import pytest

from factories import CIRCUIT_SIZES, loose_held_out_families
from greenshard import instances, subspace
from greenshard.solvers import backends, onehot

SIZES = CIRCUIT_SIZES
FAMILIES = sorted(instances.HELD_OUT_FAMILIES)


def _cases() -> list[tuple[int, int, str, int, str]]:
    cases = []
    for i in range(20):
        shards, pools = SIZES[i % len(SIZES)]
        family = FAMILIES[i % len(FAMILIES)]
        mixer = onehot.MIXERS[(i // len(SIZES)) % 2]
        cases.append((shards, pools, family, instances.HELD_OUT_SEEDS[100 + i], mixer))
    return cases


@pytest.mark.slow
@pytest.mark.parametrize(("shards", "pools", "family", "seed", "mixer"), _cases())
def test_qsim_full_circuit_equals_the_subspace_simulator(
    shards: int, pools: int, family: str, seed: int, mixer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    loose_held_out_families(monkeypatch)
    problem = instances.family_problem(family, shards, pools, seed)
    space = subspace.PlacementSpace(problem)
    assert 0 < space.stats.count < space.size  # a penalty is on the diagonal
    sim = onehot.SubspaceSimulator(space, mixer=mixer, penalty=0.8)
    rng = np.random.default_rng(seed)
    depth = 3
    gammas, betas = rng.uniform(0.2, 4.0, depth), rng.uniform(-1.5, 1.5, depth)
    expected = sim.state(gammas, betas)

    qubits = onehot.register_qubits(shards, pools)
    backend = backends.Backend(backends.BackendOptions("qsim"))
    state = backend.run(onehot.initial_circuit(sim, qubits), cirq.ParamResolver({}), qubits)
    indices, _ = onehot.register_penalty_phase(sim, 0.0)
    np.testing.assert_allclose(np.abs(state[indices]), 1 / math.sqrt(space.size), atol=1e-6)
    for gamma, beta in zip(gammas, betas, strict=True):
        indices, phase = onehot.register_penalty_phase(sim, float(gamma))
        state[indices] *= phase
        layer = onehot.qubit_circuit_layer(sim, qubits, float(gamma), float(beta))
        assert all(len(op.qubits) <= 2 for op in layer.all_operations())
        state = backend.run(layer, cirq.ParamResolver({}), qubits, initial_state=state)
    assert shards * pools <= 20
    assert np.abs(state[indices] - expected).max() <= 1e-5
    # nothing leaked out of the one-hot subspace
    assert float(np.sum(np.abs(state[indices]) ** 2)) == pytest.approx(1.0, abs=1e-5)
