"""The operator's /metrics on the local control plane: after an InferenceDeployment is planned,
controller-runtime's series count the reconciles and the carbon series match its status."""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from operator_harness import ROOT, Operator, running_operator
from prometheus_client.parser import text_string_to_metric_families

SAMPLE = yaml.safe_load((ROOT / "crds/samples/llama-70b.yaml").read_text())
PROFILE = yaml.safe_load((ROOT / "crds/samples/gridprofile.yaml").read_text())


@pytest.fixture(scope="module")
def operator(crds: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    with running_operator(crds.kubeconfig, tmp_path_factory.mktemp("operator")) as op:
        yield op


def samples(op: Operator) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(op.metrics()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = float(s.value)
    return out


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], series: str, **labels: str
) -> float:
    return found[(series, frozenset(labels.items()))]


def test_metrics_after_a_plan(crds: Any, operator: Operator, namespace: str) -> None:
    profile = copy.deepcopy(PROFILE)
    profile["metadata"] = {"name": namespace}
    crds.apply_yaml(yaml.safe_dump(profile))
    doc = copy.deepcopy(SAMPLE)
    doc["metadata"] = {"name": "metered", "namespace": namespace}
    doc["spec"]["mode"] = "DryRun"
    doc["spec"]["carbon"] = {"gridProfile": namespace}
    crds.apply_yaml(yaml.safe_dump(doc))
    crds.kubectl(
        "wait", "--for=condition=Ready", "infd/metered", "--timeout=120s",
        namespace=namespace, timeout=150,
    )  # fmt: skip
    status = crds.get_json("infd", "metered", namespace=namespace)["status"]
    ident = {"namespace": namespace, "name": "metered"}

    def planned() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        found = samples(operator)
        key = ("greenshard_predicted_emissions_grams_per_hour", frozenset(ident.items()))
        return found if key in found else None

    found = crds.wait(planned, timeout=30, what="the emissions series")
    cr = {"controller": "inferencedeployment"}
    assert value(found, "controller_runtime_reconcile_total", result="success", **cr) >= 1
    assert value(found, "controller_runtime_reconcile_errors_total", **cr) == 0
    assert value(found, "controller_runtime_reconcile_time_seconds_count", **cr) >= 1
    assert ("workqueue_depth", frozenset({("name", "inferencedeployment")})) in found
    emissions = status["emissions"]
    assert value(found, "greenshard_predicted_emissions_grams_per_hour", **ident) == pytest.approx(
        emissions["gramsPerHour"], rel=1e-5
    )
    assert value(found, "greenshard_baseline_emissions_grams_per_hour", **ident) == pytest.approx(
        emissions["baselineGramsPerHour"], rel=1e-5
    )
    assert value(found, "greenshard_savings_ratio", **ident) == pytest.approx(
        emissions["savingsPercent"] / 100, abs=1e-4
    )
    hour = emissions["hour"]
    intensity = value(
        found,
        "greenshard_grid_intensity_grams_per_kilowatt_hour",
        profile=namespace,
        region="eu-north-1",
    )
    assert intensity == PROFILE["spec"]["regions"]["eu-north-1"]["intensity"][hour]
    assert value(found, "greenshard_solver_duration_seconds_count") >= 1
    crds.kubectl("delete", "gridprofile", namespace, "--wait=false")


def test_kubectl_get_gridprofile_shows_a_static_profile(crds: Any, operator: Operator) -> None:
    import datetime as dt

    name = f"static-{operator.metrics_port}"
    profile = copy.deepcopy(PROFILE)
    profile["metadata"] = {"name": name}
    crds.apply_yaml(yaml.safe_dump(profile))
    try:

        def row() -> dict[str, str] | None:
            header, line = crds.kubectl("get", "gp", name).stdout.splitlines()
            starts = [m.start() for m in re.finditer(r"\S+", header)] + [len(line) + 1]
            cells = {header[a:b].strip(): line[a:b].strip() for a, b in itertools.pairwise(starts)}
            return cells if cells["PROVIDER"] and cells["REGIONS"] else None

        cells = crds.wait(row, timeout=60, what="the static profile's status")
        assert cells["PROVIDER"] == "static"
        hours = {dt.datetime.now(dt.UTC).hour, (dt.datetime.now(dt.UTC).hour - 1) % 24}
        regions = PROFILE["spec"]["regions"]
        expected = {
            ",".join(f"{r}={regions[r]['intensity'][h]:g}" for r in sorted(regions)) for h in hours
        }
        assert cells["REGIONS"] in expected, cells
    finally:
        crds.kubectl("delete", "gridprofile", name, "--wait=false")
