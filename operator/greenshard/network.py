"""Round-trip times between regions: GridProfile ``spec.network`` (docs/cost-model.md, "Latency").

``latencyMs`` maps an unordered region pair, written ``"a/b"`` (either order), to a round-trip
time in ms; ``sameRegionLatencyMs`` (default 0.5) applies between two pools of one region, and
0 within one pool. A pipeline's latency is the sum over its shard boundaries. Pure data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from greenshard.errors import InputError

DEFAULT_SAME_REGION_MS = 0.5
MAX_LATENCY_MS = 100_000.0


@dataclass(frozen=True)
class Network:
    """Round-trip times: ``pairs[frozenset({a, b})]`` in ms (a != b)."""

    pairs: Mapping[frozenset[str], float] = field(default_factory=dict)
    same_region_ms: float = DEFAULT_SAME_REGION_MS

    def between(self, region_a: str, region_b: str, same_pool: bool = False) -> float | None:
        """RTT of one boundary, or None when the profile has no entry for the region pair."""
        if same_pool:
            return 0.0
        if region_a == region_b:
            return self.same_region_ms
        return self.pairs.get(frozenset((region_a, region_b)))


def parse_network(data: object, path: str = "spec.network") -> Network:
    """GridProfile ``spec.network`` (None: no pairs, the default same-region time)."""
    if data is None:
        return Network()
    if not isinstance(data, Mapping):
        raise InputError(path, "must be a mapping with latencyMs and sameRegionLatencyMs")
    same = data.get("sameRegionLatencyMs", DEFAULT_SAME_REGION_MS)
    same_ms = _ms(same, f"{path}.sameRegionLatencyMs")
    raw = data.get("latencyMs") or {}
    if not isinstance(raw, Mapping):
        raise InputError(f"{path}.latencyMs", 'must map "regionA/regionB" to milliseconds')
    pairs: dict[frozenset[str], float] = {}
    for key, value in raw.items():
        here = f"{path}.latencyMs[{key!r}]"
        parts = str(key).split("/")
        if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
            raise InputError(here, 'key must be "regionA/regionB" with two different regions')
        pair = frozenset(parts)
        ms = _ms(value, here)
        if pair in pairs and pairs[pair] != ms:
            raise InputError(here, f"conflicts with the reverse pair ({pairs[pair]:g} ms)")
        pairs[pair] = ms
    return Network(pairs, same_ms)


def _ms(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(path, f"must be a number of milliseconds (got {value!r})")
    number = float(value)
    if not math.isfinite(number) or not 0.0 <= number <= MAX_LATENCY_MS:
        raise InputError(path, f"must be 0..{MAX_LATENCY_MS:g} ms (got {value!r})")
    return number


def latency_matrix(network: Network, regions: Sequence[str]) -> list[list[float]]:
    """(K, K) boundary RTT between pools of the given regions; NaN where the pair is unknown."""
    k = len(regions)
    out = [[math.nan] * k for _ in range(k)]
    for a in range(k):
        for b in range(k):
            ms = network.between(regions[a], regions[b], same_pool=a == b)
            out[a][b] = math.nan if ms is None else ms
    return out
