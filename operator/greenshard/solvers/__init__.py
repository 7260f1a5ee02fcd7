"""Solvers: one protocol (:class:`base.Solver`); :mod:`.registry` makes one by name.

:mod:`.exact` (the oracle), :mod:`.classical` (genetic, annealing) over :mod:`.local_search`,
:mod:`.qaoa` (the quantum ansatz on a :mod:`.backends` state-vector simulator).
"""
