"""The solver protocol and what every solver returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


class Solver(Protocol):
    """Solves a problem; deterministic for a given seed."""

    name: str

    def solve(self, problem: model.Problem) -> Solution: ...


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
