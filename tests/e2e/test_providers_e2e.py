"""Live carbon data end to end: the operator refreshes a GridProfile from a fake
electricityMaps server that the test controls, placements follow the served intensity (within
the hysteresis), the GridProfile status says Fresh / Degraded, and the API key never leaks."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from operator_harness import ROOT, Operator, running_operator

from fakeprovider import FakeProvider

SENTINEL = "SENTINEL-KEY-9f3b"
SAMPLE = yaml.safe_load((ROOT / "crds/samples/llama-70b.yaml").read_text())
PROFILE = yaml.safe_load((ROOT / "crds/samples/gridprofile.yaml").read_text())
LATEST = "/v3/carbon-intensity/latest"
H100 = "NVIDIA-H100-80GB-HBM3"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        yield server


@pytest.fixture(scope="module")
def operator(crds: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    workdir = tmp_path_factory.mktemp("operator-providers")
    with running_operator(crds.kubeconfig, workdir) as op:
        yield op
    assert SENTINEL not in op.log_path.read_text(errors="replace")


def serve(fake: FakeProvider, zone: str, value: float | None = None, status: int = 200) -> None:
    body = {"zone": zone, "carbonIntensity": value, "datetime": "2026-01-01T00:00:00.000Z"}
    fake.set(f"{LATEST}?zone={zone}", body if status == 200 else {"error": SENTINEL}, status)


def gp_condition(cluster: Any, name: str, kind: str) -> dict[str, Any]:
    body = cluster.get_json("gridprofile", name)
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond["type"] == kind:
            return dict(cond)
    return {}


def infd_body(cluster: Any, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = cluster.get_json("infd", name, namespace=namespace)
    return result


def pools(body: dict[str, Any]) -> set[str]:
    return {row["pool"] for row in (body.get("status") or {}).get("placement") or []}


def reason(body: dict[str, Any]) -> str:
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond["type"] == "Optimized":
            return str(cond.get("reason"))
    return ""


def test_served_intensity_moves_the_placement_within_hysteresis(
    cluster: Any, operator: Operator, fake: FakeProvider, namespace: str
) -> None:
    serve(fake, "SE", 50)
    serve(fake, "US", 400)
    cluster.kubectl(
        "create", "secret", "generic", "em-key", f"--from-literal=token={SENTINEL}",
        namespace=namespace,
    )  # fmt: skip
    gp_name = f"live-{uuid.uuid4().hex[:6]}"
    gp = copy.deepcopy(PROFILE)
    gp["metadata"] = {"name": gp_name}
    # The spec says the opposite of what the provider serves: live values must win.
    gp["spec"]["regions"] = {
        "eu-north-1": {"intensity": 900, "pue": 1.1},
        "us-east-1": {"intensity": 10, "pue": 1.1},
    }
    gp["spec"]["provider"] = {
        "type": "electricityMaps",
        "baseURL": fake.url,
        "zones": {"eu-north-1": "SE", "us-east-1": "US"},
        "secretRef": {"name": "em-key", "namespace": namespace, "key": "token"},
        "refreshInterval": "10s",
        "staleAfter": "1h",
    }
    cluster.apply_yaml(yaml.safe_dump(gp))
    try:
        cluster.wait(
            lambda: gp_condition(cluster, gp_name, "Fresh").get("status") == "True",
            timeout=60,
            what="GridProfile Fresh",
        )
        status = cluster.get_json("gridprofile", gp_name)["status"]
        assert status["regions"]["us-east-1"]["intensity"] == [400] * 24
        assert status["regions"]["eu-north-1"]["source"] == "electricityMaps:SE"
        assert status["regions"]["eu-north-1"]["signal"] == "average"
        assert fake.hits(LATEST)[0].headers["auth-token"] == SENTINEL

        doc = copy.deepcopy(SAMPLE)
        doc["metadata"] = {"name": "live", "namespace": namespace}
        doc["spec"]["template"] = {
            "spec": {"containers": [{"name": "server", "image": "registry.k8s.io/pause:3.10"}]}
        }
        doc["spec"]["carbon"] = {"gridProfile": gp_name, "minSavingsPercent": 20}
        doc["spec"]["sharding"] = {"shards": 2, "replicas": 1}
        doc["spec"]["placement"] = {
            "nodeSelector": {
                "matchLabels": {"nvidia.com/gpu.product": H100},
                "matchExpressions": [
                    {
                        "key": "topology.kubernetes.io/region",
                        "operator": "In",
                        "values": ["eu-north-1", "us-east-1"],
                    }
                ],
            }
        }
        cluster.apply_yaml(yaml.safe_dump(doc))
        cluster.wait(
            lambda: pools(infd_body(cluster, namespace, "live")) == {f"eu-north-1/{H100}"},
            timeout=90,
            what="placement on eu-north-1 (the live values, not the spec's)",
        )
        # us-east-1 becomes slightly cleaner: a 10% saving is below minSavingsPercent 20: kept
        serve(fake, "US", 45)
        cluster.wait(
            lambda: reason(infd_body(cluster, namespace, "live")) == "KeptCurrent",
            timeout=60,
            what="KeptCurrent",
        )
        assert pools(infd_body(cluster, namespace, "live")) == {f"eu-north-1/{H100}"}
        # much cleaner: moves
        serve(fake, "US", 5)
        cluster.wait(
            lambda: pools(infd_body(cluster, namespace, "live")) == {f"us-east-1/{H100}"},
            timeout=60,
            what="move to us-east-1",
        )

        # The provider fails (and echoes the key in its body): Degraded, last values kept
        serve(fake, "US", status=503)
        cond = cluster.wait(
            lambda: (c := gp_condition(cluster, gp_name, "Degraded")).get("status") == "True" and c,
            timeout=60,
            what="GridProfile Degraded",
        )
        assert cond["reason"] == "ServerError"
        assert "HTTP 503" in cond["message"] and "keeping the values" in cond["message"]
        assert gp_condition(cluster, gp_name, "Fresh")["status"] == "False"
        status = cluster.get_json("gridprofile", gp_name)["status"]
        assert status["regions"]["us-east-1"]["current"] == 5
        assert pools(infd_body(cluster, namespace, "live")) == {f"us-east-1/{H100}"}

        # Recovered: Fresh again
        serve(fake, "US", 6)
        cluster.wait(
            lambda: gp_condition(cluster, gp_name, "Fresh").get("status") == "True",
            timeout=60,
            what="GridProfile Fresh again",
        )

        # The key is nowhere: GridProfile, InferenceDeployment, StatefulSets, Services, Events
        seen = json.dumps(
            [
                cluster.get_json("gridprofile", gp_name),
                infd_body(cluster, namespace, "live"),
                cluster.items("statefulsets,services", namespace=namespace),
                cluster.items("events", namespace=namespace),
            ]
        )
        assert SENTINEL not in seen
        assert SENTINEL not in operator.log_path.read_text(errors="replace")
    finally:
        cluster.kubectl("delete", "gridprofile", gp_name, "--ignore-not-found", check=False)
