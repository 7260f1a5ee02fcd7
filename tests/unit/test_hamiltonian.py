"""The encoding: feasible energy == emissions (+0), infeasible above feasible, ground state ==
optimum, Ising/QUBO equal to the diagonal, decode(encode(x)) == x."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from factories import random_problem
from greenshard import hamiltonian, model
from greenshard.solvers import exact


@st.composite
def problems(draw: st.DrawFn) -> model.Problem:
    seed = draw(st.integers(0, 2**32 - 1))
    shards = draw(st.integers(1, 4))
    pools = draw(st.integers(1, 5))
    hops = draw(st.one_of(st.none(), st.integers(0, 2)))
    rng = np.random.default_rng(seed)
    return random_problem(
        rng, shards, pools, regions=draw(st.integers(1, 3)), hops=hops, tight=draw(st.booleans())
    )


@settings(max_examples=60, deadline=None)
@given(problems())
def test_energy_is_emissions_for_feasible_and_higher_for_infeasible(problem: model.Problem) -> None:
    ham = hamiltonian.CostHamiltonian(problem)
    assert ham.num_qubits == hamiltonian.qubit_count(problem.num_shards, problem.num_pools)
    diag = ham.diagonal()
    assert diag.shape == (2**ham.num_qubits,)
    feasible, infeasible = [], []
    for index in range(diag.size):
        bits = hamiltonian.index_to_bits(index, ham.num_qubits)
        assert ham.energy(bits) == pytest.approx(diag[index], rel=1e-12)
        placement = ham.decode(bits)
        if placement is not None and model.feasible(problem, placement):
            assert diag[index] == pytest.approx(model.emissions(problem, placement), rel=1e-12)
            feasible.append(diag[index])
        else:
            infeasible.append(diag[index])
    if feasible and infeasible:
        assert min(infeasible) > max(feasible)
    if feasible:
        best = exact.solve_exact(problem)
        assert diag.min() == pytest.approx(best.emissions, rel=1e-12)
        # Index order is lexicographic placement order: the first index within the tie
        # tolerance of the ground energy is the optimum under the tie rule.
        tied = np.nonzero(diag <= diag.min() + model.TIE_RTOL * abs(diag.min()))[0]
        assert ham.decode(hamiltonian.index_to_bits(int(tied[0]), ham.num_qubits)) == (
            best.placement
        )


@settings(max_examples=40, deadline=None)
@given(problems())
def test_ising_polynomial_reproduces_the_diagonal(problem: model.Problem) -> None:
    ham = hamiltonian.CostHamiltonian(problem)
    diag = ham.diagonal()
    terms = ham.ising()
    for index in range(diag.size):
        bits = hamiltonian.index_to_bits(index, ham.num_qubits)
        assert terms.energy(bits) == pytest.approx(diag[index], rel=1e-9, abs=1e-9)


def test_two_pools_without_binding_limits_is_a_qubo() -> None:
    rng = np.random.default_rng(2)
    problem = random_problem(rng, 5, 2)
    ham = hamiltonian.CostHamiltonian(problem)
    assert not ham.has_global_penalty
    terms = ham.ising()
    assert terms.max_order == 2
    # nearest-neighbour couplings only: a chain
    for t in range(terms.masks.size):
        qs = terms.qubits(t)
        assert len(qs) == 1 or qs[1] - qs[0] == 1
    q, offset = terms.to_qubo()
    diag = ham.diagonal()
    for index in range(diag.size):
        x = np.array(hamiltonian.index_to_bits(index, ham.num_qubits))
        assert float(x @ q @ x + offset) == pytest.approx(diag[index], rel=1e-9)


def test_higher_order_terms_refuse_to_become_a_qubo() -> None:
    problem = random_problem(np.random.default_rng(4), 3, 4)
    with pytest.raises(ValueError, match="not a QUBO"):
        hamiltonian.CostHamiltonian(problem).ising().to_qubo()


@pytest.mark.parametrize(
    ("shards", "pools", "qubits"),
    [(8, 2, 8), (8, 3, 16), (8, 4, 16), (8, 5, 24), (10, 12, 40), (3, 1, 3)],
)
def test_qubit_count_formula(shards: int, pools: int, qubits: int) -> None:
    assert hamiltonian.qubit_count(shards, pools) == qubits


def test_decode_inverts_encode_and_rejects_unused_codes() -> None:
    problem = random_problem(np.random.default_rng(9), 3, 3)
    ham = hamiltonian.CostHamiltonian(problem)
    for placement in [(0, 1, 2), (2, 2, 0), (1, 0, 1)]:
        assert ham.decode(ham.encode(placement)) == placement
    assert ham.decode((1, 1, 0, 0, 0, 0)) is None  # code 3 with K = 3
