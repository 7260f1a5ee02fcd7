"""Every solver by name: :func:`make_solver` is the one place a name becomes a solver.

``ALGORITHMS`` are the names a user may ask for (CLI ``--solver``, InferenceDeployment
``spec.solver.algorithm``); ``auto`` is not a solver but the planner's policy
(:func:`greenshard.planner.solve`). The registry also holds the exact solver's methods by name
(``bruteforce``, ``milp``) that the benchmark and the experiments compare.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from greenshard import hamiltonian, model
from greenshard.errors import GreenShardError
from greenshard.solvers import base, classical, exact
from greenshard.solvers.qaoa.options import DEFAULT_DEPTH, DEFAULT_SHOTS, QAOAOptions
from greenshard.solvers.qaoa.solver import QAOASolver

ALGORITHMS = ("auto", "qaoa", "exact", "genetic", "anneal")
DEFAULT_MAX_QUBITS = 20


@dataclass(frozen=True)
class SolverConfig:
    algorithm: str = "auto"
    depth: int = DEFAULT_DEPTH
    shots: int = DEFAULT_SHOTS
    seed: int = 0
    max_qubits: int = DEFAULT_MAX_QUBITS
    backend: str = "qsim"
    optimizer: str = "none"
    max_evaluations: int = 20
    threads: int = 0  # QAOA's CPU threads; 0: every available core


@dataclass
class BoundedQAOA:
    """QAOA, refused before anything is allocated when the encoding needs more qubits than
    ``max_qubits`` (a state vector of 2^qubits amplitudes: 40 qubits would be terabytes)."""

    config: SolverConfig
    name: str = "qaoa"

    def solve(self, problem: model.Problem) -> base.Solution:
        qubits = hamiltonian.qubit_count(problem.num_shards, problem.num_pools)
        if qubits > self.config.max_qubits:
            need = (1 << qubits) * 16  # one complex64 state vector, the least a simulator holds
            raise GreenShardError(
                f"qaoa needs {qubits} qubits for {problem.num_shards} shards on "
                f"{problem.num_pools} pools (a {_size(need)} state vector), over maxQubits="
                f"{self.config.max_qubits}; use the auto or exact solver, or fewer shards"
            )
        return _qaoa(self.config).solve(problem)


def _size(num_bytes: int) -> str:
    for unit, shift in (("PiB", 50), ("TiB", 40), ("GiB", 30), ("MiB", 20)):
        if num_bytes >= 1 << shift:
            return f"{num_bytes / (1 << shift):.0f} {unit}"
    return f"{num_bytes} B"


def _qaoa(config: SolverConfig) -> QAOASolver:
    return QAOASolver(
        QAOAOptions(
            depth=config.depth,
            shots=config.shots,
            seed=config.seed,
            backend=config.backend,
            optimizer=config.optimizer,
            max_evaluations=config.max_evaluations,
            threads=config.threads,
        )
    )


REGISTRY: Mapping[str, Callable[[SolverConfig], base.Solver]] = {
    "qaoa": BoundedQAOA,
    "exact": lambda _: exact.ExactSolver(),
    "bruteforce": lambda _: exact.ExactSolver("bruteforce"),
    "milp": lambda _: exact.ExactSolver("milp"),
    "genetic": lambda config: classical.GeneticSolver(seed=config.seed),
    "anneal": lambda config: classical.AnnealSolver(seed=config.seed),
}


def make_solver(config: SolverConfig) -> base.Solver:
    factory = REGISTRY.get(config.algorithm)
    if factory is None:
        raise ValueError(
            f"unknown solver {config.algorithm!r}; use one of {', '.join(REGISTRY)} "
            "(auto is the planner's choice: greenshard.planner.solve)"
        )
    return factory(config)
