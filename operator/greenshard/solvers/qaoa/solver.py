"""QAOASolver: the engine's state at the scheduled angles, sampled and polished; the planner
verifies the answer and reads the state against the optimum (:class:`StateFigures`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from greenshard import hamiltonian, model, subspace
from greenshard.solvers import backends, base
from greenshard.solvers.qaoa.engine import QAOAEngine
from greenshard.solvers.qaoa.options import QAOAOptions
from greenshard.solvers.qaoa.sampling import (
    best_sampled,
    better,
    optimal_indices,
    polish,
    probability_of_indices,
    sample_indices,
    ties,
)
from greenshard.solvers.qaoa.schedule import schedule

FEASIBLE_COUNT_MAX = 1 << 24  # placements counted for the feasible-set ratio (a table scan)


@dataclass
class StateFigures:
    """What QAOA's state says about the optimum, once the planner knows it: the probability of
    the optimal placements (ties included) and its ratios to uniform sampling, and whether
    sampling found the optimum. Holds the state vector until then."""

    problem: model.Problem
    ham: hamiltonian.CostHamiltonian
    cost: npt.NDArray[np.float32]
    offset: float
    scale: float
    state: npt.NDArray[np.complex64] | None
    sampled: tuple[int, ...] | None
    feasible: int | None  # feasible placements, when counted

    def __call__(self, optimum: float, optimum_placement: tuple[int, ...]) -> dict[str, Any]:
        if self.state is None:
            raise RuntimeError("the QAOA state was already read against the optimum")
        optimal = optimal_indices(
            self.problem, self.ham, self.cost, optimum, self.offset, self.scale
        )
        p_opt = probability_of_indices(self.state, optimal)
        self.state = None  # the state is only needed for this
        figures: dict[str, Any] = {
            "probabilityOfOptimum": p_opt,
            "optimalPlacements": int(optimal.size),
            "samplingFoundOptimum": self.sampled is not None
            and ties(self.problem, self.sampled, optimum),
            "uniformRatio": p_opt * 2**self.ham.num_qubits / max(1, optimal.size),
            "tts99Shots": base.tts99(p_opt) if p_opt > 0 else None,
        }
        if self.feasible is not None:
            figures["feasibleSetRatio"] = p_opt * self.feasible / max(1, optimal.size)
        return figures


@dataclass
class QAOASolver:
    options: QAOAOptions = field(default_factory=QAOAOptions)
    name: str = "qaoa"

    def solve(self, problem: model.Problem) -> base.Answer:
        start = time.perf_counter()
        opts = self.options
        ham = hamiltonian.CostHamiltonian(problem)
        backend = backends.Backend(backends.BackendOptions(opts.backend, opts.threads))
        engine = QAOAEngine(ham, opts.depth, backend, opts.phase)
        gammas, betas = schedule(engine, opts)
        state = engine.state(gammas, betas)
        samples = sample_indices(state, opts.shots, np.random.default_rng(opts.seed))
        sampled = best_sampled(problem, ham, engine.cost, samples)
        details: dict[str, Any] = {
            "expectation": engine.expectation(state) * engine.scale + engine.offset,
            "gammas": [float(g) for g in gammas],
            "betas": [float(b) for b in betas],
            "ansatz": "binary-x",
            "backend": backend.name,
            "phase": engine.phase,
            "shots": opts.shots,
            "sampledFeasible": sampled is not None,
            "sampledPlacement": None if sampled is None else list(sampled),
        }
        feasible = None
        if problem.num_pools**problem.num_shards <= FEASIBLE_COUNT_MAX:
            feasible = subspace.PlacementSpace(problem).stats.count
            details["feasiblePlacements"] = feasible
        placement, method = sampled, "qaoa-sample"
        if opts.polish:
            polished = polish(problem, ham, engine.cost, samples)
            if model.feasible(problem, polished) and (
                sampled is None or better(problem, polished, sampled)
            ):
                placement, method = polished, "qaoa+local-search"
        details["polishChangedAnswer"] = method == "qaoa+local-search"
        figures = StateFigures(
            problem, ham, engine.cost, engine.offset, engine.scale, state, sampled, feasible
        )
        return base.Answer(
            placement,
            method,
            self.name,
            no_answer="QAOA sampled no feasible placement",
            tie_rule=True,
            qubits=ham.num_qubits,
            depth=opts.depth,
            evaluations=engine.evaluations,
            wall_seconds=time.perf_counter() - start,
            details=details,
            against=figures,
        )
