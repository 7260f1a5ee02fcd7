"""QAOASolver: the engine's state at the scheduled angles, sampled, polished, verified exactly."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from greenshard import hamiltonian, model, subspace
from greenshard.solvers import backends, base, exact
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
class QAOASolver:
    options: QAOAOptions = field(default_factory=QAOAOptions)
    name: str = "qaoa"

    def solve(self, problem: model.Problem) -> base.Solution:
        start = time.perf_counter()
        opts = self.options
        ham = hamiltonian.CostHamiltonian(problem)
        backend = backends.Backend(backends.BackendOptions(opts.backend, opts.threads))
        engine = QAOAEngine(ham, opts.depth, backend, opts.phase)
        gammas, betas = schedule(engine, opts)
        state = engine.state(gammas, betas)
        samples = sample_indices(state, opts.shots, np.random.default_rng(opts.seed))
        reference = exact.solve_exact(problem)
        optimum = reference.emissions
        sampled = best_sampled(problem, ham, engine.cost, samples)
        optimal = optimal_indices(problem, ham, engine.cost, optimum, engine.offset, engine.scale)
        details: dict[str, Any] = {
            "probabilityOfOptimum": probability_of_indices(state, optimal),
            "optimalPlacements": int(optimal.size),
            "expectation": engine.expectation(state) * engine.scale + engine.offset,
            "gammas": [float(g) for g in gammas],
            "betas": [float(b) for b in betas],
            "ansatz": "binary-x",
            "backend": backend.name,
            "phase": engine.phase,
            "shots": opts.shots,
            "sampledFeasible": sampled is not None,
            "sampledPlacement": None if sampled is None else list(sampled),
            "samplingFoundOptimum": sampled is not None and ties(problem, sampled, optimum),
        }
        details["uniformRatio"] = (
            details["probabilityOfOptimum"] * 2**ham.num_qubits / max(1, optimal.size)
        )
        if problem.num_pools**problem.num_shards <= FEASIBLE_COUNT_MAX:
            feasible = subspace.PlacementSpace(problem).stats.count
            details["feasiblePlacements"] = feasible
            details["feasibleSetRatio"] = (
                details["probabilityOfOptimum"] * feasible / max(1, optimal.size)
            )
        placement, method = sampled, "qaoa-sample"
        if opts.polish:
            polished = polish(problem, ham, engine.cost, samples)
            if model.feasible(problem, polished) and (
                sampled is None or better(problem, polished, sampled)
            ):
                placement, method = polished, "qaoa+local-search"
        details["polishChangedAnswer"] = method == "qaoa+local-search"
        if placement is None:
            method = "exact-fallback"
            details["fallbackReason"] = "QAOA sampled no feasible placement"
            placement = reference.placement
        elif placement != reference.placement and ties(problem, placement, optimum):
            details["tieRule"] = (
                f"{list(placement)} ties the optimum; reporting the "
                "lexicographically first optimal placement"
            )
            placement = reference.placement
        solution = base.make_solution(
            problem,
            placement,
            method,
            self.name,
            qubits=ham.num_qubits,
            depth=opts.depth,
            evaluations=engine.evaluations,
            wall_seconds=time.perf_counter() - start,
            details=details,
        )
        return solution.verified_against(reference)
