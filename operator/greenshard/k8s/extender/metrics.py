"""The extender's Prometheus metrics: requests, latency, decisions, failed nodes, cache size."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

DECISIONS = {
    "filter": ("passthrough", "no-profile", "passed", "filtered"),
    "prioritize": ("passthrough", "no-profile", "scored"),
}


class ExtenderMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "greenshard_extender_requests",
            "Extender HTTP requests, by verb (filter, prioritize) and status code.",
            ["verb", "code"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "greenshard_extender_request_seconds",
            "Seconds to answer an extender request (body read to response built), by verb.",
            ["verb"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0),
            registry=self.registry,
        )
        self.decisions = Counter(
            "greenshard_extender_decisions",
            "Pods judged, by verb and decision: passthrough (not opted in), no-profile (every "
            "node passes), scored, passed (no node failed), filtered (some node failed).",
            ["verb", "decision"],
            registry=self.registry,
        )
        self.failed_nodes = Counter(
            "greenshard_extender_failed_nodes",
            "Nodes failed by /filter, by cause (unknown, ceiling, bad-annotation).",
            ["cause"],
            registry=self.registry,
        )
        for verb, decisions in DECISIONS.items():  # every series exported from the start
            for decision in decisions:
                self.decisions.labels(verb=verb, decision=decision)
        for cause in ("unknown", "ceiling", "bad-annotation"):
            self.failed_nodes.labels(cause=cause)
        self.nodes = Gauge(
            "greenshard_extender_nodes", "Nodes in the watch cache.", registry=self.registry
        )
        self.profile_loaded = Gauge(
            "greenshard_extender_grid_profile_loaded",
            "1 when the named GridProfile is known and valid, else 0 (every node passes).",
            registry=self.registry,
        )
