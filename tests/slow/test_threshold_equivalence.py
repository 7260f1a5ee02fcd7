"""The two-level simulation of threshold QAOA is the qubit circuit: qsim running the full S*K-qubit
circuit (W states and their inverse, X, a multi-controlled Z power: the Grover mixer; the
threshold phase as a register diagonal) gives the same amplitudes on the one-hot states, to 1e-5,
on 20 held-out instances of 9 to 20 qubits, on the fixed-point schedule and on random angles."""

from __future__ import annotations

import cirq
import numpy as np
import pytest

from factories import CIRCUIT_SIZES, loose_held_out_families
from greenshard import instances, subspace
from greenshard.solvers import backends, onehot, threshold

FAMILIES = sorted(instances.HELD_OUT_FAMILIES)
MAX_LAYERS = 6


def _cases() -> list[tuple[int, int, str, int, bool]]:
    cases = []
    for i in range(20):
        shards, pools = CIRCUIT_SIZES[i % len(CIRCUIT_SIZES)]
        family = FAMILIES[i % len(FAMILIES)]
        cases.append((shards, pools, family, instances.HELD_OUT_SEEDS[300 + i], i % 2 == 0))
    return cases


@pytest.mark.slow
@pytest.mark.parametrize(("shards", "pools", "family", "seed", "schedule"), _cases())
def test_qsim_full_circuit_equals_the_two_level_simulation(
    shards: int, pools: int, family: str, seed: int, schedule: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    loose_held_out_families(monkeypatch)
    problem = instances.family_problem(family, shards, pools, seed)
    space = subspace.PlacementSpace(problem)
    everything = np.arange(space.size)
    feasible = space.feasible_of(everything)
    assert 0 < space.stats.count < space.size
    cut = float(np.median(space.emissions_of(everything)[feasible]))
    mask = threshold.Marked(space).mask(cut, inclusive=True)
    assert 0 < mask.sum() < space.size
    rng = np.random.default_rng(seed)
    if schedule:  # the production schedule's first layers
        length = threshold.fixed_point_length(space.size, threshold.DEFAULT_DELTA)
        alphas, betas = threshold.fixed_point_angles(length, threshold.DEFAULT_DELTA)
        alphas, betas = alphas[:MAX_LAYERS], betas[:MAX_LAYERS]
    else:
        alphas, betas = rng.uniform(-np.pi, np.pi, 3), rng.uniform(-np.pi, np.pi, 3)
    expected = threshold.state_vector(mask, threshold.evolve_two_level(mask.mean(), alphas, betas))
    assert np.abs(expected - threshold.evolve_vector(mask, alphas, betas)).max() < 1e-12

    qubits = onehot.register_qubits(shards, pools)
    backend = backends.Backend(backends.BackendOptions("qsim"))
    prep = cirq.Circuit(
        onehot.w_state_ops(qubits[s * pools : (s + 1) * pools]) for s in range(shards)
    )
    state = backend.run(prep, cirq.ParamResolver({}), qubits)
    indices = onehot.register_index(space, everything)
    marked = indices[mask]
    for alpha, beta in zip(alphas.tolist(), betas.tolist(), strict=True):
        state[marked] *= np.exp(1j * beta)  # exp(i beta P_th): the oracle, a register diagonal
        mixer = threshold.grover_mixer_circuit(shards, pools, alpha)
        state = backend.run(mixer, cirq.ParamResolver({}), qubits, initial_state=state)
        state = -state  # the schedule's convention: -S_s(alpha) S_t(beta)
    assert shards * pools <= 20
    assert np.abs(state[indices] - expected).max() <= 1e-5
    assert float(np.sum(np.abs(state[indices]) ** 2)) == pytest.approx(1.0, abs=1e-5)
