"""Reproducible experiments behind README "Results": ``greenshard experiment static|dynamic|noisy``.

Each experiment is pure domain code plus matplotlib (Agg): it writes ``<out>/<name>/report.md``
with tables and PNG figures, deterministic by seed (timings and memory excepted).
"""

from __future__ import annotations

import importlib
from pathlib import Path

NAMES = ("static", "dynamic", "noisy")


def run(name: str, out: Path, seed: int = 0, quick: bool = False) -> Path:
    """Runs one experiment into ``out/name`` and returns the path of its report."""
    if name not in NAMES:
        raise ValueError(f"unknown experiment {name!r}; use one of {', '.join(NAMES)}")
    module = importlib.import_module(f"greenshard.experiments.{name}")
    path: Path = module.run(out / name, seed=seed, quick=quick)
    return path
