"""The exact oracle: every other solver is checked against it.

Three proofs of optimality, picked by size:

* ``bruteforce``: every placement scored at once with numpy, while K**S fits;
* ``branch-and-bound``: depth-first in lexicographic order, pruned by an exact dynamic-programming
  bound (the optimum of the chain ignoring memory, with the hop budget as a DP dimension);
* ``milp``: HiGHS through ``scipy.optimize.milp`` (relative MIP gap 1e-9) proves the optimum
  where memory is tight and the DP bound is weak; the tie rule is then applied by fixing shards
  one at a time to the smallest pool index that keeps the optimum.

All three return the least-emissions feasible placement, ties to the lexicographically smallest
sequence of pool indices (cost-model.md).
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import lil_matrix

from greenshard import model
from greenshard.errors import DeadlineExceededError, InfeasibleError
from greenshard.solvers import base

BRUTE_FORCE_LIMIT = 1 << 20  # placements scored at once (memory ~ 40 bytes each)
NODE_BUDGET = 200_000  # branch-and-bound nodes (about a second) before the MILP takes over


class _BudgetExceededError(Exception):
    def __init__(self, best: tuple[int, ...] | None = None) -> None:
        super().__init__("node budget exceeded")
        self.best = best  # the best feasible placement seen so far


_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "exact_deadline", default=None
)


@contextlib.contextmanager
def time_bound(deadline: float | None) -> Iterator[None]:
    """Every exact solve inside (the oracle, the planner's reference for other solvers' answers,
    the baseline) stops at ``deadline`` (time.monotonic()) with its best placement so far, whose
    gap is then the MILP's proven gap or unknown; with nothing found it raises
    :class:`DeadlineExceededError`."""
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _remaining() -> float | None:
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()


def first_feasible(problem: model.Problem, budget: int = 20_000) -> tuple[int, ...] | None:
    """A feasible placement from a short depth-first search (None if none within the budget):
    the incumbent to fall back on when time runs out."""
    try:
        placement, _ = branch_and_bound(problem, None, budget=budget, timed=False)
    except _BudgetExceededError as exc:
        return exc.best
    except InfeasibleError:
        return None
    return placement


@dataclass
class ExactSolver:
    """The oracle. ``method``: auto | bruteforce | branch-and-bound | milp."""

    method: str = "auto"
    name: str = "exact"
    node_budget: int = NODE_BUDGET

    def solve(self, problem: model.Problem) -> base.Solution:
        start = time.perf_counter()
        size = problem.num_pools**problem.num_shards
        method = self.method
        if method == "auto":
            method = "bruteforce" if size <= BRUTE_FORCE_LIMIT else "branch-and-bound"
        evaluations = 0
        gap: float | None = 0.0
        if method == "bruteforce":
            placement, evaluations = brute_force(problem)
        elif method == "milp":
            placement, evaluations, gap = milp_bounded(problem, None)
        else:
            try:
                placement, evaluations = branch_and_bound(problem, None, budget=self.node_budget)
            except _BudgetExceededError as exc:
                method = "milp"
                placement, evaluations, gap = milp_bounded(problem, exc.best)
        solution = base.make_solution(
            problem,
            placement,
            f"exact-{method}",
            self.name,
            evaluations=evaluations,
            wall_seconds=time.perf_counter() - start,
        )
        if gap == 0.0:
            return solution.verified_against(solution)
        # stopped by the time bound: the best placement so far, with the MILP's proven gap
        return replace(
            solution,
            method=f"exact-{method}-incumbent",
            gap=gap,
            details={**solution.details, "timeBound": "stopped at the solver time bound"},
        )


def solve_exact(problem: model.Problem) -> base.Solution:
    return ExactSolver().solve(problem)


def _infeasible(problem: model.Problem) -> InfeasibleError:
    return InfeasibleError(model.infeasible_message(problem))


# ------------------------------------------------------------------------------ brute force


def all_placements_cost(
    problem: model.Problem,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Emissions and feasibility of every placement, in lexicographic order of pool indices."""
    s_count, k_count = problem.num_shards, problem.num_pools
    weight = problem.load_weight
    regions = problem.region_of_pool
    binding = problem.capacity_pools()
    limit_latency = problem.latency_binding()
    allowed = problem.latency_allowed()
    lat = problem.latency_or_zero()
    cost = problem.compute[0].copy()
    last = np.arange(k_count)
    loads = np.zeros((len(binding), k_count), dtype=np.int64)  # loads[i][placement]
    for i, k in enumerate(binding):
        loads[i, k] = weight[0]
    hops = np.zeros(k_count, dtype=np.int16)
    latency = np.zeros(k_count)
    edges_ok = np.ones(k_count, dtype=np.bool_)
    for s in range(1, s_count):
        cost = (cost[:, None] + problem.link[last] + problem.compute[s][None, :]).ravel()
        change = (regions[last][:, None] != regions[None, :]).astype(np.int16)
        hops = (hops[:, None] + change).ravel()
        if limit_latency:
            latency = (latency[:, None] + lat[last]).ravel()
            edges_ok = (edges_ok[:, None] & allowed[last]).ravel()
        pick = np.tile(np.arange(k_count), last.size)
        loads = np.repeat(loads, k_count, axis=1)
        for i, k in enumerate(binding):
            loads[i] += (pick == k) * weight[s]
        last = pick
    ok = np.ones(cost.size, dtype=np.bool_)
    for i, k in enumerate(binding):
        ok &= problem.capacity.fit_table(k)[loads[i]]
    if problem.max_region_hops is not None:
        ok &= hops <= problem.max_region_hops
    if limit_latency and problem.max_latency_ms is not None:
        ok &= edges_ok & (latency <= problem.max_latency_ms + model.LATENCY_TOL_MS)
    return cost, ok


def index_to_placement(index: int, num_shards: int, num_pools: int) -> tuple[int, ...]:
    digits = []
    for _ in range(num_shards):
        index, digit = divmod(index, num_pools)
        digits.append(digit)
    return tuple(reversed(digits))


def brute_force(problem: model.Problem) -> tuple[tuple[int, ...], int]:
    size = problem.num_pools**problem.num_shards
    if size > BRUTE_FORCE_LIMIT:
        raise ValueError(
            f"brute force over {size} placements exceeds {BRUTE_FORCE_LIMIT}; "
            "use branch-and-bound or milp"
        )
    cost, ok = all_placements_cost(problem)
    if not ok.any():
        raise _infeasible(problem)
    best = float(cost[ok].min())
    tied = ok & (cost <= best + model.TIE_RTOL * abs(best))
    index = int(np.argmax(tied))  # first in lexicographic order
    return index_to_placement(index, problem.num_shards, problem.num_pools), int(cost.size)


# ------------------------------------------------------------------------- branch and bound


def _to_go_bounds(problem: model.Problem) -> npt.NDArray[np.float64]:
    """after[s, k, h]: least cost of shards s+1.. plus the links from s, given k_s = k and at
    most h region hops left (memory ignored, so a lower bound that is exact when memory is slack).
    """
    s_count, k_count = problem.num_shards, problem.num_pools
    h_count = (problem.max_region_hops if problem.max_region_hops is not None else s_count) + 1
    h_count = min(h_count, s_count)  # more hops than boundaries never matter
    change = (problem.region_of_pool[:, None] != problem.region_of_pool[None, :]).astype(int)
    inf = np.inf
    # value[k, h]: cost of shards s.. given k_s = k, h hops left
    value = np.repeat(problem.compute[s_count - 1][:, None], h_count, axis=1)
    after = np.full((s_count, k_count, h_count), inf)
    after[s_count - 1] = 0.0
    for s in range(s_count - 2, -1, -1):
        # after[s, k, h] = min_k' link[k,k'] + value[k', h - change[k,k']]
        shifted = np.full_like(value, inf)  # shifted[k', h] = value[k', h - 1]
        shifted[:, 1:] = value[:, :-1]
        cand = np.where(change[:, :, None] == 1, shifted[None, :, :], value[None, :, :])
        after[s] = (cand + problem.link[:, :, None]).min(axis=1)
        value = problem.compute[s][:, None] + after[s]
    return after


def _latency_to_go(problem: model.Problem) -> list[list[float]]:
    """least[s][k]: the least latency of boundaries s.. given k_s = k (inf: no allowed way)."""
    s_count, k_count = problem.num_shards, problem.num_pools
    allowed = problem.latency_allowed()
    lat = np.where(allowed, problem.latency_or_zero(), np.inf)
    least = np.zeros((s_count, k_count))
    for s in range(s_count - 2, -1, -1):
        least[s] = (lat + least[s + 1][None, :]).min(axis=1)
    return least.tolist()


def branch_and_bound(
    problem: model.Problem,
    incumbent: tuple[int, ...] | None,
    budget: int | None,
    timed: bool = True,
) -> tuple[tuple[int, ...], int]:
    """Exact optimum by lexicographic depth-first search. An incumbent (e.g. from the MILP)
    only sharpens pruning; ties still go to the lexicographically smallest placement.

    A partial placement is dropped as soon as one pool cannot pack its shards (adding shards
    never helps), its hops or latency are over the limits, or the DP bound (the chain optimum
    ignoring capacity) cannot beat the best placement found."""
    s_count, k_count = problem.num_shards, problem.num_pools
    after = _to_go_bounds(problem)
    h_cap = after.shape[2] - 1
    max_hops = problem.max_region_hops if problem.max_region_hops is not None else s_count
    compute = problem.compute.tolist()
    link = problem.link.tolist()
    regions = problem.region_of_pool.tolist()
    weight = problem.load_weight.tolist()
    capacity = problem.capacity
    binding = set(problem.capacity_pools())
    load = [0] * k_count
    limit_latency = problem.latency_binding()
    max_latency = (
        problem.max_latency_ms + model.LATENCY_TOL_MS
        if problem.max_latency_ms is not None
        else np.inf
    )
    lat = problem.latency_or_zero().tolist()
    allowed = problem.latency_allowed().tolist()
    lat_to_go = _latency_to_go(problem) if limit_latency else None
    after_l = after.tolist()

    best_cost = np.inf
    best: tuple[int, ...] | None = None
    from_dfs = False
    if incumbent is not None and model.feasible(problem, incumbent):
        best, best_cost = tuple(incumbent), model.emissions(problem, incumbent)
    nodes = 0
    path: list[int] = []

    def threshold() -> float:
        # Before DFS has produced a leaf, a tie with an external incumbent may still be
        # lexicographically smaller, so ties are kept; after, only strict improvements.
        tol = model.TIE_RTOL * abs(best_cost)
        if from_dfs or best is None or tuple(path) > best[: len(path)]:
            return best_cost - tol
        return best_cost + tol

    # Depth-first without recursion (a thousand shards would pass Python's recursion limit):
    # one frame per shard on the path:
    # [previous pool, cost so far, hops used, next pool to try, latency so far].
    stack: list[list[Any]] = [[-1, 0.0, 0, 0, 0.0]]
    while stack:
        s = len(stack) - 1
        frame = stack[-1]
        prev, cost, hops_used, k, latency = frame
        if k >= k_count:  # every pool tried for shard s: back to shard s - 1
            stack.pop()
            if stack:
                load[path.pop()] -= weight[s - 1]
            continue
        frame[3] = k + 1
        if k in binding and not capacity.fits(k, load[k] + weight[s]):
            continue  # the pool cannot pack these shards, nor any superset
        hops = hops_used
        used = latency
        c = cost + compute[s][k]
        if s > 0:
            c += link[prev][k]
            if regions[prev] != regions[k]:
                hops += 1
                if hops > max_hops:
                    continue
            if limit_latency:
                if not allowed[prev][k]:
                    continue
                used += lat[prev][k]
        if lat_to_go is not None and used + lat_to_go[s][k] > max_latency:
            continue
        left = min(max_hops - hops, h_cap)
        path.append(k)
        if best is None or c + after_l[s][k][left] <= threshold():
            nodes += 1
            if budget is not None and nodes > budget:
                raise _BudgetExceededError(best)
            if timed and nodes % 4096 == 0:
                left = _remaining()
                if left is not None and left <= 0:
                    raise _BudgetExceededError(best)
            if s == s_count - 1:
                best, best_cost, from_dfs = tuple(path), c, True
            else:
                load[k] += weight[s]
                stack.append([k, c, hops, 0, used])
                continue  # k stays on the path until shard s + 1 is exhausted
        path.pop()

    if best is None:
        raise _infeasible(problem)
    return best, nodes


# ----------------------------------------------------------------------------------- MILP


class _Milp:
    """x[s,k] binary (shard s on pool k), y[s,k,k'] continuous boundary flows (integral given x),
    and, for every node n of a pool whose capacity can bind, z[s,n] in 0..R: replicas of shard s
    on node n (sum_n z[s,n] = R x[s,k]; sum_s demand[s][k] z[s,n] <= free_n; sum_s z[s,n] <=
    free pod slots of n): the bin packing,
    exactly. Boundaries the latency limit forbids have their flows fixed at 0."""

    def __init__(self, problem: model.Problem) -> None:
        self.problem = problem
        s_count, k_count = problem.num_shards, problem.num_pools
        self.nx = s_count * k_count
        ny = max(s_count - 1, 0) * k_count * k_count
        cap = problem.capacity
        self.node_vars: list[tuple[int, int, int]] = []  # (s, pool, node position) per z
        for k in problem.capacity_pools():
            for j in range(len(cap.pools[k].names)):
                for s in range(s_count):
                    self.node_vars.append((s, k, j))
        nz = len(self.node_vars)
        self.c = np.concatenate(
            [
                problem.compute.ravel(),
                np.tile(problem.link.ravel(), max(s_count - 1, 0)),
                np.zeros(nz),
            ]
        )
        self.upper = np.ones(self.c.size)
        self.upper[self.nx + ny :] = float(problem.replicas)
        rows: list[tuple[dict[int, float], float, float]] = []
        for s in range(s_count):
            rows.append(({self.xi(s, k): 1.0 for k in range(k_count)}, 1.0, 1.0))
        for s in range(s_count - 1):
            for k in range(k_count):
                out = {self.yi(s, k, k2): 1.0 for k2 in range(k_count)}
                out[self.xi(s, k)] = -1.0
                rows.append((out, 0.0, 0.0))
                inn = {self.yi(s, k1, k): 1.0 for k1 in range(k_count)}
                inn[self.xi(s + 1, k)] = -1.0
                rows.append((inn, 0.0, 0.0))
        z_index = {key: self.nx + ny + i for i, key in enumerate(self.node_vars)}
        for k in problem.capacity_pools():
            pool = cap.pools[k]
            scale = 1.0 if pool.unit == "gpu" else 2.0**-30  # bytes -> GiB: sane coefficients
            for s in range(s_count):
                row = {z_index[(s, k, j)]: 1.0 for j in range(len(pool.names))}
                row[self.xi(s, k)] = -float(problem.replicas)
                rows.append((row, 0.0, 0.0))
            for j, free in enumerate(pool.free):
                row = {z_index[(s, k, j)]: cap.demand[s][k] * scale for s in range(s_count)}
                rows.append((row, -np.inf, free * scale))
            if pool.slots is not None:  # one pod per replica, at most the node's free slots
                for j, left in enumerate(pool.slots):
                    if left < s_count * problem.replicas:
                        row = {z_index[(s, k, j)]: 1.0 for s in range(s_count)}
                        rows.append((row, -np.inf, float(left)))
        if problem.latency_binding() and s_count > 1 and problem.max_latency_ms is not None:
            allowed = problem.latency_allowed()
            lat = problem.latency_or_zero()
            lat_row = {}
            for s in range(s_count - 1):
                for k in range(k_count):
                    for k2 in range(k_count):
                        if not allowed[k, k2]:
                            self.upper[self.yi(s, k, k2)] = 0.0
                        elif lat[k, k2] > 0:
                            lat_row[self.yi(s, k, k2)] = float(lat[k, k2])
            if lat_row:
                rows.append((lat_row, -np.inf, problem.max_latency_ms + model.LATENCY_TOL_MS))
        if problem.max_region_hops is not None and s_count > 1:
            regions = problem.region_of_pool
            hop_row = {
                self.yi(s, k, k2): 1.0
                for s in range(s_count - 1)
                for k in range(k_count)
                for k2 in range(k_count)
                if regions[k] != regions[k2]
            }
            if hop_row:
                rows.append((hop_row, -np.inf, float(problem.max_region_hops)))
        rows.append(({j: float(v) for j, v in enumerate(self.c) if v}, -np.inf, np.inf))
        rows.append(({}, -np.inf, np.inf))  # "differs from a placement" row, set by run()
        a = lil_matrix((len(rows), self.c.size))
        self.lo = np.empty(len(rows))
        self.hi = np.empty(len(rows))
        for r, (coefs, low, high) in enumerate(rows):
            for j, v in coefs.items():
                a[r, j] = v
            self.lo[r], self.hi[r] = low, high
        self.a = a.tocsr()
        self.integrality = np.concatenate([np.ones(self.nx), np.zeros(ny), np.ones(nz)])
        self.solves = 0
        self.proven = True  # False once a run stopped at the time bound
        self.gap: float | None = 0.0  # the MIP gap of the last run stopped at the bound

    def xi(self, s: int, k: int) -> int:
        return s * self.problem.num_pools + k

    def yi(self, s: int, k: int, k2: int) -> int:
        k_count = self.problem.num_pools
        return self.nx + (s * k_count + k) * k_count + k2

    def run(
        self,
        objective: npt.NDArray[np.float64],
        cost_cap: float,
        lower: npt.NDArray[np.float64],
        upper: npt.NDArray[np.float64],
        differ_from: tuple[int, ...] | None = None,
    ) -> tuple[int, ...] | None:
        """Minimise ``objective`` with total emissions <= cost_cap, optionally excluding one
        placement (at least one shard elsewhere)."""
        self.hi[-2] = cost_cap
        a = self.a
        if differ_from is not None:
            a = self.a.tolil()
            for s, k in enumerate(differ_from):
                a[a.shape[0] - 1, self.xi(s, k)] = 1.0
            a = a.tocsr()
            self.hi[-1] = len(differ_from) - 1
        else:
            self.hi[-1] = np.inf
        options: dict[str, Any] = {"mip_rel_gap": 1e-9, "presolve": True}
        left = _remaining()
        if left is not None:
            if left <= 0:
                raise _TimeUpError
            options["time_limit"] = left
        self.solves += 1
        result = milp(
            objective,
            constraints=LinearConstraint(a, self.lo, self.hi),
            integrality=self.integrality,
            bounds=Bounds(lower, upper),
            options=options,
        )
        if result.status == 1:  # stopped at the time limit
            if result.x is None:
                raise _TimeUpError
            self.proven = False
            mip_gap = getattr(result, "mip_gap", None)
            self.gap = float(mip_gap) if mip_gap is not None and np.isfinite(mip_gap) else None
        if result.x is None:
            return None
        x = result.x[: self.nx].reshape(self.problem.num_shards, self.problem.num_pools)
        return tuple(int(k) for k in x.argmax(axis=1))


class _TimeUpError(Exception):
    """The time bound passed before a MILP run found a placement."""


def milp_lexicographic(problem: model.Problem) -> tuple[tuple[int, ...], int]:
    """The MILP optimum, then each shard in turn moved to the smallest pool index that still
    reaches the optimum (within the tie tolerance): the cost-model tie rule."""
    placement, solves, _ = milp_bounded(problem, None)
    return placement, solves


def milp_bounded(
    problem: model.Problem, incumbent: tuple[int, ...] | None
) -> tuple[tuple[int, ...], int, float | None]:
    """milp_lexicographic within the time bound: (placement, MILP runs, gap). The gap is 0 when
    the optimum is proven, the MILP's relative gap when it stopped at the bound with a
    placement, and None (unknown) when only ``incumbent`` (or a quick search) had one."""
    m = _Milp(problem)
    lower = np.zeros(m.c.size)
    upper = m.upper.copy()
    try:
        placement = m.run(m.c, np.inf, lower, upper)
    except _TimeUpError:
        fallback = incumbent or first_feasible(problem)
        if fallback is None:
            raise DeadlineExceededError(
                "no feasible placement found before the solver time bound"
            ) from None
        return fallback, m.solves, None
    if placement is None:
        raise _infeasible(problem)
    if not m.proven:
        return placement, m.solves, m.gap
    best = model.emissions(problem, placement)
    cap = best + model.TIE_RTOL * abs(best)
    try:
        if m.run(np.zeros(m.c.size), cap, lower, upper, differ_from=placement) is None:
            return placement, m.solves, 0.0  # the optimum is unique: no tie to break
        for s in range(problem.num_shards):
            k_now = placement[s]
            if k_now > 0:
                trial_obj = np.zeros(m.c.size)
                for k in range(problem.num_pools):
                    trial_obj[m.xi(s, k)] = float(k)
                candidate = m.run(trial_obj, cap, lower, upper)
                if (
                    candidate is not None
                    and candidate[s] < k_now
                    and model.feasible(problem, candidate)
                    and model.emissions(problem, candidate) <= cap
                ):
                    placement = candidate
            lower[m.xi(s, placement[s])] = 1.0  # fix shard s
    except _TimeUpError:
        pass  # an optimum, maybe not the lexicographically smallest of its ties
    return placement, m.solves, 0.0
