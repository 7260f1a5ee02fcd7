"""The filter and prioritize verbs over a ClusterState snapshot (pure: no I/O)."""

from __future__ import annotations

import itertools
import json
import math
from collections import OrderedDict
from typing import Any, cast

import numpy as np
import structlog

from greenshard import carbon_score
from greenshard.k8s.extender.metrics import ExtenderMetrics
from greenshard.k8s.extender.state import ClusterState, Snapshot, host_entries
from greenshard.k8s.extender.wire import MAX_INTENSITY_ANNOTATION, Args, parse_args

log = structlog.get_logger("greenshard.extender")


PRIORITIZE_CACHE_SIZE = 256


def _ceiling(raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


class Extender:
    """The filter and prioritize verbs over a :class:`ClusterState` (no I/O)."""

    def __init__(self, state: ClusterState, metrics: ExtenderMetrics | None = None) -> None:
        self.state = state
        self.metrics = metrics or state.metrics or ExtenderMetrics()
        self._warned_generation = -1
        self._cache: OrderedDict[tuple[str, ...], bytes] = OrderedDict()
        self._cache_snapshot: Snapshot | None = None

    def _decide(self, verb: str, decision: str) -> None:
        self.metrics.decisions.labels(verb=verb, decision=decision).inc()

    def _profile_missing(self, snap: Snapshot, args: Args) -> bool:
        if snap.profile is not None:
            return False
        if self._warned_generation != snap.generation:
            self._warned_generation = snap.generation
            log.warning(
                "no usable GridProfile: carbon-aware pods are not filtered or scored",
                problem=snap.problem,
                pod=args.pod,
            )
        return True

    def filter(self, body: bytes) -> dict[str, Any]:
        args = parse_args(body)
        failed: dict[str, str] = {}
        if not args.opted_in:
            self._decide("filter", "passthrough")
            return self._filter_result(args, args.names, failed)
        snap = self.state.snapshot()
        if self._profile_missing(snap, args):
            self._decide("filter", "no-profile")
            return self._filter_result(args, args.names, failed)
        ceiling: float | None = None
        if args.ceiling is not None:
            ceiling = _ceiling(args.ceiling)
            if ceiling is None:
                reason = (
                    f"greenshard: pod annotation {MAX_INTENSITY_ANNOTATION}={args.ceiling!r} "
                    "is not a non-negative number (gCO2e/kWh)"
                )
                failed = dict.fromkeys(args.names, reason)
                self.metrics.failed_nodes.labels(cause="bad-annotation").inc(len(failed))
                self._decide("filter", "filtered")
                log.info("filter", pod=args.pod, passed=0, failed=len(failed), reason=reason)
                return self._filter_result(args, [], failed)
        passed: list[str] = []
        facts = snap.carbon
        for name in args.names:
            fact = facts.get(name)
            if fact is None:  # not in the watch cache yet: never block on our own lag
                passed.append(name)
            elif fact.reason:
                failed[name] = f"greenshard: {fact.reason}"
                self.metrics.failed_nodes.labels(cause="unknown").inc()
            elif ceiling is not None and carbon_score.exceeds_ceiling(fact, ceiling):
                failed[name] = (
                    f"greenshard: region {fact.region} intensity {fact.intensity:g} gCO2e/kWh "
                    f"is above the pod's {MAX_INTENSITY_ANNOTATION} {ceiling:g}"
                )
                self.metrics.failed_nodes.labels(cause="ceiling").inc()
            else:
                passed.append(name)
        self._decide("filter", "filtered" if failed else "passed")
        if failed:  # one line per pod that lost nodes; nothing per request otherwise (hot path)
            log.info("filter", pod=args.pod, hour=snap.hour, passed=len(passed), failed=len(failed))
        return self._filter_result(args, passed, failed)

    @staticmethod
    def _filter_result(args: Args, passed: list[str], failed: dict[str, str]) -> dict[str, Any]:
        # Unresolvable: preempting other pods never makes a node greener, so the scheduler
        # must not evict anything for these nodes.
        result: dict[str, Any] = {
            "NodeNames": passed,
            "FailedNodes": {},
            "FailedAndUnresolvableNodes": failed,
            "Error": "",
        }
        if args.nodes is not None:
            keep = set(passed)
            result["NodeNames"] = None
            result["Nodes"] = {
                "apiVersion": "v1",
                "kind": "NodeList",
                "metadata": {},
                "items": [
                    n for n, name in zip(args.nodes, args.names, strict=True) if name in keep
                ],
            }
        return result

    def prioritize(self, body: bytes) -> list[dict[str, Any]]:
        """The HostPriorityList for an ExtenderArgs body, as Python objects."""
        parsed: list[dict[str, Any]] = json.loads(self.prioritize_json(body))
        return parsed

    def prioritize_json(self, body: bytes) -> bytes:
        """The HostPriorityList as JSON. Scores depend only on the node names and the snapshot,
        so answers are kept per (snapshot, names): kube-scheduler sends the same feasible set
        for pod after pod."""
        args = parse_args(body)
        if not args.opted_in:
            self._decide("prioritize", "passthrough")
            return b"[]"
        snap = self.state.snapshot()
        if self._profile_missing(snap, args):
            self._decide("prioritize", "no-profile")
            return b"[]"
        self._decide("prioritize", "scored")
        if self._cache_snapshot is not snap:
            self._cache.clear()
            self._cache_snapshot = snap
        key = tuple(args.names)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        # Vectorised: 500 nodes in ~0.1 ms. Unknown emissions are inf: score 0.
        grams = np.fromiter(
            map(snap.grams.get, key, itertools.repeat(math.inf)), np.float64, len(key)
        )
        scores = carbon_score.scores_array(grams).tolist()
        found = list(map(snap.entries.get, key))
        rows = (  # nodes the watch has not seen yet get their entries made here
            [row or host_entries(name) for row, name in zip(found, key, strict=True)]
            if None in found
            else cast(list[tuple[str, ...]], found)
        )
        data = ("[" + ",".join(map(tuple.__getitem__, rows, scores)) + "]").encode()
        self._cache[key] = data
        if len(self._cache) > PRIORITIZE_CACHE_SIZE:
            self._cache.popitem(last=False)
        return data

    def filter_json(self, body: bytes) -> bytes:
        return json.dumps(self.filter(body), separators=(",", ":")).encode()
