"""Prometheus metrics of the operator (served by `greenshard run --metrics-port`)."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.reconciles = Counter(
            "greenshard_reconciles",
            "Reconcile passes that did work, by result.",
            ["result"],
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "greenshard_reconcile_seconds",
            "Seconds per reconcile pass that did work.",
            registry=self.registry,
        )
        self.solver_seconds = Histogram(
            "greenshard_solver_seconds",
            "Seconds to plan (solve, verify, baseline).",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.api_writes = Counter(
            "greenshard_api_writes",
            "Writes to the Kubernetes API, by kind (status, deployment.create, ...).",
            ["what"],
            registry=self.registry,
        )
        self.predicted_grams = Gauge(
            "greenshard_predicted_grams_per_hour",
            "Predicted gCO2e per hour of each InferenceDeployment.",
            ["namespace", "name"],
            registry=self.registry,
        )

    def serve(self, port: int, address: str = "0.0.0.0") -> None:
        start_http_server(port, addr=address, registry=self.registry)

    def reconciled(self, result: str, seconds: float) -> None:
        self.reconciles.labels(result=result).inc()
        self.reconcile_seconds.observe(seconds)

    def wrote(self, what: str) -> None:
        self.api_writes.labels(what=what).inc()

    def solved(self, seconds: float) -> None:
        self.solver_seconds.observe(seconds)

    def predicted(self, namespace: str, name: str, grams_per_hour: float | None) -> None:
        if grams_per_hour is None:
            with contextlib.suppress(KeyError):
                self.predicted_grams.remove(namespace, name)
        else:
            self.predicted_grams.labels(namespace=namespace, name=name).set(grams_per_hour)
