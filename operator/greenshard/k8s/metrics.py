"""Prometheus metrics of the operator (served by `greenshard run --metrics-port`).

Three families, all on one registry:

- the names kubebuilder/controller-runtime operators export, so their standard alerts and
  dashboards work unchanged (``controller`` label ``inferencedeployment``):
  ``controller_runtime_reconcile_total{result}``, ``controller_runtime_reconcile_errors_total``,
  ``controller_runtime_reconcile_time_seconds``, ``controller_runtime_active_workers``,
  ``controller_runtime_max_concurrent_reconciles`` and ``workqueue_depth{name}``;
- the carbon series, with their units in their names: predicted and carbon-unaware baseline
  emissions (``_grams_per_hour``), the saving (``_ratio``, 0..1), grid intensity per region
  (``_grams_per_kilowatt_hour``), shard moves, solver fallbacks and provider errors;
- the operator's own: reconciles by result, reconcile and solver seconds, API writes.

docs/metrics.md lists them with their labels.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

CONTROLLER = "inferencedeployment"
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
SOLVER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # -- controller-runtime compatible -------------------------------------------------
        self.cr_reconciles = Counter(
            "controller_runtime_reconcile_total",
            "Total number of reconciliations per controller (controller-runtime's name).",
            ["controller", "result"],
            registry=r,
        )
        self.cr_errors = Counter(
            "controller_runtime_reconcile_errors_total",
            "Total number of reconciliation errors per controller (controller-runtime's name).",
            ["controller"],
            registry=r,
        )
        self.cr_seconds = Histogram(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller (controller-runtime's name).",
            ["controller"],
            buckets=RECONCILE_BUCKETS,
            registry=r,
        )
        self.cr_active = Gauge(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller.",
            ["controller"],
            registry=r,
        )
        self.cr_max = Gauge(
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller.",
            ["controller"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "workqueue_depth",
            "InferenceDeployments waiting for the current reconcile pass (client-go's name).",
            ["name"],
            registry=r,
        )
        # One sequential loop: one worker at most.
        self.cr_max.labels(controller=CONTROLLER).set(1)
        self.cr_active.labels(controller=CONTROLLER).set(0)
        self.queue_depth.labels(name=CONTROLLER).set(0)
        self.cr_errors.labels(controller=CONTROLLER)
        self.cr_seconds.labels(controller=CONTROLLER)
        for result in ("success", "error"):
            self.cr_reconciles.labels(controller=CONTROLLER, result=result)

        # -- carbon ----------------------------------------------------------------------
        self.predicted_grams = Gauge(
            "greenshard_predicted_emissions_grams_per_hour",
            "Predicted emissions of each InferenceDeployment's placement, gCO2e per hour.",
            ["namespace", "name"],
            registry=r,
        )
        self.baseline_grams = Gauge(
            "greenshard_baseline_emissions_grams_per_hour",
            "Emissions of the carbon-unaware baseline placement, gCO2e per hour.",
            ["namespace", "name"],
            registry=r,
        )
        self.savings = Gauge(
            "greenshard_savings_ratio",
            "1 - predicted / baseline emissions (0..1).",
            ["namespace", "name"],
            registry=r,
        )
        self.intensity = Gauge(
            "greenshard_grid_intensity_grams_per_kilowatt_hour",
            "Grid carbon intensity planning used for each region of each GridProfile, gCO2e/kWh.",
            ["profile", "region"],
            registry=r,
        )
        self.moves = Counter(
            "greenshard_shard_moves_total",
            "Shards moved to another pool by a re-plan.",
            ["namespace", "name"],
            registry=r,
        )
        self.fallbacks = Counter(
            "greenshard_solver_fallbacks_total",
            "Plans whose QAOA solve fell back to the exact solver, by reason.",
            ["reason"],
            registry=r,
        )
        self.provider_errors = Counter(
            "greenshard_provider_errors_total",
            "Failed fetches from a GridProfile's carbon intensity provider (per region).",
            ["profile", "provider"],
            registry=r,
        )

        # -- the operator's own --------------------------------------------------------------
        self.reconciles = Counter(
            "greenshard_reconciles",
            "Reconcile passes that did work, by result.",
            ["result"],
            registry=r,
        )
        self.reconcile_seconds = Histogram(
            "greenshard_reconcile_seconds",
            "Seconds per reconcile pass that did work.",
            registry=r,
        )
        self.solver_seconds = Histogram(
            "greenshard_solver_duration_seconds",
            "Seconds to plan (solve, verify against the exact optimum, baseline).",
            buckets=SOLVER_BUCKETS,
            registry=r,
        )
        self.api_writes = Counter(
            "greenshard_api_writes",
            "Writes to the Kubernetes API, by kind (status, deployment.create, ...).",
            ["what"],
            registry=r,
        )

    def serve(self, port: int, address: str = "0.0.0.0") -> None:
        start_http_server(port, addr=address, registry=self.registry)

    # -- reconcile loop ----------------------------------------------------------------------

    def queued(self, depth: int) -> None:
        """DEPTH InferenceDeployments wait in the current pass; a worker is busy while > 0."""
        self.queue_depth.labels(name=CONTROLLER).set(depth)
        self.cr_active.labels(controller=CONTROLLER).set(1 if depth else 0)

    def reconciled(self, result: str, seconds: float) -> None:
        """A pass over one InferenceDeployment that did work (RESULT: updated, failed, error,
        gone ...). "error" (an exception or an API error) is controller-runtime's error."""
        self.reconciles.labels(result=result).inc()
        self.reconcile_seconds.observe(seconds)
        error = result == "error"
        self.cr_reconciles.labels(
            controller=CONTROLLER, result="error" if error else "success"
        ).inc()
        if error:
            self.cr_errors.labels(controller=CONTROLLER).inc()
        self.cr_seconds.labels(controller=CONTROLLER).observe(seconds)

    def wrote(self, what: str) -> None:
        self.api_writes.labels(what=what).inc()

    # -- planning ----------------------------------------------------------------------------

    def solved(self, seconds: float, fallback_reason: str | None = None) -> None:
        self.solver_seconds.observe(seconds)
        if fallback_reason:
            self.fallbacks.labels(reason=_reason_label(fallback_reason)).inc()

    def planned(
        self, namespace: str, name: str, grams_per_hour: float, baseline_grams_per_hour: float
    ) -> None:
        self.predicted_grams.labels(namespace=namespace, name=name).set(grams_per_hour)
        self.baseline_grams.labels(namespace=namespace, name=name).set(baseline_grams_per_hour)
        saving = 1.0 - grams_per_hour / baseline_grams_per_hour if baseline_grams_per_hour else 0.0
        self.savings.labels(namespace=namespace, name=name).set(saving)

    def forget(self, namespace: str, name: str) -> None:
        """The InferenceDeployment is gone: drop its series."""
        for gauge in (self.predicted_grams, self.baseline_grams, self.savings):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, name)
        with contextlib.suppress(KeyError):
            self.moves.remove(namespace, name)

    def moved(self, namespace: str, name: str, shards: int) -> None:
        if shards > 0:
            self.moves.labels(namespace=namespace, name=name).inc(shards)

    def grid(self, profile: str, intensities: dict[str, float]) -> None:
        """The intensity (gCO2e/kWh) planning used for each region of PROFILE."""
        for region, value in intensities.items():
            self.intensity.labels(profile=profile, region=region).set(value)

    def provider_failed(self, profile: str, provider: str, regions: int = 1) -> None:
        self.provider_errors.labels(profile=profile, provider=provider).inc(regions)


def _reason_label(reason: str) -> str:
    """A low-cardinality label for a fallback message of k8s.solving: memory, timeout, crash,
    error or other."""
    text = reason.lower()
    for label, words in (
        ("memory", ("memory", "gib")),
        ("timeout", ("time bound", "timed out", "timeout")),
        ("crash", ("died", "killed", "crash")),
        ("error", ("failed", "error")),
    ):
        if any(word in text for word in words):
            return label
    return "other"
