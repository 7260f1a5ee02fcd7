"""The solver protocol: what a solver answers, and the verified Solution the planner makes of it.

Solvers only solve: an :class:`Answer` is a solver's own best placement (None, or infeasible,
when it found none) with how it was found. :func:`greenshard.planner.verify` checks it against
the exact optimum once: the exact fallback, the tie rule, the gap, and the solver's figures that
need the optimum (:attr:`Answer.against`). The exact solver is the oracle: its answer is already
a :class:`Solution`, proven against itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from greenshard import model


@dataclass(frozen=True)
class Solution:
    """A placement and how it was found.

    ``emissions`` is always recomputed from the cost-model formula, never a solver's energy.
    ``optimum``/``gap`` are filled in when the exact optimum is known.
    """

    placement: tuple[int, ...]
    emissions: float
    method: str
    solver: str
    optimum: float | None = None
    optimum_placement: tuple[int, ...] | None = None
    gap: float | None = None
    qubits: int = 0
    depth: int = 0
    evaluations: int = 0
    wall_seconds: float = 0.0
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_optimal(self) -> bool:
        """True when this is the exact optimum under the tie rule (same placement)."""
        return self.optimum_placement is not None and self.placement == self.optimum_placement

    def verified_against(self, exact: Solution) -> Solution:
        """This solution with optimum and gap taken from an exact one (gap unknown when that
        one stopped at the time bound before proving its optimum)."""
        if "timeBound" in exact.details:
            return replace(self, optimum=None, optimum_placement=None, gap=None)
        return replace(
            self,
            optimum=exact.emissions,
            optimum_placement=exact.placement,
            gap=relative_gap(self.emissions, exact.emissions),
        )


#: A solver's figures that need the exact optimum (e.g. QAOA's probability of the optimal
#: placements): called once by the planner with the optimum's emissions and placement, it answers
#: details to add. It holds what it needs (a state vector) only until then.
AgainstOptimum = Callable[[float, tuple[int, ...]], Mapping[str, Any]]


@dataclass(frozen=True)
class Answer:
    """What a solver found, before verification.

    ``placement`` is the solver's best: None, or an infeasible placement, when it found no
    feasible one (the planner then reports the exact optimum as ``exact-fallback`` with
    ``no_answer`` as the fallbackReason). ``tie_rule``: a placement that ties the optimum is
    reported as the optimum's (the lexicographically first). Never sent between processes:
    ``against`` may hold a state vector.
    """

    placement: tuple[int, ...] | None
    method: str
    solver: str
    no_answer: str = ""
    tie_rule: bool = False
    qubits: int = 0
    depth: int = 0
    evaluations: int = 0
    wall_seconds: float = 0.0
    details: Mapping[str, Any] = field(default_factory=dict)
    against: AgainstOptimum | None = field(default=None, repr=False, compare=False)


class Solver(Protocol):
    """Solves a problem; deterministic for a given seed. The exact solver answers a proven
    :class:`Solution`; every other solver an :class:`Answer` for the planner to verify."""

    name: str

    def solve(self, problem: model.Problem) -> Answer | Solution: ...


def relative_gap(chosen: float, optimum: float) -> float:
    """(chosen - optimum) / optimum, exactly 0 within the tie tolerance."""
    if model.is_tie(chosen, optimum):
        return 0.0
    if optimum <= 0.0:
        return float("inf")
    return (chosen - optimum) / optimum


def make_solution(
    problem: model.Problem, placement: Sequence[int], method: str, solver: str, **stats: Any
) -> Solution:
    """A Solution whose emissions come from the formula, after checking feasibility."""
    placement = tuple(int(k) for k in placement)
    reasons = model.violations(problem, placement)
    if reasons:
        raise ValueError(f"{solver} returned an infeasible placement: {'; '.join(reasons)}")
    return Solution(
        placement=placement,
        emissions=model.emissions(problem, placement),
        method=method,
        solver=solver,
        **stats,
    )


def tts99(p: float) -> float:
    """Shots until an optimal sample with probability 0.99: log(0.01) / log(1 - p)."""
    if p >= 0.99:
        return 1.0
    if p <= 0:
        return math.inf
    return math.log(0.01) / math.log1p(-p)
