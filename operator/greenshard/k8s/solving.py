"""Solving off the event loop, every solve under one time bound and a memory bound.

Plans are computed in one long-lived child process (spawned once, so qsim and cirq are imported
once). In the child, one deadline (``timeout_seconds`` from when it starts on a plan) bounds
every solve: the requested solver, the exact reference and fallback, and the carbon-unaware
baseline; the child reports what it has as it goes (a first feasible placement, the exact
answer, the requested solver's answer, the baseline). When the deadline passes, or the child's
resident memory passes ``memory_bytes``, the child is killed (and respawned for the next plan)
and the best answer received is used, saying why in ``solver.fallbackReason``: the exact optimum
(gap 0) if it came in time, else the best placement found with its proven gap, or ``gap``
unknown. QAOA that cannot fit the memory bound is not even tried.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import time
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

from greenshard import memory, model, planner
from greenshard.errors import (
    DeadlineExceededError,
    GreenShardError,
    InfeasibleError,
    NoCandidatePoolError,
)
from greenshard.solvers import registry
from greenshard.solvers.registry import SolverConfig

START_SECONDS = 120.0  # a fresh child imports numpy, scipy, cirq and qsim before it starts
GRACE_SECONDS = 0.5  # for the child's last message after its own deadline


def _worker(conn: Connection) -> None:  # pragma: no cover - runs in the child
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        problem, config, seconds = message
        conn.send(("started",))
        try:
            planner.solve_within(problem, config, time.monotonic() + seconds, conn.send)
        except DeadlineExceededError as exc:
            conn.send(("deadline", str(exc)))
        except GreenShardError as exc:
            conn.send(("domain", type(exc).__name__, str(exc)))
        except Exception as exc:  # reported to the parent as a crash
            conn.send(("crash", type(exc).__name__, str(exc)))


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _domain_error(name: str, message: str) -> GreenShardError:
    kinds: dict[str, type[GreenShardError]] = {
        "InfeasibleError": InfeasibleError,
        "NoCandidatePoolError": NoCandidatePoolError,
    }
    return kinds.get(name, GreenShardError)(message)


class SolverRunner:
    def __init__(self, timeout_seconds: float = 30.0, memory_bytes: int = 2 << 30) -> None:
        self.timeout_seconds = timeout_seconds
        self.memory_bytes = memory_bytes
        self._ctx = mp.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None
        self._lock = asyncio.Lock()

    def _ensure(self) -> Connection:
        if self._proc is None or not self._proc.is_alive() or self._conn is None:
            parent, child = self._ctx.Pipe()
            self._proc = self._ctx.Process(
                target=_worker, args=(child,), daemon=True, name="greenshard-solver"
            )
            with memory.hugepage_children():  # qsim's buffers in 2 MiB pages: solvers/backends.py
                self._proc.start()
            child.close()
            self._conn = parent
        return self._conn

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(5)
        self._proc, self._conn = None, None

    def close(self) -> None:
        if self._conn is not None and self._proc is not None and self._proc.is_alive():
            try:
                self._conn.send(None)
                self._proc.join(2)
            except (OSError, ValueError):
                pass
        self._kill()

    def qaoa_fits(self, problem: model.Problem, config: SolverConfig) -> str:
        """'' when a QAOA solve fits the memory bound, else the reason it does not."""
        if config.algorithm not in ("qaoa", "auto"):
            return ""
        too_big = registry.state_qubits(problem, config) > config.max_qubits
        if config.algorithm == "auto" and too_big:
            return ""
        need = registry.qaoa_memory(problem, config)
        if need > self.memory_bytes:
            return (
                f"QAOA ({config.ansatz} ansatz) on {problem.num_shards} shards x "
                f"{problem.num_pools} pools needs about {need / 2**30:.1f} GiB, over the "
                f"solver memory bound of {self.memory_bytes / 2**30:.1f} GiB"
            )
        return ""

    async def plan(self, problem: model.Problem, config: SolverConfig) -> planner.Plan:
        """Plan in the child under the time bound; past it, or past the memory bound, the best
        answer the child sent is used and ``solver.fallbackReason`` says why."""
        reason = self.qaoa_fits(problem, config)
        run = replace(config, algorithm="exact") if reason else config
        async with self._lock:
            return await self._plan_in_child(problem, run, reason)

    async def _plan_in_child(
        self, problem: model.Problem, config: SolverConfig, reason: str
    ) -> planner.Plan:
        conn = self._ensure()
        conn.send((problem, config, self.timeout_seconds))
        got: dict[str, Any] = {}
        started: float | None = None
        sent = time.monotonic()
        stop = ""
        while True:
            now = time.monotonic()
            if started is None and now - sent > START_SECONDS:
                self._kill()
                raise GreenShardError(f"the solver process did not start in {START_SECONDS:g} s")
            if started is not None and now - started > self.timeout_seconds + GRACE_SECONDS:
                self._kill()
                stop = (
                    f"{config.algorithm} ran past the {self.timeout_seconds:g} s solver time bound"
                )
                break
            rss = _rss_bytes(self._proc.pid) if self._proc is not None else 0
            if rss > self.memory_bytes:
                self._kill()
                stop = (
                    f"{config.algorithm} used {rss / 2**30:.1f} GiB, over the "
                    f"{self.memory_bytes / 2**30:.1f} GiB solver memory bound"
                )
                break
            if not conn.poll():
                await asyncio.sleep(0.02)
                continue
            try:
                reply = conn.recv()
            except (EOFError, OSError):
                self._kill()
                stop = f"the {config.algorithm} solver process died"
                break
            kind = reply[0]
            if kind == "started":
                started = time.monotonic()
            elif kind in ("incumbent", "fallback", "solution"):
                got[kind] = reply[1:]
            elif kind == "ok":
                plan: planner.Plan = reply[1]
                if "timeBound" in plan.solution.details:  # an exact solve stopped at the bound
                    bound = (
                        f"{config.algorithm} reached the {self.timeout_seconds:g} s solver "
                        "time bound"
                    )
                    why = "; ".join(r for r in (reason, bound) if r)
                    return planner.with_reason(
                        plan, plan.solution, planner.bound_note(plan.solution, why)
                    )
                if reason:  # QAOA did not fit: the exact solver answered in its place
                    plan = planner.with_reason(plan, plan.solution, reason)
                return plan
            elif kind == "domain":
                raise _domain_error(reply[1], reply[2])
            elif kind == "deadline":
                stop = (
                    f"{config.algorithm} ran past the {self.timeout_seconds:g} s solver time bound"
                )
                break
            else:
                stop = f"{config.algorithm} failed ({reply[1]}: {reply[2]})"
                break
        return planner.from_partial(problem, got, "; ".join(r for r in (reason, stop) if r))
