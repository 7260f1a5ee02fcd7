"""The scheduler extender: the v1 protocol, the carbon scores and the HTTP server (no cluster)."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import structlog
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from greenshard import carbon_score, cli, parsing
from greenshard.k8s.extender.metrics import ExtenderMetrics
from greenshard.k8s.extender.scoring import Extender
from greenshard.k8s.extender.server import DEFAULT_PORT, Server
from greenshard.k8s.extender.state import ClusterState
from greenshard.k8s.extender.wire import BadRequestError

ROOT = Path(__file__).resolve().parents[2]
PROFILE = yaml.safe_load((ROOT / "crds/samples/gridprofile.yaml").read_text())
HOUR = 12
# The sample GridProfile at 12:00 UTC: eu-north-1 35 x 1.2, us-east-1 385 x 1.1,
# ap-southeast-2 670 x 1.3; H100 1.75 J/TFLOP, A100 3.2, L4 1.5, cpu 60.


def node(name: str, region: str | None, gpu: str | None = None) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": name}
    if region:
        labels["topology.kubernetes.io/region"] = region
    if gpu:
        labels["nvidia.com/gpu.product"] = gpu
    return {
        "metadata": {"name": name, "labels": labels},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }


NODES = [
    node("eu-l4", "eu-north-1", "NVIDIA-L4"),
    node("eu-h100", "eu-north-1", "NVIDIA-H100-80GB-HBM3"),
    node("eu-cpu", "eu-north-1"),
    node("us-h100", "us-east-1", "NVIDIA-H100-80GB-HBM3"),
    node("ap-a100", "ap-southeast-2", "NVIDIA-A100-SXM4-40GB"),
    node("mars-h100", "mars-1", "NVIDIA-H100-80GB-HBM3"),
    node("eu-tpu", "eu-north-1", "TPU-v5"),
    node("nowhere", None, "NVIDIA-L4"),
]
NAMES = [n["metadata"]["name"] for n in NODES]


def pod(
    labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    """A v1 Pod as kube-scheduler serialises it into ExtenderArgs."""
    return {
        "metadata": {
            "name": "web-0",
            "namespace": "shop",
            "uid": "5c3a6e5e-4b1c-4f43-9a57-2f4e1b0e7d11",
            "labels": labels or {},
            "annotations": annotations or {},
        },
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": "100m"}},
                }
            ],
            "schedulerName": "default-scheduler",
        },
        "status": {"phase": "Pending"},
    }


AWARE = {"greenshard.io/carbon-aware": "true", "app": "web"}


def args_body(p: dict[str, Any], names: list[str] | None = None) -> bytes:
    """ExtenderArgs of a nodeCacheCapable extender: the Go field names, no JSON tags."""
    return json.dumps({"Pod": p, "Nodes": None, "NodeNames": names or NAMES}).encode()


@pytest.fixture
def state() -> ClusterState:
    s = ClusterState("default", hour=lambda: HOUR, metrics=ExtenderMetrics())
    s.replace_nodes(NODES)
    s.set_profile(PROFILE)
    return s


@pytest.fixture
def ext(state: ClusterState) -> Extender:
    return Extender(state)


# --------------------------------------------------------------------------- carbon_score


def test_grams_per_teraflop_is_the_cost_model_compute_term() -> None:
    profile = parsing.parse_grid_profile(PROFILE)
    info = parsing.parse_node(NODES[1])  # eu-north-1 H100
    fact = carbon_score.node_carbon(info, profile, HOUR)
    assert fact.intensity == 35
    # compute(s, k) = F * T * J * PUE * CI / 1000 g/h: for 1e12 FLOPs (F*T = 1e12 / 3600 s)
    expected = 1e12 / 3600 * (1.75 / 1e12) * 1.2 * 35 / 1000
    assert fact.grams_per_teraflop == pytest.approx(expected, rel=1e-12)
    assert carbon_score.grams_per_token(fact, 140e9) == pytest.approx(expected * 0.14)


def test_unknown_region_and_accelerator_have_a_reason() -> None:
    profile = parsing.parse_grid_profile(PROFILE)
    facts = {
        n["metadata"]["name"]: carbon_score.node_carbon(parsing.parse_node(n), profile, HOUR)
        for n in NODES
    }
    assert facts["mars-h100"].reason == "region mars-1 is not in GridProfile default"
    assert facts["eu-tpu"].reason == "accelerator TPU-v5 is not in GridProfile default"
    assert "topology.kubernetes.io/region" in facts["nowhere"].reason
    assert facts["eu-cpu"].known and facts["eu-cpu"].accelerator == "cpu"


def test_scores_are_ten_times_greenest_over_this() -> None:
    assert carbon_score.scores([1.0, 2.0, 10.0, 1.0, 100.0]) == [10, 5, 1, 10, 0]
    assert carbon_score.scores([0.0, 3.0]) == [10, 0]
    assert carbon_score.scores([]) == []
    with pytest.raises(ValueError):
        carbon_score.scores([1.0, float("nan")])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1e6), min_size=1, max_size=50))
def test_scores_are_in_range_and_monotone_decreasing(grams: list[float]) -> None:
    result = carbon_score.scores(grams)
    assert all(0 <= s <= 10 for s in result)
    assert max(result) == 10
    for a, sa in zip(grams, result, strict=True):
        for b, sb in zip(grams, result, strict=True):
            if a < b:
                assert sa >= sb


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(min_value=0.0, max_value=1e6), st.just(float("inf"))),
        min_size=0,
        max_size=40,
    )
)
def test_vectorised_scores_match_and_unknown_is_zero(grams: list[float]) -> None:
    got = carbon_score.scores_array(np.array(grams, dtype=np.float64)).tolist()
    known = [g for g in grams if g != float("inf")]
    expected = iter(carbon_score.scores(known))
    assert got == [next(expected) if g != float("inf") else 0 for g in grams]


# ---------------------------------------------------------------------------- the protocol


def test_filter_round_trip_v1(ext: Extender) -> None:
    result = json.loads(ext.filter_json(args_body(pod(AWARE))))
    assert set(result) == {"NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}
    assert result["Error"] == ""
    assert result["FailedNodes"] == {}
    assert result["NodeNames"] == ["eu-l4", "eu-h100", "eu-cpu", "us-h100", "ap-a100"]
    assert result["FailedAndUnresolvableNodes"] == {
        "mars-h100": "greenshard: region mars-1 is not in GridProfile default",
        "eu-tpu": "greenshard: accelerator TPU-v5 is not in GridProfile default",
        "nowhere": "greenshard: node has no topology.kubernetes.io/region label",
    }


def test_prioritize_round_trip_v1(ext: Extender) -> None:
    result = json.loads(ext.prioritize_json(args_body(pod(AWARE))))
    assert [set(h) for h in result] == [{"Host", "Score"}] * len(NAMES)
    scores = {h["Host"]: h["Score"] for h in result}
    # gCO2e/TFLOP ~ J x PUE x CI: eu-l4 63, eu-h100 73.5, eu-cpu 2520, us-h100 741,
    # ap-a100 2787; unknown nodes get 0.
    assert scores == {
        "eu-l4": 10,
        "eu-h100": 9,
        "eu-cpu": 0,
        "us-h100": 1,
        "ap-a100": 0,
        "mars-h100": 0,
        "eu-tpu": 0,
        "nowhere": 0,
    }
    # The cached answer is the same, and a different feasible set is scored on its own.
    assert json.loads(ext.prioritize_json(args_body(pod(AWARE)))) == result
    assert ext.prioritize(args_body(pod(AWARE), ["us-h100", "eu-h100"])) == [
        {"Host": "us-h100", "Score": 1},
        {"Host": "eu-h100", "Score": 10},
    ]


def test_keys_are_decoded_case_insensitively_as_go_does(ext: Extender) -> None:
    body = json.dumps({"pod": pod(AWARE), "nodenames": ["eu-l4", "mars-h100"]}).encode()
    assert ext.filter(body)["NodeNames"] == ["eu-l4"]
    assert ext.prioritize(body) == [
        {"Host": "eu-l4", "Score": 10},
        {"Host": "mars-h100", "Score": 0},
    ]


def test_full_nodes_without_node_cache(ext: Extender) -> None:
    body = json.dumps({"Pod": pod(AWARE), "Nodes": {"items": NODES[:6]}}).encode()
    result = ext.filter(body)
    assert result["NodeNames"] is None
    assert [n["metadata"]["name"] for n in result["Nodes"]["items"]] == NAMES[:5]
    assert list(result["FailedAndUnresolvableNodes"]) == ["mars-h100"]


def test_pods_without_the_label_pass_untouched(ext: Extender) -> None:
    for labels in ({}, {"greenshard.io/carbon-aware": "false"}, {"app": "web"}):
        body = args_body(pod(labels, {"greenshard.io/max-intensity": "1"}))
        result = ext.filter(body)
        assert result == {
            "NodeNames": NAMES,
            "FailedNodes": {},
            "FailedAndUnresolvableNodes": {},
            "Error": "",
        }
        assert ext.prioritize(body) == []
    decisions = ext.metrics.decisions
    assert decisions.labels(verb="filter", decision="passthrough")._value.get() == 3
    assert decisions.labels(verb="prioritize", decision="passthrough")._value.get() == 3


def test_ceiling_fails_dirtier_regions_with_a_reason(ext: Extender) -> None:
    body = args_body(pod(AWARE, {"greenshard.io/max-intensity": "400"}), NAMES[:5])
    result = ext.filter(body)
    assert result["NodeNames"] == ["eu-l4", "eu-h100", "eu-cpu", "us-h100"]
    assert result["FailedAndUnresolvableNodes"] == {
        "ap-a100": "greenshard: region ap-southeast-2 intensity 670 gCO2e/kWh is above the "
        "pod's greenshard.io/max-intensity 400"
    }
    none = ext.filter(args_body(pod(AWARE, {"greenshard.io/max-intensity": "10"}), NAMES[:5]))
    assert none["NodeNames"] == []
    assert len(none["FailedAndUnresolvableNodes"]) == 5


def test_a_bad_ceiling_fails_every_node_saying_why(ext: Extender) -> None:
    result = ext.filter(args_body(pod(AWARE, {"greenshard.io/max-intensity": "low"})))
    assert result["NodeNames"] == []
    reasons = set(result["FailedAndUnresolvableNodes"].values())
    assert reasons == {
        "greenshard: pod annotation greenshard.io/max-intensity='low' is not a non-negative "
        "number (gCO2e/kWh)"
    }


def test_nodes_not_yet_in_the_cache_pass(ext: Extender) -> None:
    result = ext.filter(args_body(pod(AWARE), ["brand-new", "mars-h100"]))
    assert result["NodeNames"] == ["brand-new"]
    assert ext.prioritize(args_body(pod(AWARE), ["brand-new", "eu-h100", "mars-h100"])) == [
        {"Host": "brand-new", "Score": 0},
        {"Host": "eu-h100", "Score": 10},
        {"Host": "mars-h100", "Score": 0},
    ]


@pytest.mark.parametrize("profile", [None, {"kind": "GridProfile", "spec": {"regions": {}}}])
def test_unknown_or_invalid_profile_lets_every_node_pass(profile: Any) -> None:
    state = ClusterState("default", hour=lambda: HOUR)
    state.replace_nodes(NODES)
    with structlog.testing.capture_logs() as logs:
        state.set_profile(profile)
        ext = Extender(state)
        body = args_body(pod(AWARE, {"greenshard.io/max-intensity": "1"}))
        assert ext.filter(body)["NodeNames"] == NAMES
        assert ext.filter(body)["FailedAndUnresolvableNodes"] == {}
        assert ext.prioritize(body) == []
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert warnings, logs
    assert "every node passes" in warnings[0]["event"]
    # one warning per change of state, not one per request
    assert sum("carbon-aware pods are not filtered" in e["event"] for e in warnings) == 1


def test_snapshot_follows_the_hour_and_node_changes(state: ClusterState) -> None:
    hour = [3]
    state.hour = lambda: hour[0]
    ext = Extender(state)
    body = args_body(pod(AWARE), ["us-h100", "ap-a100"])
    # 03:00 UTC: ap-southeast-2 560 x 1.3 x 3.2 = 2330 vs us-east-1 368 x 1.1 x 1.75 = 708
    assert ext.prioritize(body) == [
        {"Host": "us-h100", "Score": 10},
        {"Host": "ap-a100", "Score": 3},
    ]
    hour[0] = 6  # 06:00: 390 x 1.3 x 3.2 = 1622 vs 398 x 1.1 x 1.75 = 766
    assert ext.prioritize(body) == [
        {"Host": "us-h100", "Score": 10},
        {"Host": "ap-a100", "Score": 5},
    ]
    relabelled = node("ap-a100", "eu-north-1", "NVIDIA-L4")
    state.upsert_node(relabelled)
    assert ext.prioritize(body)[1] == {"Host": "ap-a100", "Score": 10}
    state.delete_node("ap-a100")
    assert ext.prioritize(body)[1] == {"Host": "ap-a100", "Score": 0}
    # Heartbeats and status writes re-send equal objects: the snapshot stays as it is.
    snap = state.snapshot()
    state.upsert_node(NODES[0] | {"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    state.set_profile(PROFILE | {"status": {"observedGeneration": 3}})
    assert state.snapshot() is snap


def test_live_intensities_in_the_status_win(state: ClusterState) -> None:
    ext = Extender(state)
    body = args_body(pod(AWARE), ["eu-h100", "us-h100"])
    assert ext.prioritize(body)[1] == {"Host": "us-h100", "Score": 1}
    live = PROFILE | {"status": {"regions": {"us-east-1": {"intensity": [35.0] * 24}}}}
    state.set_profile(live)  # now us-east-1 35 x 1.1 beats eu-north-1 35 x 1.2
    assert ext.prioritize(body) == [
        {"Host": "eu-h100", "Score": 9},
        {"Host": "us-h100", "Score": 10},
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body is not JSON"),
        (b"[]", "body must be an ExtenderArgs object"),
        (b'{"NodeNames": ["a"]}', "Pod is required"),
        (b'{"Pod": {}}', "NodeNames or Nodes is required"),
        (b'{"Pod": {}, "NodeNames": [1]}', "NodeNames must be a list of strings"),
        (b'{"Pod": {"metadata": {"labels": []}}, "NodeNames": []}', "Pod.metadata.labels"),
        (b'{"Pod": {}, "Nodes": {"items": [{"metadata": {}}]}}', "metadata.name"),
        (b"\xff\xfe", "body is not JSON"),
    ],
)
def test_malformed_requests_raise_bad_request(ext: Extender, body: bytes, message: str) -> None:
    for verb in (ext.filter, ext.prioritize):
        with pytest.raises(BadRequestError, match=message):
            verb(body)


# -------------------------------------------------------------------------------- the server


@pytest.fixture
def server(ext: Extender) -> Iterator[str]:
    srv = Server(ext, port=0)
    port = srv.start_in_thread()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.stop_thread()


def http(url: str, body: bytes | None = None, timeout: float = 5) -> tuple[int, bytes, str]:
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read(), err.headers.get("Content-Type", "")


def test_http_verbs_health_and_metrics(server: str) -> None:
    status, data, ctype = http(f"{server}/filter", args_body(pod(AWARE)))
    assert status == 200 and ctype.startswith("application/json")
    assert json.loads(data)["NodeNames"][0] == "eu-l4"
    status, data, _ = http(f"{server}/prioritize", args_body(pod(AWARE)))
    assert status == 200 and json.loads(data)[0] == {"Host": "eu-l4", "Score": 10}
    status, data, _ = http(f"{server}/healthz")
    assert status == 200
    assert json.loads(data) | {"hour": HOUR} == {
        "status": "ok",
        "nodesSynced": True,
        "nodes": len(NODES),
        "gridProfile": "default",
        "gridProfileLoaded": True,
        "hour": HOUR,
    }
    assert http(f"{server}/readyz")[0] == 200
    status, data, _ = http(f"{server}/metrics")
    text = data.decode()
    assert status == 200
    assert 'greenshard_extender_requests_total{code="200",verb="filter"} 1.0' in text
    assert 'greenshard_extender_request_seconds_count{verb="prioritize"} 1.0' in text
    assert 'greenshard_extender_decisions_total{decision="filtered",verb="filter"} 1.0' in text
    assert 'greenshard_extender_failed_nodes_total{cause="unknown"} 3.0' in text
    assert "greenshard_extender_nodes 8.0" in text
    assert "greenshard_extender_grid_profile_loaded 1.0" in text


def test_http_malformed_gets_400_json_and_the_server_goes_on(server: str) -> None:
    status, data, ctype = http(f"{server}/filter", b"{oops")
    assert status == 400 and ctype.startswith("application/json")
    assert json.loads(data)["error"].startswith("body is not JSON")
    status, data, _ = http(f"{server}/prioritize", b'{"Pod": 3, "NodeNames": []}')
    assert status == 400 and json.loads(data) == {"error": "Pod is required (an object)"}
    assert http(f"{server}/prioritize", args_body(pod({})))[:2] == (200, b"[]")
    metrics = http(f"{server}/metrics")[1].decode()
    assert 'greenshard_extender_requests_total{code="400",verb="filter"} 1.0' in metrics


def test_readyz_waits_for_the_caches() -> None:
    state = ClusterState("default", hour=lambda: HOUR)
    srv = Server(Extender(state), port=0)
    url = f"http://127.0.0.1:{srv.start_in_thread()}"
    try:
        assert http(f"{url}/readyz")[0] == 503
        state.replace_nodes(NODES)
        state.set_profile(None)
        assert http(f"{url}/readyz")[0] == 200
        assert json.loads(http(f"{url}/healthz")[1])["gridProfileLoaded"] is False
    finally:
        srv.stop_thread()


# ------------------------------------------------------------------ CLI, config and the chart


def test_cli_extender_options() -> None:
    args = cli.build_parser().parse_args(
        ["extender", "--port", "9443", "--grid-profile", "eu", "--log-format", "json"]
    )
    assert (args.port, args.grid_profile, args.log_format, args.hour) == (9443, "eu", "json", None)
    assert args.func is cli.cmd_extender
    defaults = cli.build_parser().parse_args(["extender"])
    assert (defaults.port, defaults.grid_profile, defaults.address) == (8888, "default", "0.0.0.0")


def test_scheduler_config_wires_the_extender() -> None:
    config = yaml.safe_load((ROOT / "hack/scheduler-config.yaml").read_text())
    assert config["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    assert config["kind"] == "KubeSchedulerConfiguration"
    assert "clientConnection" not in config and "leaderElection" not in config
    [ext] = config["extenders"]
    assert ext["urlPrefix"] == f"http://127.0.0.1:{DEFAULT_PORT}"
    assert (ext["filterVerb"], ext["prioritizeVerb"]) == ("filter", "prioritize")
    assert ext["nodeCacheCapable"] is True and ext["ignorable"] is True
    assert 1 <= ext["weight"] <= 100 and ext["httpTimeout"] == "2s"


def helm_template(*args: str) -> list[dict[str, Any]]:
    helm = ROOT / "hack/bin/helm"
    binary = str(helm) if helm.is_file() else shutil.which("helm")
    if not binary:
        pytest.skip("no helm (hack/build-tools.sh builds it)")
    out = subprocess.run(
        [
            binary,
            "template",
            "gs",
            str(ROOT / "charts/greenshard"),
            "-n",
            "greenshard-system",
            *args,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_chart_extender_off_by_default_and_complete_when_on() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in helm_template()}
    assert not any("extender" in name for _, name in kinds)
    docs = helm_template(
        "--set",
        "extender.enabled=true",
        "--set",
        "extender.gridProfile=eu",
        "--set",
        "extender.port=9000",
    )
    by_kind = {d["kind"]: d for d in docs if "extender" in d["metadata"]["name"]}
    deployment, service = by_kind["Deployment"], by_kind["Service"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == [
        "extender", "--port", "9000", "--grid-profile", "eu", "--log-level", "INFO"
    ]  # fmt: skip
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # Its own list-and-watch ServiceAccount, never the operator's (which writes workloads).
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == (
        "gs-greenshard-extender"
    )
    assert by_kind["ServiceAccount"]["metadata"]["name"] == "gs-greenshard-extender"
    assert by_kind["NetworkPolicy"]["spec"]["ingress"][0]["ports"][0]["port"] == 9000
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == selector
    assert service["spec"]["ports"][0]["port"] == 9000
    operator = next(d for d in docs if d["kind"] == "Deployment" and d is not deployment)
    assert operator["spec"]["selector"]["matchLabels"] != selector


def test_a_body_over_the_cap_is_refused_unread(server: str) -> None:
    from greenshard.k8s.extender.server import MAX_BODY_BYTES

    big = b'{"Pod": {}, "NodeNames": ["' + b"n" * MAX_BODY_BYTES + b'"]}'
    status, _, _ = http(f"{server}/filter", big)
    assert status == 413
    assert http(f"{server}/filter", args_body(pod(AWARE)))[0] == 200  # and it goes on


def test_a_slow_request_does_not_hold_healthz(ext: Extender) -> None:
    import threading
    import time as clock

    slow = ext.filter_json

    def filter_json(body: bytes) -> bytes:
        clock.sleep(5.0)  # a large body being parsed
        return slow(body)

    ext.filter_json = filter_json  # type: ignore[method-assign]
    srv = Server(ext, port=0)
    url = f"http://127.0.0.1:{srv.start_in_thread()}"
    try:
        answers: list[int] = []

        def slow_client() -> None:  # waits out the 5 s parse (its own timeout is 15 s)
            answers.append(http(f"{url}/filter", args_body(pod(AWARE)), timeout=15)[0])

        worker = threading.Thread(target=slow_client)
        worker.start()
        clock.sleep(0.3)
        start = clock.monotonic()
        assert http(f"{url}/healthz")[0] == 200
        assert clock.monotonic() - start < 3.0  # not after the 5 s parse
        worker.join(20)
        assert answers == [200]  # the slow request itself was answered
    finally:
        srv.stop_thread()


# ------------------------------------------------------------------ list and watch (no cluster)


class FakeResponse:
    """What the client's list call answers: raw JSON (``data``) or a watch's event stream."""

    status = 200

    def __init__(self, events: list[Any] | None = None, data: Any = None) -> None:
        self.events = events or []
        self.data = json.dumps(data).encode() if data is not None else b""

    def stream(self, amt: Any = None, decode_content: bool = False) -> Iterator[bytes]:
        for event in self.events:
            if isinstance(event, Exception):
                raise event
            yield (json.dumps(event) + "\n").encode()

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


class FakeServer:
    """One list function of the API, as the real client calls it (``watch=True`` for a watch):
    each list answers the next listing (an exception is raised), each watch the next stream;
    past the last stream it stops the ListWatch."""

    def __init__(self, lists: list[Any], streams: list[list[Any]]) -> None:
        self.lists, self.streams = list(lists), list(streams)
        self.list_calls: list[dict[str, Any]] = []
        self.watch_calls: list[dict[str, Any]] = []
        self.lister: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("watch"):
            self.watch_calls.append({"args": args, **kwargs})
            if not self.streams:
                self.lister.stop()
                return FakeResponse()
            return FakeResponse(self.streams.pop(0))
        self.list_calls.append({"args": args, **kwargs})
        listed = self.lists.pop(0)
        if isinstance(listed, Exception):
            raise listed
        return FakeResponse(data=listed) if kwargs.get("_preload_content") is False else listed


def meta(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": version}}


def bookmark(version: str) -> dict[str, Any]:
    return {
        "type": "BOOKMARK",
        "object": {"kind": "Node", "metadata": {"resourceVersion": version}},
    }


def listing(version: str, *names: str) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": version}, "items": [meta(n, "1") for n in names]}


def run_lister(lister: Any) -> None:
    for thread in lister.threads:
        thread.join(timeout=10)
        assert not thread.is_alive()


@pytest.fixture
def lister(monkeypatch: pytest.MonkeyPatch) -> Any:
    from kubernetes import client

    from greenshard.k8s import kube

    monkeypatch.setattr(kube, "BACKOFF_FIRST", 0.01)
    monkeypatch.setattr(kube, "NOT_SERVED_WAIT", 0.01)
    return kube.ListWatch(client.ApiClient())


def test_nodes_resume_from_the_last_version_and_relist_when_it_expires(lister: Any) -> None:
    gone = {"type": "ERROR", "object": {"code": 410, "reason": "Expired", "message": "too old"}}
    server = FakeServer(
        [listing("10", "n1", "n2"), listing("20", "n1", "n3"), listing("30", "n3")],
        [
            [{"type": "ADDED", "object": meta("n3", "11")}, bookmark("12")],
            [
                {"type": "MODIFIED", "object": meta("n1", "13")},
                {"type": "DELETED", "object": meta("n2", "14")},
                gone,  # the version expired: list again
            ],
            [{"type": "ADDED", "object": meta("n4", "21")}, ConnectionResetError("reset")],
        ],
    )
    server.lister = lister
    lister.core = type("Core", (), {"list_node": staticmethod(server)})()
    seen: list[Any] = []
    lister.nodes(
        lambda items, version: seen.append(("list", [i["metadata"]["name"] for i in items])),
        lambda kind, obj: seen.append((kind, obj["metadata"]["name"])),
    )
    run_lister(lister)
    assert seen == [
        ("list", ["n1", "n2"]),
        ("ADDED", "n3"),
        ("MODIFIED", "n1"),
        ("DELETED", "n2"),
        ("list", ["n1", "n3"]),
        ("ADDED", "n4"),
        ("list", ["n3"]),  # after the reset, a relist
    ]
    assert [c["resource_version"] for c in server.watch_calls] == ["10", "12", "20", "30"]
    for call in server.watch_calls:  # raw JSON events, bookmarks, a bounded watch
        assert call["allow_watch_bookmarks"] and call["timeout_seconds"] == 300
        assert call["_preload_content"] is False and call["_request_timeout"] == 330
    assert all(c["_preload_content"] is False for c in server.list_calls)


def test_a_custom_kind_not_served_lists_empty_then_again(lister: Any) -> None:
    from kubernetes.client.exceptions import ApiException

    profile = meta("eu", "4")
    server = FakeServer(
        [ApiException(status=404), {"metadata": {"resourceVersion": "5"}, "items": [profile]}],
        [[{"type": "DELETED", "object": meta("eu", "6")}]],
    )
    server.lister = lister
    lister.custom = type("Custom", (), {"list_cluster_custom_object": staticmethod(server)})()
    seen: list[Any] = []
    lister.cluster_objects(
        "gridprofiles",
        lambda items, version: seen.append(("list", len(items), version)),
        lambda kind, obj: seen.append((kind, obj["metadata"]["resourceVersion"])),
        field_selector="metadata.name=eu",
    )
    run_lister(lister)
    assert seen == [("list", 0, ""), ("list", 1, "5"), ("DELETED", "6")]
    calls = server.list_calls + server.watch_calls
    assert all(c["field_selector"] == "metadata.name=eu" for c in calls)
    assert all(c["args"] == ("greenshard.io", "v1alpha1", "gridprofiles") for c in calls)
    assert [t.name for t in lister.threads] == ["watch-gridprofiles"]


def test_the_extenders_watches_keep_its_state_current() -> None:
    from greenshard.k8s.extender.watches import Watches

    class Lister:
        def __init__(self) -> None:
            self.started: dict[str, Any] = {}
            self.stopped = False

        def nodes(self, on_list: Any, on_event: Any, name: str = "") -> None:
            self.started[name] = (on_list, on_event)

        def cluster_objects(
            self, plural: str, on_list: Any, on_event: Any, field_selector: str = "", name: str = ""
        ) -> None:
            assert (plural, field_selector) == ("gridprofiles", "metadata.name=default")
            self.started[name] = (on_list, on_event)

        def stop(self) -> None:
            self.stopped = True

    state = ClusterState("default", hour=lambda: HOUR, metrics=ExtenderMetrics())
    fake = Lister()
    watches = Watches(state, fake)
    watches.start()
    nodes_listed, node_event = fake.started["watch-nodes"]
    profiles_listed, profile_event = fake.started["watch-gridprofile"]
    nodes_listed(NODES[:2], "1")
    assert state.node_count == 2
    node_event("ADDED", NODES[2])
    node_event("MODIFIED", NODES[0])
    node_event("DELETED", NODES[1])
    assert state.node_count == 2
    profiles_listed([], "")
    assert state.snapshot().profile is None
    profile_event("ADDED", PROFILE)
    assert state.snapshot().profile is not None
    profile_event("DELETED", PROFILE)
    assert state.snapshot().profile is None
    profiles_listed([PROFILE], "7")
    assert state.snapshot().profile is not None
    watches.stop()
    assert fake.stopped
