"""The angles: a linear ramp ``gamma_j = (j + 1/2)/p * dgamma``,
``beta_j = -(1 - (j + 1/2)/p) * dbeta``, optionally refined by COBYLA (``ramp``: its two steps,
``cobyla``: every angle)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize

from greenshard.solvers.qaoa.engine import QAOAEngine
from greenshard.solvers.qaoa.options import QAOAOptions

OPTIMIZERS = ("none", "ramp", "cobyla")


def linear_ramp(
    depth: int, gamma_step: float, beta_step: float | None = None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """gamma_j = (j + 1/2)/p * gamma_step, beta_j = -(1 - (j + 1/2)/p) * beta_step."""
    frac = (np.arange(depth) + 0.5) / depth
    beta_step = gamma_step if beta_step is None else beta_step
    return frac * gamma_step, -(1.0 - frac) * beta_step


def schedule(
    engine: QAOAEngine, opts: QAOAOptions
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The linear ramp, refined by COBYLA when asked: ``ramp`` tunes its two steps, ``cobyla``
    every angle."""
    gammas, betas = linear_ramp(opts.depth, opts.ramp_gamma, opts.ramp_beta)
    if opts.optimizer not in OPTIMIZERS:
        raise ValueError(
            f"unknown optimizer {opts.optimizer!r}; use one of {', '.join(OPTIMIZERS)}"
        )
    if opts.optimizer == "none" or opts.max_evaluations < 2:
        return gammas, betas
    if opts.optimizer == "ramp":
        x0 = np.array([opts.ramp_gamma, opts.ramp_beta])

        def ramp_energy(x: npt.NDArray[np.float64]) -> float:
            return engine.energy(*linear_ramp(opts.depth, float(x[0]), float(x[1])))

        best = _cobyla(ramp_energy, x0, opts.max_evaluations, 0.2 * float(np.abs(x0).min()))
        return linear_ramp(opts.depth, float(best[0]), float(best[1]))
    p = opts.depth

    def energy(x: npt.NDArray[np.float64]) -> float:
        return engine.energy(x[:p], x[p:])

    best = _cobyla(energy, np.concatenate([gammas, betas]), opts.max_evaluations, 0.1)
    return best[:p], best[p:]


def _cobyla(
    objective: Callable[[npt.NDArray[np.float64]], float],
    x0: npt.NDArray[np.float64],
    max_evaluations: int,
    step: float,
) -> npt.NDArray[np.float64]:
    """COBYLA's best point, or x0 when it found nothing better."""
    start = objective(x0)
    result = minimize(
        objective, x0, method="COBYLA", options={"maxiter": max_evaluations - 1, "rhobeg": step}
    )
    return np.asarray(result.x if result.fun < start else x0, dtype=np.float64)
