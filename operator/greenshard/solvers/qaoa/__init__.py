"""QAOA over a state-vector backend (qsim by default).

The ansatz is ``prod_j exp(-i beta_j sum X) exp(-i gamma_j C) |+>^n`` with C the cost diagonal of
:class:`greenshard.hamiltonian.CostHamiltonian`, normalised by the largest coefficient of its local
Ising polynomial. Starting in ``|+>``, the highest state of ``sum X``, minimisation follows the
adiabatic path from ``-sum X`` to C, so the betas are negative in this sign convention.

Two ways to apply the phase ``exp(-i gamma C)`` (:func:`choose_phase` picks one for ``auto``):

* ``diagonal``: numpy multiplies the state by ``cos - i sin`` of the precomputed float32 diagonal
  (chunked, on every core; memory and hop penalties included); the mixer is a cirq circuit with a
  sympy exponent, run on the backend;
* ``gates``: the whole ansatz as one cirq circuit, the phase as Z/ZZ.. rotations of the local
  Ising terms, one sympy exponent each (only when no global penalty can bind).

Both give the same state up to a global phase. The energy is ``|psi|^2 . c`` in float32 chunks
summed in float64.

Parameters: a linear ramp ``gamma_j = (j + 1/2)/p * dgamma``, ``beta_j = -(1 - (j + 1/2)/p) *
dbeta``, fitted once on synthetic instances and reused: p = 100, dgamma = 0.3, dbeta = 0.1. On
the first 20 feasible seeds of every size from 8 to 20 qubits, one such state put a mean 2-37%
probability on the optimal placements, and 16384 shots contained one in 260 of 260 instances
(259 of 260 on seeds from 1000; see README "Benchmark"). A COBYLA refinement of the two steps
(``optimizer="ramp"``) or of every angle (``"cobyla"``) is optional: it lowers the energy, not
reliably the chance of the optimum.

The answer is the best feasible placement among the samples, then a local search (single, pair
and run moves) from the lowest-cost samples that may improve it; the details say which of the two
found it. The planner verifies the answer (:func:`greenshard.planner.verify`): a placement that
ties the optimum is reported as the tie rule's (lexicographically first) optimal placement, and
:class:`.solver.StateFigures` reads the state's probability of the optimum once it is known.

Files: :mod:`.options`, :mod:`.engine` (states and energies), :mod:`.schedule` (the angles),
:mod:`.sampling` (answers out of a state), :mod:`.solver` (QAOASolver: the whole run).
"""
