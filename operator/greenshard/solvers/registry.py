"""Every solver by name: :func:`make_solver` is the one place a name becomes a solver.

``ALGORITHMS`` are the names a user may ask for (CLI ``--solver``, InferenceDeployment
``spec.solver.algorithm``); ``auto`` is not a solver but the planner's policy
(:func:`greenshard.planner.solve`). The registry also holds the exact solver's methods by name
(``bruteforce``, ``milp``) that the benchmark and the experiments compare. A solver's answer is
verified by the planner (:func:`greenshard.planner.verify`), not here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from greenshard import hamiltonian, memory, model
from greenshard.errors import GreenShardError, InputError
from greenshard.solvers import base, classical, exact, onehot, threshold
from greenshard.solvers.qaoa.options import QAOAOptions
from greenshard.solvers.qaoa.solver import QAOASolver

ALGORITHMS = ("auto", "qaoa", "exact", "genetic", "anneal")
#: QAOA ansatze: ``threshold`` (one-of-K per shard, threshold phase and Grover mixer on the
#: fixed-point schedule, solvers/threshold.py), ``onehot`` (one-of-K per shard, XY mixer,
#: solvers/onehot.py) and ``binary`` (ceil(log2 K) qubits a shard, X mixer, solvers/qaoa/).
#: The default was chosen from the held-out measurements in docs/solving.md.
ANSATZE = ("threshold", "onehot", "binary")
ONE_HOT_ANSATZE = ("threshold", "onehot")  # states over the K**S placements
DEFAULT_ANSATZ = "threshold"
DEFAULT_MAX_QUBITS = 20
MAX_QUBITS = 28  # 2**28 amplitudes: 5**12 = 244,140,625 placements fit


@dataclass(frozen=True)
class SolverConfig:
    """What to solve with. The defaults are the InferenceDeployment CRD's spec.solver defaults
    (tests/unit/test_solver_defaults.py holds them equal): ``greenshard plan`` and the operator
    run the same thing."""

    algorithm: str = "auto"
    ansatz: str = DEFAULT_ANSATZ
    mixer: str = onehot.DEFAULT_MIXER
    depth: int = onehot.DEFAULT_DEPTH
    shots: int = onehot.DEFAULT_SHOTS
    seed: int = 0
    max_qubits: int = DEFAULT_MAX_QUBITS
    backend: str = "qsim"
    optimizer: str = "none"
    max_evaluations: int = 20
    threads: int = 0  # QAOA's CPU threads; 0: every available core


#: spec.solver field -> (SolverConfig attribute, type, allowed values or (min, max))
SPEC_FIELDS: Mapping[str, tuple[str, type, tuple[Any, ...]]] = {
    "algorithm": ("algorithm", str, ALGORITHMS),
    "ansatz": ("ansatz", str, ANSATZE),
    "mixer": ("mixer", str, onehot.MIXERS),
    "depth": ("depth", int, (1, 1000)),
    "shots": ("shots", int, (1, 100_000)),
    "seed": ("seed", int, (0, 2**31 - 1)),
    "maxQubits": ("max_qubits", int, (1, MAX_QUBITS)),
}


def config_from_spec(spec_solver: Mapping[str, Any] | None, **overrides: Any) -> SolverConfig:
    """An InferenceDeployment's ``spec.solver`` with the CRD's defaults for what it leaves out,
    then ``overrides`` (CLI flags that were given; None means not given). Bad values raise an
    InputError that names the field."""
    values: dict[str, Any] = {}
    for key, raw in (spec_solver or {}).items():
        if key not in SPEC_FIELDS:
            raise InputError(f"spec.solver.{key}", f"unknown field; use {', '.join(SPEC_FIELDS)}")
        attr, kind, allowed = SPEC_FIELDS[key]
        if kind is int:
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise InputError(f"spec.solver.{key}", f"must be an integer (got {raw!r})")
            if not allowed[0] <= raw <= allowed[1]:
                raise InputError(
                    f"spec.solver.{key}", f"must be {allowed[0]}..{allowed[1]} (got {raw})"
                )
        elif raw not in allowed:
            raise InputError(f"spec.solver.{key}", f"use one of {', '.join(allowed)} (got {raw!r})")
        values[attr] = raw
    values.update({k: v for k, v in overrides.items() if v is not None})
    return SolverConfig(**values)


def state_qubits(problem: model.Problem, config: SolverConfig) -> int:
    """log2 of the state's amplitudes, rounded up: what maxQubits bounds. Binary: the qubits;
    one-hot: ceil(log2 K**S) (its circuit has S*K qubits but the state lives in K**S)."""
    if config.ansatz in ONE_HOT_ANSATZE:
        return math.ceil(math.log2(problem.num_pools**problem.num_shards))
    return hamiltonian.qubit_count(problem.num_shards, problem.num_pools)


def qaoa_memory(problem: model.Problem, config: SolverConfig) -> int:
    """About the bytes a QAOA solve of this problem needs with this config's ansatz."""
    if config.ansatz == "threshold":
        return memory.threshold_bytes(problem.num_pools**problem.num_shards)
    if config.ansatz == "onehot":
        return memory.onehot_bytes(problem.num_pools**problem.num_shards)
    return memory.qaoa_bytes(hamiltonian.qubit_count(problem.num_shards, problem.num_pools))


def state_words(problem: model.Problem, config: SolverConfig) -> str:
    if config.ansatz == "threshold":
        placements = problem.num_pools**problem.num_shards
        return (
            f"placement table of {problem.num_pools}**{problem.num_shards} = {placements} "
            "placements"
        )
    if config.ansatz in ONE_HOT_ANSATZE:
        amplitudes = problem.num_pools**problem.num_shards
        return (
            f"one-hot state of {problem.num_pools}**{problem.num_shards} = {amplitudes} amplitudes"
        )
    return f"{hamiltonian.qubit_count(problem.num_shards, problem.num_pools)} qubits"


@dataclass
class BoundedQAOA:
    """QAOA, refused before anything is allocated when the encoding needs more qubits than
    ``max_qubits`` (a state vector of 2^qubits amplitudes: 40 qubits would be terabytes)."""

    config: SolverConfig
    name: str = "qaoa"

    def solve(self, problem: model.Problem) -> base.Answer | base.Solution:
        qubits = state_qubits(problem, self.config)
        if qubits > self.config.max_qubits:
            need = qaoa_memory(problem, self.config)
            raise GreenShardError(
                f"qaoa ({self.config.ansatz} ansatz) needs a {state_words(problem, self.config)} "
                f"for {problem.num_shards} shards on {problem.num_pools} pools (about "
                f"{_size(need)}), over maxQubits={self.config.max_qubits}; use the auto or exact "
                "solver, or fewer shards"
            )
        return _qaoa(self.config).solve(problem)


def _size(num_bytes: int) -> str:
    for unit, shift in (("PiB", 50), ("TiB", 40), ("GiB", 30), ("MiB", 20)):
        if num_bytes >= 1 << shift:
            return f"{num_bytes / (1 << shift):.0f} {unit}"
    return f"{num_bytes} B"


def _qaoa(config: SolverConfig) -> base.Solver:
    if config.ansatz not in ANSATZE:
        raise ValueError(f"unknown ansatz {config.ansatz!r}; use one of {', '.join(ANSATZE)}")
    if config.ansatz == "threshold":
        return threshold.ThresholdQAOASolver(
            threshold.ThresholdOptions(shots=config.shots, seed=config.seed)
        )
    if config.ansatz == "onehot":
        return onehot.OneHotQAOASolver(
            onehot.OneHotOptions(
                depth=config.depth,
                shots=config.shots,
                seed=config.seed,
                mixer=config.mixer,
                threads=config.threads,
            )
        )
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
