"""The operator's Prometheus series after real reconcile passes (the in-memory API of
test_controller): controller-runtime's names, the carbon series with their units, and every
series the chart's Grafana dashboard queries."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from test_controller import KEY, FakeApi, InlineSolver, load

from greenshard.k8s import controller as ctl
from greenshard.k8s import observe
from greenshard.k8s.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]


def sample(metrics: Metrics, series: str, **labels: str) -> float | None:
    value = metrics.registry.get_sample_value(series, labels)
    return None if value is None else float(value)


@pytest.fixture
def setup() -> tuple[ctl.Controller, FakeApi, Metrics]:
    nodes = {
        n["metadata"]["name"]: observe.node_facts(n) for n in load("examples/nodes.yaml")["items"]
    }
    doc = load("crds/samples/llama-70b.yaml")
    doc["metadata"] = {"name": "llama", "namespace": "ml", "uid": "u-1", "generation": 1}
    doc["spec"]["solver"] = {"algorithm": "exact"}
    doc["spec"]["template"] = {"spec": {"containers": [{"name": "s", "image": "pause"}]}}
    caches = observe.Caches(
        nodes=nodes,
        profiles={"default": load("crds/samples/gridprofile.yaml")},
        infds={KEY: doc},
        shards={},
    )
    api = FakeApi(caches)
    metrics = Metrics(CollectorRegistry())
    controller = ctl.Controller(api, InlineSolver(), metrics, hour=lambda: 12)
    controller.attach(caches)
    return controller, api, metrics


def run(controller: ctl.Controller) -> None:
    """A pass that looks at every deployment (as after any change; the queue that picks which
    ones a pass visits is tested in test_controller_queue.py)."""
    controller.mark_all()
    asyncio.run(controller.pass_all())


def test_a_pass_reports_controller_runtime_and_carbon_series(setup: Any) -> None:
    controller, api, metrics = setup
    cr = {"controller": "inferencedeployment"}
    assert sample(metrics, "controller_runtime_max_concurrent_reconciles", **cr) == 1
    assert sample(metrics, "controller_runtime_reconcile_total", result="success", **cr) == 0
    run(controller)
    assert sample(metrics, "controller_runtime_reconcile_total", result="success", **cr) == 1
    assert sample(metrics, "controller_runtime_reconcile_errors_total", **cr) == 0
    assert sample(metrics, "controller_runtime_reconcile_time_seconds_count", **cr) == 1
    assert sample(metrics, "workqueue_depth", name="inferencedeployment") == 0
    assert sample(metrics, "controller_runtime_active_workers", **cr) == 0

    emissions = api.caches.infds[KEY]["status"]["emissions"]
    ident = {"namespace": "ml", "name": "llama"}
    predicted = sample(metrics, "greenshard_predicted_emissions_grams_per_hour", **ident)
    baseline = sample(metrics, "greenshard_baseline_emissions_grams_per_hour", **ident)
    assert predicted == pytest.approx(emissions["gramsPerHour"], rel=1e-5)
    assert baseline == pytest.approx(emissions["baselineGramsPerHour"], rel=1e-5)
    saving = sample(metrics, "greenshard_savings_ratio", **ident)
    assert saving == pytest.approx(emissions["savingsPercent"] / 100, abs=1e-5)  # 3 decimals
    assert 0 < saving < 1
    # The hour's intensity of each region the plan saw (the sample profile, UTC hour 12).
    profile = load("crds/samples/gridprofile.yaml")["spec"]["regions"]
    for region in ("eu-north-1", "us-east-1"):
        got = sample(
            metrics,
            "greenshard_grid_intensity_grams_per_kilowatt_hour",
            profile="default",
            region=region,
        )
        assert got == profile[region]["intensity"][12]
    assert sample(metrics, "greenshard_solver_duration_seconds_count") == 1
    assert sample(metrics, "greenshard_shard_moves_total", **ident) is None


def test_moves_are_counted_per_shard(setup: Any) -> None:
    controller, api, metrics = setup
    api.caches.infds[KEY]["spec"]["carbon"] = {"minSavingsPercent": 1}
    run(controller)
    first = [r["pool"] for r in api.caches.infds[KEY]["status"]["placement"]]
    # eu-north-1 becomes the dirtiest region: every shard on it moves.
    api.caches.profiles["default"]["spec"]["regions"]["eu-north-1"]["intensity"] = 4000
    run(controller)
    now = [r["pool"] for r in api.caches.infds[KEY]["status"]["placement"]]
    moved = sum(a != b for a, b in zip(first, now, strict=True))
    assert moved > 0
    ident = {"namespace": "ml", "name": "llama"}
    assert sample(metrics, "greenshard_shard_moves_total", **ident) == moved
    # Gone: its series go too.
    api.caches.infds = {}
    run(controller)
    assert sample(metrics, "greenshard_predicted_emissions_grams_per_hour", **ident) is None
    assert sample(metrics, "greenshard_shard_moves_total", **ident) is None


def test_a_crash_is_a_controller_runtime_error(setup: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    controller, _, metrics = setup

    async def crash(*_: Any) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr(controller, "reconcile", crash)
    run(controller)
    cr = {"controller": "inferencedeployment"}
    assert sample(metrics, "controller_runtime_reconcile_errors_total", **cr) == 1
    assert sample(metrics, "controller_runtime_reconcile_total", result="error", **cr) == 1
    assert sample(metrics, "controller_runtime_reconcile_total", result="success", **cr) == 0


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        (
            "QAOA on 30 qubits needs about 16.0 GiB, over the solver memory bound of 1.2 GiB",
            "memory",
        ),
        ("qaoa used 2.1 GiB, over the 1.2 GiB solver memory bound", "memory"),
        ("qaoa ran past the 30 s solver time bound", "timeout"),
        ("the qaoa solver process died", "crash"),
        ("qaoa failed (ValueError: bad)", "error"),
        ("something new", "other"),
    ],
)
def test_fallback_reasons_become_few_labels(reason: str, label: str) -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.solved(0.5, reason)
    assert sample(metrics, "greenshard_solver_fallbacks_total", reason=label) == 1


def test_provider_errors_and_exposition_names() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.provider_failed("live", "electricityMaps", 2)
    assert (
        sample(
            metrics, "greenshard_provider_errors_total", profile="live", provider="electricityMaps"
        )
        == 2
    )
    text = generate_latest(metrics.registry).decode()
    for name in (
        "controller_runtime_reconcile_total",
        "controller_runtime_reconcile_errors_total",
        "controller_runtime_reconcile_time_seconds_bucket",
        "workqueue_depth",
    ):
        assert re.search(rf"^{name}\{{", text, flags=re.MULTILINE), name


def test_every_series_the_dashboard_queries_is_exported(setup: Any) -> None:
    controller, _, metrics = setup
    run(controller)
    metrics.solved(0.1, "the qaoa solver process died")
    metrics.provider_failed("live", "wattTime")
    metrics.moved("ml", "llama", 1)
    exported = set(re.findall(r"^([a-z_:]+)[{ ]", generate_latest(metrics.registry).decode(), re.M))
    dashboard = json.loads((ROOT / "charts/greenshard/dashboards/greenshard.json").read_text())
    queried = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            queried |= set(re.findall(r"\b([a-z_]+)(?=\{|\[)", target["expr"]))
    assert len(queried) >= 8
    assert queried <= exported, queried - exported
