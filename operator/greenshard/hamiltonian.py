"""Problem -> cost Hamiltonian: binary encoding, energy(bits), decode(bits), diagonal, Ising.

Encoding
--------
Each shard gets ``m = ceil(log2 K)`` qubits (``m = 1`` when K = 1) holding its pool index in
binary, most significant bit first; shard s owns qubits ``s*m .. s*m + m - 1``. So

    qubits n = S * ceil(log2 K)          (no slack qubits)

and, with cirq's big-endian state order (qubit 0 is the most significant bit), basis index
``sum_s k_s * 2**(m*(S-1-s))`` is placement ``(k_0, .., k_{S-1})``: index order is lexicographic.

Energy
------
``E(x) = sum_s c~(s, code_s) + sum_s l~(code_s, code_s+1) + A * v(x)``

* ``c~``/``l~`` are the cost-model compute and link terms in g/h; an unused code (``>= K``) costs
  the shard's largest compute term and the largest link term, so every term stays local.
* ``v(x)`` counts violations: unused codes, pools whose shards do not pack onto their nodes
  (whole GPUs, feasibility.Capacity), region hops over the limit, a pipeline over the latency
  limit (or through a boundary without a known RTT).
* ``A = UB - LB + margin``, where UB and LB bound the emissions of any placement, so every
  infeasible bitstring costs more than every feasible one, and a feasible one costs exactly its
  emissions (the constant is 0).

The compute, link and unused-code terms are a sum of functions of at most ``2m`` qubits: a sparse
Ising polynomial (a QUBO when ``m = 1``) that a circuit applies with ZZ.. rotations. Memory and
hop limits that can bind (some pool smaller than the model, a hop limit below S - 1) are global;
they live only in the diagonal, which the simulator applies directly. Constraints that cannot bind
are dropped, so the common case is a purely local Hamiltonian.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from greenshard import model

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def bits_per_shard(num_pools: int) -> int:
    return max(1, int(np.ceil(np.log2(num_pools)))) if num_pools > 1 else 1


def qubit_count(num_shards: int, num_pools: int) -> int:
    """n = S * ceil(log2 K): the qubit-count formula of this encoding."""
    return num_shards * bits_per_shard(num_pools)


@dataclass(frozen=True)
class IsingTerms:
    """Sum over terms of ``coeff * prod_{i in qubits} Z_i`` plus ``offset``, Z = 1 - 2 * bit.

    ``masks[t]`` is a bit mask over qubits (bit ``n-1-i`` set for qubit i, matching basis index
    order); ``coeffs[t]`` its coefficient.
    """

    num_qubits: int
    masks: IntArray
    coeffs: FloatArray
    offset: float

    def qubits(self, t: int) -> tuple[int, ...]:
        mask = int(self.masks[t])
        return tuple(i for i in range(self.num_qubits) if mask >> (self.num_qubits - 1 - i) & 1)

    @property
    def max_order(self) -> int:
        return max((bin(int(m)).count("1") for m in self.masks), default=0)

    def energy(self, bits: Sequence[int]) -> float:
        index = bits_to_index(bits)
        parity = np.array([bin(index & int(m)).count("1") & 1 for m in self.masks])
        return float(self.offset + np.sum(self.coeffs * (1 - 2 * parity)))

    def to_qubo(self) -> tuple[FloatArray, float]:
        """(Q, offset) with energy = x^T Q x + offset over bits x (upper triangular Q).

        Only for polynomials of order <= 2."""
        if self.max_order > 2:
            raise ValueError(f"order-{self.max_order} terms: not a QUBO (K > 2 pools per shard)")
        n = self.num_qubits
        q = np.zeros((n, n))
        offset = self.offset
        for t in range(self.masks.size):
            qs, c = self.qubits(t), float(self.coeffs[t])
            if len(qs) == 1:  # c * (1 - 2x)
                offset += c
                q[qs[0], qs[0]] += -2 * c
            elif len(qs) == 2:  # c * (1 - 2x)(1 - 2y) = c (1 - 2x - 2y + 4xy)
                i, j = qs
                offset += c
                q[i, i] += -2 * c
                q[j, j] += -2 * c
                q[i, j] += 4 * c
        return q, offset


def bits_to_index(bits: Sequence[int]) -> int:
    index = 0
    for b in bits:
        index = (index << 1) | (1 if b else 0)
    return index


def index_to_bits(index: int, num_qubits: int) -> tuple[int, ...]:
    return tuple((index >> (num_qubits - 1 - i)) & 1 for i in range(num_qubits))


def walsh_coefficients(values: FloatArray) -> FloatArray:
    """Coefficients a_j with values[x] = sum_j a_j (-1)^popcount(x & j): a fast Walsh-Hadamard."""
    a = np.array(values, dtype=np.float64, copy=True)
    h = 1
    while h < a.size:
        a = a.reshape(-1, 2, h)
        a = np.stack([a[:, 0] + a[:, 1], a[:, 0] - a[:, 1]], axis=1).reshape(-1)
        h *= 2
    return a / values.size


#: Qubits tabulated per tail block of :meth:`CostHamiltonian.diagonal_chunks`.
TAIL_QUBITS = 16


@dataclass(frozen=True)
class _Block:
    """Every code assignment of a run of consecutive shards, in index order."""

    shards: int
    energy: FloatArray  # compute + inner links + unused-code penalties
    first: IntArray  # code of the run's first shard
    last: IntArray  # code of the run's last shard
    loads: dict[int, npt.NDArray[np.int64]]  # load index per capacity-limited pool
    hops: npt.NDArray[np.int32]  # region changes inside the run
    latency: FloatArray  # boundary RTTs inside the run (inf through a forbidden boundary)


class CostHamiltonian:
    """The diagonal cost of every bitstring, per the module docstring."""

    def __init__(self, problem: model.Problem) -> None:
        self.problem = problem
        self.num_shards = problem.num_shards
        self.num_pools = problem.num_pools
        self.m = bits_per_shard(self.num_pools)
        self.num_qubits = self.num_shards * self.m
        self.codes = 1 << self.m
        c_max = problem.compute.max(axis=1)
        l_max = float(problem.link.max())
        # Extended local terms over all 2^m codes (unused codes: largest term).
        self.compute_ext = np.empty((self.num_shards, self.codes))
        self.compute_ext[:, : self.num_pools] = problem.compute
        self.compute_ext[:, self.num_pools :] = c_max[:, None]
        self.link_ext = np.full((self.codes, self.codes), l_max)
        self.link_ext[: self.num_pools, : self.num_pools] = problem.link
        self.upper_bound = float(c_max.sum() + l_max * (self.num_shards - 1))
        self.lower_bound = float(
            problem.compute.min(axis=1).sum() + problem.link.min() * (self.num_shards - 1)
        )
        spread = self.upper_bound - self.lower_bound
        self.penalty = spread + max(spread * 0.05, 1e-9 * max(abs(self.upper_bound), 1.0))
        self.memory_pools = problem.capacity_pools()
        self.fit_tables = {k: problem.capacity.fit_table(k) for k in self.memory_pools}
        self.weight = problem.load_weight
        self.hop_limit = problem.max_region_hops if problem.hops_binding() else None
        self.latency_limit = problem.max_latency_ms if problem.latency_binding() else None
        # Boundary RTT per code pair; forbidden boundaries and unused codes: inf (a violation).
        self.latency_ext = np.full((self.codes, self.codes), np.inf)
        self.latency_ext[: self.num_pools, : self.num_pools] = np.where(
            problem.latency_allowed(), problem.latency_or_zero(), np.inf
        )
        # Region id per code; unused codes get regions of their own (a hop to and from them).
        self.region_ext = np.concatenate(
            [problem.region_of_pool, -1 - np.arange(self.num_pools, self.codes)]
        )

    @property
    def has_global_penalty(self) -> bool:
        """Whether capacity, hop or latency limits can bind (then the diagonal is not a local
        polynomial)."""
        return (
            bool(self.memory_pools) or self.hop_limit is not None or self.latency_limit is not None
        )

    # ----------------------------------------------------------------- single bitstrings

    def codes_of(self, bits: Sequence[int]) -> tuple[int, ...]:
        if len(bits) != self.num_qubits:
            raise ValueError(f"expected {self.num_qubits} bits, got {len(bits)}")
        return tuple(
            bits_to_index(bits[s * self.m : (s + 1) * self.m]) for s in range(self.num_shards)
        )

    def decode(self, bits: Sequence[int]) -> tuple[int, ...] | None:
        """The placement a bitstring encodes, or None if a shard holds an unused code."""
        codes = self.codes_of(bits)
        return None if any(k >= self.num_pools for k in codes) else codes

    def encode(self, placement: Sequence[int]) -> tuple[int, ...]:
        bits: list[int] = []
        for k in placement:
            bits.extend(index_to_bits(int(k), self.m))
        return tuple(bits)

    def violation_count(self, codes: Sequence[int]) -> int:
        p = self.problem
        v = sum(1 for k in codes if k >= self.num_pools)
        for k in self.memory_pools:
            load = sum(int(self.weight[s]) for s, kk in enumerate(codes) if kk == k)
            v += int(not self.fit_tables[k][load])
        if self.hop_limit is not None:
            regions = [p.region_of_pool[k] if k < self.num_pools else -1 - k for k in codes]
            hops = sum(1 for s in range(len(codes) - 1) if regions[s] != regions[s + 1])
            v += max(0, hops - self.hop_limit)
        if self.latency_limit is not None:
            total = sum(
                float(self.latency_ext[codes[s], codes[s + 1]]) for s in range(len(codes) - 1)
            )
            v += int(total > self.latency_limit + model.LATENCY_TOL_MS)
        return v

    def energy(self, bits: Sequence[int]) -> float:
        codes = self.codes_of(bits)
        e = sum(float(self.compute_ext[s, k]) for s, k in enumerate(codes))
        e += sum(float(self.link_ext[codes[s], codes[s + 1]]) for s in range(len(codes) - 1))
        return e + self.penalty * self.violation_count(codes)

    # ------------------------------------------------------------------ whole diagonal

    def diagonal(self) -> FloatArray:
        """Energy of every basis state (2**n float64)."""
        out = np.empty(1 << self.num_qubits)
        for lo, chunk in self.diagonal_chunks():
            out[lo : lo + chunk.size] = chunk
        return out

    def scaled_diagonal(self, offset: float, scale: float) -> npt.NDArray[np.float32]:
        """``(diagonal() - offset) / scale`` as float32, without a float64 copy of the whole."""
        out = np.empty(1 << self.num_qubits, dtype=np.float32)
        for lo, chunk in self.diagonal_chunks():
            out[lo : lo + chunk.size] = (chunk - offset) / scale
        return out

    def diagonal_chunks(self) -> Iterator[tuple[int, FloatArray]]:
        """(first index, energies) over slices that tile the diagonal, in no particular order.

        The shards split into a head (most significant) and a tail of at most ``TAIL_QUBITS``
        qubits, each tabulated once (energy, boundary codes, memory loads, region hops). The tail's
        contribution depends on a head row only through its signature (last code, loads, hops),
        so it is computed once per distinct signature and added to each row's head energy.
        Memory: one tail-sized vector at a time."""
        tail_shards = min(self.num_shards, max(1, TAIL_QUBITS // self.m))
        head = self._block(0, self.num_shards - tail_shards)
        tail = self._block(self.num_shards - tail_shards, tail_shards)
        width = tail.energy.size
        # Latency enters the signature as its rank among the distinct head latencies, so the
        # signature stays integral (inf, for a forbidden boundary, included).
        lat_values, lat_rank = np.unique(head.latency, return_inverse=True)
        signature = np.stack([head.last, head.hops, lat_rank.ravel(), *head.loads.values()], axis=1)
        unique, inverse = np.unique(signature, axis=0, return_inverse=True)
        for u, (last, hops, rank, *loads) in enumerate(unique.tolist()):
            extra = tail.energy.copy()
            if head.shards:
                extra += self.link_ext[last, tail.first]
            for k, load in zip(self.memory_pools, loads, strict=True):
                extra += self.penalty * ~self.fit_tables[k][tail.loads[k] + load]
            if self.latency_limit is not None:
                total_lat = tail.latency + float(lat_values[rank])
                if head.shards:
                    total_lat = total_lat + self.latency_ext[last, tail.first]
                extra += self.penalty * (total_lat > self.latency_limit + model.LATENCY_TOL_MS)
            if self.hop_limit is not None:
                total = tail.hops + hops
                if head.shards:
                    total += self.region_ext[last] != self.region_ext[tail.first]
                extra += self.penalty * np.maximum(total - self.hop_limit, 0)
            for row in np.flatnonzero(inverse.ravel() == u).tolist():
                yield row * width, extra + head.energy[row]

    def _block(self, first_shard: int, count: int) -> _Block:
        """Every assignment of codes to shards first_shard .. first_shard + count - 1."""
        code = np.arange(self.codes)
        unused = self.penalty * (code >= self.num_pools)
        energy = np.zeros(1)
        first = last = np.zeros(1, dtype=np.int64)
        loads = {k: np.zeros(1, dtype=np.int64) for k in self.memory_pools}
        hops = np.zeros(1, dtype=np.int32)
        latency = np.zeros(1)
        for s in range(first_shard, first_shard + count):
            step = self.compute_ext[s] + unused
            w_s = int(self.weight[s])
            if s == first_shard:
                energy, first, last = step.copy(), code.copy(), code.copy()
                loads = {k: (code == k).astype(np.int64) * w_s for k in loads}
                hops = np.zeros(self.codes, dtype=np.int32)
                latency = np.zeros(self.codes)
                continue
            energy = (energy[:, None] + self.link_ext[last] + step[None, :]).ravel()
            loads = {k: (v[:, None] + (code == k) * w_s).ravel() for k, v in loads.items()}
            change = self.region_ext[last][:, None] != self.region_ext[None, :]
            hops = (hops[:, None] + change).ravel()
            if self.latency_limit is not None:
                latency = (latency[:, None] + self.latency_ext[last]).ravel()
            else:
                latency = np.zeros(energy.size)
            first = np.repeat(first, self.codes)
            last = np.tile(code, last.size)
        return _Block(count, energy, first, last, loads, hops, latency)

    # ------------------------------------------------------------------------- Ising

    @cached_property
    def local_terms(self) -> IsingTerms:
        """The local part (compute, link, unused codes) as a sparse Ising polynomial."""
        n, m = self.num_qubits, self.m
        acc: dict[int, float] = {}
        offset = 0.0

        def add(values: FloatArray, first_qubit: int, width: int) -> None:
            nonlocal offset
            coeffs = walsh_coefficients(values)
            offset += float(coeffs[0])
            for j in range(1, coeffs.size):
                if abs(coeffs[j]) > 1e-15 * max(1.0, float(np.abs(coeffs).max())):
                    mask = j << (n - first_qubit - width)
                    acc[mask] = acc.get(mask, 0.0) + float(coeffs[j])

        unused = self.penalty * (np.arange(self.codes) >= self.num_pools)
        for s in range(self.num_shards):
            add(self.compute_ext[s] + unused, s * m, m)
        for s in range(self.num_shards - 1):
            add(self.link_ext.ravel(), s * m, 2 * m)
        masks = np.array(sorted(acc), dtype=np.int64)
        return IsingTerms(n, masks, np.array([acc[int(k)] for k in masks]), offset)

    def ising(self) -> IsingTerms:
        """The whole diagonal as an Ising polynomial: the local terms when no global limit can
        bind, else an exact Walsh transform of the diagonal (small n only)."""
        if not self.has_global_penalty:
            return self.local_terms
        if self.num_qubits > 20:
            raise ValueError("a dense Ising expansion is only built for <= 20 qubits")
        coeffs = walsh_coefficients(self.diagonal())
        scale = max(1.0, float(np.abs(coeffs).max()))
        keep = np.nonzero(np.abs(coeffs) > 1e-13 * scale)[0]
        keep = keep[keep != 0]
        return IsingTerms(self.num_qubits, keep.astype(np.int64), coeffs[keep], float(coeffs[0]))

    def scale(self) -> float:
        """The largest |coefficient| of the local polynomial: the unit for QAOA angles."""
        coeffs = self.local_terms.coeffs
        return float(np.abs(coeffs).max()) if coeffs.size else 1.0
