"""Every placement at once: the cost diagonal of the one-hot (one-of-K) encoding.

A placement ``(k_0 .. k_{S-1})`` is one basis state of the K**S-dimensional subspace in which each
shard's K one-hot qubits hold exactly one 1. Index ``sum_s k_s * K**(S-1-s)``, so index order is
lexicographic placement order (the tie rule's order) and the state is a C-ordered tensor of shape
``(K,) * S``.

The table is *factorised*, never materialised: the shards split into a head (the first h) and a
tail (the last t, ``K**t <= TAIL_MAX``), and every placement is a (head row, tail column) pair:

    emissions(row, col) = E_head[row] + link[last(row), first(col)] + E_tail[col]

so a block of rows costs one gather and two adds. Feasibility couples shards (capacity per pool,
region hops along the chain) and is not local; it is computed once, in blocks, into a bit-packed
mask (K**S / 8 bytes: 30 MB for 12 shards x 5 pools) from

* a per-pool table ``fits[k][subset]`` over the 2**S subsets of shards (can the pool hold exactly
  these shards?), and each row's and column's subset per pool (bit masks, OR-ed), and
* the chain counters (region changes) of head and tail plus the boundary between them.

Statistics of the feasible set (count, least/greatest/mean emissions, every optimal index, ties
included) come from the same pass. Memory beyond the mask: O(K**h + K**t) (a few MB).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from greenshard import model

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Largest tail block (columns of the factorised table).
TAIL_MAX = 1 << 17
#: Elements per block when the table is scanned.
BLOCK = 1 << 20
#: Largest subspace this module tabulates (5**12 = 244,140,625; 2 GiB as a complex64 state).
MAX_PLACEMENTS = 1 << 28
#: Shards at most (the per-pool subset table has 2**S entries).
MAX_SHARDS = 20


def placement_count(num_shards: int, num_pools: int) -> int:
    return int(num_pools) ** int(num_shards)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _Part:
    """Every pool assignment of a run of consecutive shards, in lexicographic order."""

    emissions: FloatArray  # compute + links inside the run
    first: IntArray  # pool of the run's first shard
    last: IntArray  # pool of the run's last shard
    hops: IntArray  # region changes inside the run
    subsets: npt.NDArray[np.int32]  # (K, rows): bit mask of the run's shards on each pool
    latency: FloatArray  # boundary RTTs inside the run (inf through a forbidden boundary)


@dataclass(frozen=True)
class FeasibleStats:
    count: int
    least: float  # least feasible emissions (the optimum)
    greatest: float  # greatest feasible emissions
    mean: float  # mean feasible emissions
    least_any: float  # least emissions over every placement, feasible or not
    optimal: IntArray  # indices of every optimal placement (ties included), ascending


class PlacementSpace:
    """The K**S placements of a problem: emissions, feasibility and their statistics."""

    def __init__(self, problem: model.Problem, tail_max: int = TAIL_MAX) -> None:
        s_count, k_count = problem.num_shards, problem.num_pools
        if s_count > MAX_SHARDS:
            raise ValueError(f"{s_count} shards: the placement table takes at most {MAX_SHARDS}")
        self.size = placement_count(s_count, k_count)
        if self.size > MAX_PLACEMENTS:
            raise ValueError(
                f"{k_count}**{s_count} = {self.size} placements exceed the table's limit "
                f"{MAX_PLACEMENTS}"
            )
        self.problem = problem
        self.num_shards = s_count
        self.num_pools = k_count
        tail = 1
        while tail < s_count and k_count ** (tail + 1) <= tail_max:
            tail += 1
        self.tail_shards = tail
        self.head_shards = s_count - tail
        self.head = self._part(0, self.head_shards)
        self.tail = self._part(self.head_shards, tail)
        self.rows = self.head.emissions.size
        self.cols = self.tail.emissions.size
        # link[last(row), first(col)] + E_tail[col], one row per possible last pool of the head
        self.tail_by_last = (
            problem.link[:, self.tail.first] + self.tail.emissions[None, :]
            if self.head_shards
            else self.tail.emissions[None, :].copy()
        )
        self.fits = pool_fits(problem)
        self.hop_limit = problem.max_region_hops if problem.hops_binding() else None
        self.latency_limit = problem.max_latency_ms if problem.latency_binding() else None
        self.mask, self.stats = self._scan()

    # ------------------------------------------------------------------------ placements

    def index(self, placement: Sequence[int]) -> int:
        index = 0
        for k in placement:
            index = index * self.num_pools + int(k)
        return index

    def placement(self, index: int) -> tuple[int, ...]:
        digits = []
        for _ in range(self.num_shards):
            index, k = divmod(index, self.num_pools)
            digits.append(k)
        return tuple(reversed(digits))

    def placements(self, indices: npt.ArrayLike) -> IntArray:
        """(n, S) pool indices of the given basis indices."""
        rest = np.asarray(indices, dtype=np.int64).copy()
        out = np.empty((rest.size, self.num_shards), dtype=np.int64)
        for s in range(self.num_shards - 1, -1, -1):
            rest, out[:, s] = np.divmod(rest, self.num_pools)
        return out

    # ------------------------------------------------------------------------ blocks

    def row_blocks(self, elements: int = BLOCK) -> Iterator[tuple[int, int]]:
        """(first row, end row) of blocks of about ``elements`` table entries."""
        step = max(1, elements // self.cols)
        for lo in range(0, self.rows, step):
            yield lo, min(lo + step, self.rows)

    def emissions_rows(self, lo: int, hi: int) -> FloatArray:
        """Emissions of rows lo..hi-1, shape (hi - lo, cols), float64."""
        head = self.head.emissions[lo:hi, None]
        return head + self.tail_by_last[self.head.last[lo:hi]]

    def feasible_rows(self, lo: int, hi: int) -> BoolArray:
        """The stored feasibility of rows lo..hi-1, shape (hi - lo, cols)."""
        start, end = lo * self.cols, hi * self.cols
        first = start // 8
        bits = np.unpackbits(self.mask[first : (end + 7) // 8])
        offset = start - 8 * first
        return bits[offset : offset + end - start].reshape(hi - lo, self.cols).view(np.bool_)

    def emissions_of(self, indices: npt.ArrayLike) -> FloatArray:
        idx = np.asarray(indices, dtype=np.int64)
        rows, cols = np.divmod(idx, self.cols)
        return np.asarray(
            self.head.emissions[rows] + self.tail_by_last[self.head.last[rows], cols],
            dtype=np.float64,
        )

    def feasible_of(self, indices: npt.ArrayLike) -> BoolArray:
        idx = np.asarray(indices, dtype=np.int64)
        byte, bit = np.divmod(idx, 8)
        return np.asarray((self.mask[byte] >> (7 - bit)) & 1, dtype=np.bool_)

    def _compute_feasible_rows(self, lo: int, hi: int) -> BoolArray:
        ok = np.ones((hi - lo, self.cols), dtype=np.bool_)
        for k in range(self.num_pools):
            subset = self.head.subsets[k, lo:hi, None] | self.tail.subsets[k, None, :]
            ok &= self.fits[k][subset]
        if self.hop_limit is not None:
            region = self.problem.region_of_pool
            hops = self.head.hops[lo:hi, None] + self.tail.hops[None, :]
            if self.head_shards:
                hops = hops + (region[self.head.last[lo:hi], None] != region[None, self.tail.first])
            ok &= hops <= self.hop_limit
        if self.latency_limit is not None:
            lat = _boundary_latency(self.problem)
            total = self.head.latency[lo:hi, None] + self.tail.latency[None, :]
            if self.head_shards:
                total = total + lat[self.head.last[lo:hi]][:, self.tail.first]
            ok &= total <= self.latency_limit + model.LATENCY_TOL_MS
        return ok

    def _scan(self) -> tuple[npt.NDArray[np.uint8], FeasibleStats]:
        """The packed feasibility mask and the feasible set's statistics, in one pass."""
        step = max(8, (BLOCK // self.cols) // 8 * 8)  # whole bytes per block when cols is odd
        mask = np.zeros((self.size + 7) // 8, dtype=np.uint8)
        carry = np.zeros(0, dtype=np.bool_)
        written = 0
        count, total = 0, 0.0
        least, greatest, least_any = math.inf, -math.inf, math.inf
        optimal: list[IntArray] = []
        for lo in range(0, self.rows, step):
            hi = min(lo + step, self.rows)
            ok = self._compute_feasible_rows(lo, hi)
            emissions = self.emissions_rows(lo, hi)
            least_any = min(least_any, float(emissions.min()))
            values = emissions[ok]
            if values.size:
                count += int(values.size)
                total += float(values.sum())
                greatest = max(greatest, float(values.max()))
                low = float(values.min())
                if not optimal or (low < least and not model.is_tie(low, least)):
                    least, optimal = low, []
                if model.is_tie(low, least):
                    tol = model.TIE_RTOL * max(abs(least), 1e-300)
                    hits = np.flatnonzero(ok.ravel() & (emissions.ravel() <= least + tol))
                    optimal.append(hits + lo * self.cols)
            flat = np.concatenate([carry, ok.ravel()])
            whole = flat.size // 8 * 8
            packed = np.packbits(flat[:whole])
            mask[written : written + packed.size] = packed
            written += packed.size
            carry = flat[whole:]
        if carry.size:
            mask[written : written + 1] = np.packbits(carry)
        if count == 0:
            stats = FeasibleStats(
                0, math.inf, -math.inf, math.nan, least_any, np.zeros(0, np.int64)
            )
        else:
            best = np.concatenate(optimal)
            values = self.emissions_of(best)
            tol = model.TIE_RTOL * max(abs(least), 1e-300)
            stats = FeasibleStats(
                count,
                least,
                greatest,
                total / count,
                least_any,
                np.sort(best[values <= least + tol]),
            )
        return mask, stats

    # ------------------------------------------------------------------------ parts

    def _part(self, first_shard: int, count: int) -> _Part:
        p = self.problem
        k_count = self.num_pools
        pools = np.arange(k_count)
        region = p.region_of_pool
        if count == 0:
            zero = np.zeros(1, dtype=np.int64)
            return _Part(
                np.zeros(1), zero, zero, zero, np.zeros((k_count, 1), dtype=np.int32), np.zeros(1)
            )
        s = first_shard
        emissions = p.compute[s].astype(np.float64).copy()
        first = pools.copy()
        last = pools.copy()
        hops = np.zeros(k_count, dtype=np.int64)
        lat = _boundary_latency(p)
        latency = np.zeros(k_count)
        subsets = ((pools[None, :] == pools[:, None]) * (1 << s)).astype(np.int32)
        for s in range(first_shard + 1, first_shard + count):
            emissions = (
                emissions[:, None] + p.link[last][:, pools] + p.compute[s][None, :]
            ).ravel()
            hops = (hops[:, None] + (region[last][:, None] != region[None, pools])).ravel()
            latency = (latency[:, None] + lat[last][:, pools]).ravel()
            onto = (pools[:, None] == pools[None, :]).astype(np.int32) * (1 << s)  # (pool, k)
            subsets = (subsets[:, :, None] | onto[:, None, :]).reshape(k_count, -1)
            first = np.repeat(first, k_count)
            last = np.tile(pools, last.size)
        return _Part(emissions, first, last, hops, subsets, latency)


def _boundary_latency(problem: model.Problem) -> FloatArray:
    """(K, K) boundary RTT, inf where the latency limit forbids the boundary."""
    return np.where(problem.latency_allowed(), problem.latency_or_zero(), np.inf)


def pool_fits(problem: model.Problem) -> BoolArray:
    """``fits[k][subset]``: whether pool k can hold exactly the shards in ``subset`` (bit s set for
    shard s), by the cost model's packing rule (feasibility.Capacity). Shape (K, 2**S)."""
    s_count = problem.num_shards
    subsets = np.arange(1 << s_count, dtype=np.int64)
    load = np.zeros(subsets.size, dtype=np.int64)
    for s, w in enumerate(problem.load_weight.tolist()):
        load += ((subsets >> s) & 1) * w
    return np.stack([problem.capacity.fit_table(k)[load] for k in range(problem.num_pools)])
