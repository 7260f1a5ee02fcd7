"""Feasibility (v2) of docs/cost-model.md as plain numbers: whole GPUs node by node, exact
packing per pool, region hops and pipeline latency.

:class:`Capacity` answers "can pool k hold R replicas of exactly these shards?" exactly (bin
packing, :mod:`greenshard.packing`) and fast, for every solver:

* A replica of shard s needs ``demand[s][k]`` units of pool k: GPUs on a GPU pool, bytes on a
  CPU pool. Shards with the same layer count have the same demand everywhere, and there are at
  most two layer counts (``floor(L/S)`` and ``ceil(L/S)``), so what a pool holds is fully
  described by how many shards of each *class* it holds. That count vector is written as one
  integer, ``sum_s weight[s]`` over the pool's shards (mixed radix), so a solver tracks a pool's
  load exactly as it tracked layers before, and asks ``fits(k, index)``.
* ``fits`` is memoised; :meth:`fit_table` tabulates every index of a pool at once (numpy),
  which the vectorised solvers (brute force, QAOA diagonals) index with their loads.

Standard library and numpy only; nothing here knows Kubernetes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from greenshard import packing

GPU = "gpu"
BYTES = "bytes"


def gpus_per_replica(weight_bytes: float, overhead: float, gpu_memory_bytes: float) -> int:
    """``ceil(W_s * (1 + o) / m_k)``, robust to float noise at exact multiples."""
    if gpu_memory_bytes <= 0:
        raise ValueError("GPU memory must be positive")
    ratio = weight_bytes * (1.0 + overhead) / gpu_memory_bytes
    return max(1, math.ceil(ratio * (1.0 - 1e-12)))


def replica_bytes(weight_bytes: float, overhead: float) -> int:
    """``W_s * (1 + o)`` bytes, rounded up to a whole byte."""
    return math.ceil(weight_bytes * (1.0 + overhead) * (1.0 - 1e-15))


@dataclass(frozen=True)
class NodeUsage:
    """What others hold on one node: GPUs, memory bytes and pod slots (pods, other deployments'
    plans)."""

    gpus: int = 0
    memory_bytes: float = 0.0
    pods: int = 0

    def plus(self, gpus: int, memory_bytes: float, pods: int) -> NodeUsage:
        return NodeUsage(self.gpus + gpus, self.memory_bytes + memory_bytes, self.pods + pods)


@dataclass(frozen=True)
class PoolNodes:
    """The nodes of one pool and what is free on each (GPUs, or bytes on a CPU pool), and the
    pod slots free on each (``status.allocatable.pods`` less the pods there; None: no limit)."""

    names: tuple[str, ...]
    free: tuple[int, ...]
    total: tuple[int, ...]  # before other pods and plans
    unit: str  # GPU | BYTES
    gpu_memory_bytes: float = 0.0  # per GPU (GPU pools)
    slots: tuple[int, ...] | None = None

    @property
    def free_sum(self) -> int:
        return sum(self.free)

    @property
    def free_max(self) -> int:
        """Most units free on one node that has a free pod slot."""
        return max(
            (f for j, f in enumerate(self.free) if self.slots is None or self.slots[j] > 0),
            default=0,
        )

    @property
    def slots_sum(self) -> int | None:
        return None if self.slots is None else sum(self.slots)

    def amount(self, units: int) -> str:
        if self.unit == GPU:
            return f"{units} GPU" + ("" if units == 1 else "s")
        return f"{units / 2**30:.1f} GiB"


@dataclass(eq=False)
class Capacity:
    """Per-pool packing of shard replicas; see the module docstring."""

    pools: tuple[PoolNodes, ...]
    demand: tuple[tuple[int, ...], ...]  # demand[s][k]: units per replica of shard s on pool k
    shard_class: tuple[int, ...]  # class of each shard (shards with equal demand everywhere)
    replicas: int
    _memo: dict[tuple[int, int], bool] = field(default_factory=dict, repr=False)
    _tables: dict[int, npt.NDArray[np.bool_]] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls, pools: Sequence[PoolNodes], demand: Sequence[Sequence[int]], replicas: int
    ) -> Capacity:
        rows = tuple(tuple(int(x) for x in row) for row in demand)
        classes: dict[tuple[int, ...], int] = {}
        shard_class = tuple(classes.setdefault(row, len(classes)) for row in rows)
        return cls(tuple(pools), rows, shard_class, int(replicas))

    # -------------------------------------------------------------------- the load index

    @property
    def num_classes(self) -> int:
        return max(self.shard_class, default=-1) + 1

    @property
    def class_sizes(self) -> tuple[int, ...]:
        sizes = [0] * self.num_classes
        for c in self.shard_class:
            sizes[c] += 1
        return tuple(sizes)

    @property
    def strides(self) -> tuple[int, ...]:
        out, acc = [], 1
        for size in self.class_sizes:
            out.append(acc)
            acc *= size + 1
        return tuple(out)

    @property
    def index_count(self) -> int:
        """Number of load indices: prod(class size + 1)."""
        return math.prod(size + 1 for size in self.class_sizes)

    @property
    def weight(self) -> npt.NDArray[np.int64]:
        """(S,) what shard s adds to the load index of the pool it is placed on."""
        strides = self.strides
        return np.array([strides[c] for c in self.shard_class], dtype=np.int64)

    def counts_of(self, index: int) -> tuple[int, ...]:
        out = []
        for size in self.class_sizes:
            index, count = divmod(index, size + 1)
            out.append(count)
        return tuple(out)

    def index_of(self, shards: Sequence[int]) -> int:
        strides = self.strides
        return sum(strides[self.shard_class[s]] for s in shards)

    # ------------------------------------------------------------------------- answers

    def allowed(self, shard: int, pool: int) -> bool:
        """Whether some node of the pool can hold one replica of the shard."""
        return self.demand[shard][pool] <= self.pools[pool].free_max

    def _items(self, pool: int, index: int) -> list[int]:
        representative = {c: s for s, c in reversed(list(enumerate(self.shard_class)))}
        items: list[int] = []
        for c, count in enumerate(self.counts_of(index)):
            if count:
                items += [self.demand[representative[c]][pool]] * (count * self.replicas)
        return items

    def fits(self, pool: int, index: int) -> bool:
        """Whether pool ``pool`` can hold R replicas of the shards that load index describes."""
        key = (pool, index)
        hit = self._memo.get(key)
        if hit is None:
            nodes = self.pools[pool]
            hit = packing.fits(self._items(pool, index), nodes.free, nodes.slots)
            self._memo[key] = hit
        return hit

    def fits_shards(self, pool: int, shards: Sequence[int]) -> bool:
        return self.fits(pool, self.index_of(shards))

    def fit_table(self, pool: int) -> npt.NDArray[np.bool_]:
        """``table[index]`` = fits(pool, index) for every load index (shape (index_count,))."""
        table = self._tables.get(pool)
        if table is None:
            table = np.array([self.fits(pool, i) for i in range(self.index_count)], dtype=np.bool_)
            self._tables[pool] = table
        return table

    def always_fits(self, pool: int) -> bool:
        """Whether the pool holds every shard at once (then it never constrains)."""
        return self.fits(pool, self.index_count - 1)

    def pack(self, pool: int, shards: Sequence[int]) -> dict[str, list[int]] | None:
        """Node name -> shard indices (one entry per replica), or None when they do not fit."""
        items = [s for s in shards for _ in range(self.replicas)]
        nodes = self.pools[pool]
        found = packing.pack([self.demand[s][pool] for s in items], nodes.free, nodes.slots)
        if found is None:
            return None
        out: dict[str, list[int]] = {}
        for shard, j in zip(items, found, strict=True):
            out.setdefault(nodes.names[j], []).append(shard)
        return {name: sorted(v) for name, v in sorted(out.items())}

    def shortfall(self, pool: int, shards: Sequence[int]) -> str:
        """Why these shards do not fit the pool, in numbers."""
        nodes = self.pools[pool]
        need = sum(self.demand[s][pool] for s in shards) * self.replicas
        per = sorted({self.demand[s][pool] for s in shards})
        per_text = (
            "/".join(str(x) for x in per)
            if nodes.unit == GPU
            else "/".join(f"{x / 2**30:.1f} GiB" for x in per)
        )
        pods = len(shards) * self.replicas
        slots = (
            ""
            if nodes.slots is None
            else f"; free pod slots: {nodes.slots_sum} for {pods} pod(s), at most "
            f"{max(nodes.slots, default=0)} on one node"
        )
        return (
            f"shards {_ranges(shards)} need {nodes.amount(need)} ({self.replicas} replica(s) "
            f"of {per_text}{' GPUs' if nodes.unit == GPU else ''} each, a replica on one node); "
            f"free: {nodes.amount(nodes.free_sum)} of {nodes.amount(sum(nodes.total))}, at most "
            f"{nodes.amount(nodes.free_max)} on one node{slots}"
        )


def _ranges(items: Sequence[int]) -> str:
    values = sorted(set(items))
    parts: list[str] = []
    start = prev = None
    for v in values:
        if start is None:
            start = prev = v
        elif prev is not None and v == prev + 1:
            prev = v
        else:
            parts.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = v
    if start is not None:
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ",".join(parts)
