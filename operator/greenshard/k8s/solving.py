"""Solving off the event loop, with a time and a memory bound.

Plans are computed in one long-lived child process (spawned once, so qsim and cirq are imported
once). If a solve runs past ``timeout_seconds`` or its resident memory passes ``memory_bytes``,
the child is killed (and respawned for the next plan) and the exact solver answers instead, with
the reason in ``solver.fallbackReason``. QAOA that could not fit the memory bound is not even
tried.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import time
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

from greenshard import hamiltonian, model, planner
from greenshard.errors import GreenShardError, InfeasibleError, NoCandidatePoolError
from greenshard.solvers import SolverConfig

BYTES_PER_AMPLITUDE = 48  # diagonal, normalised cost, state, simulator copy, probabilities


def _worker(conn: Connection) -> None:  # pragma: no cover - runs in the child
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        problem, config = message
        try:
            conn.send(("ok", planner.plan(problem, config)))
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
        qubits = hamiltonian.qubit_count(problem.num_shards, problem.num_pools)
        if config.algorithm == "auto" and qubits > config.max_qubits:
            return ""
        need = (1 << qubits) * BYTES_PER_AMPLITUDE
        if need > self.memory_bytes:
            return (
                f"QAOA on {qubits} qubits needs about {need / 2**30:.1f} GiB, over the "
                f"solver memory bound of {self.memory_bytes / 2**30:.1f} GiB"
            )
        return ""

    async def plan(self, problem: model.Problem, config: SolverConfig) -> planner.Plan:
        """Plan in the child; on a bound or a crash, the exact solver answers and says why."""
        reason = self.qaoa_fits(problem, config)
        if not reason:
            async with self._lock:
                outcome = await self._plan_in_child(problem, config)
            if isinstance(outcome, planner.Plan):
                return outcome
            reason = outcome
        exact = await asyncio.to_thread(planner.plan, problem, replace(config, algorithm="exact"))
        solution = replace(
            exact.solution, details={**exact.solution.details, "fallbackReason": reason}
        )
        return replace(exact, solution=solution)

    async def _plan_in_child(
        self, problem: model.Problem, config: SolverConfig
    ) -> planner.Plan | str:
        conn = self._ensure()
        conn.send((problem, config))
        start = time.monotonic()
        while not conn.poll():
            elapsed = time.monotonic() - start
            if elapsed > self.timeout_seconds:
                self._kill()
                return (
                    f"{config.algorithm} ran past the {self.timeout_seconds:g} s solver time bound"
                )
            rss = _rss_bytes(self._proc.pid) if self._proc is not None else 0
            if rss > self.memory_bytes:
                self._kill()
                return (
                    f"{config.algorithm} used {rss / 2**30:.1f} GiB, over the "
                    f"{self.memory_bytes / 2**30:.1f} GiB solver memory bound"
                )
            await asyncio.sleep(0.02)
        try:
            reply = conn.recv()
        except (EOFError, OSError):
            self._kill()
            return f"the {config.algorithm} solver process died"
        if reply[0] == "ok":
            plan: planner.Plan = reply[1]
            return plan
        if reply[0] == "domain":
            raise _domain_error(reply[1], reply[2])
        return f"{config.algorithm} failed ({reply[1]}: {reply[2]})"
