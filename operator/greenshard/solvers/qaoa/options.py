"""QAOAOptions: depth, shots, seed, backend, phase mode, optimizer, ramp steps, polish, threads."""

from __future__ import annotations

from dataclasses import dataclass

#: Linear-ramp steps (gamma in units of the largest local coefficient); see the package docstring.
DEFAULT_RAMP_GAMMA = 0.3
DEFAULT_RAMP_BETA = 0.1
DEFAULT_DEPTH = 100
DEFAULT_SHOTS = 1 << 14


@dataclass(frozen=True)
class QAOAOptions:
    depth: int = DEFAULT_DEPTH
    shots: int = DEFAULT_SHOTS
    seed: int = 0
    backend: str = "qsim"
    phase: str = "auto"  # auto | diagonal | gates
    optimizer: str = "none"  # none | ramp | cobyla
    max_evaluations: int = 20
    ramp_gamma: float = DEFAULT_RAMP_GAMMA
    ramp_beta: float = DEFAULT_RAMP_BETA
    polish: bool = True
    threads: int = 0
