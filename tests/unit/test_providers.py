"""Live carbon-intensity providers against a local HTTP server serving each provider's documented
shapes, failures included; the staleness/fallback rule; the refresher; `greenshard intensity`."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from fakeprovider import FakeProvider
from greenshard import cli, model, parsing
from greenshard.carbon import adapters, readings
from greenshard.carbon import errors as perr
from greenshard.carbon import spec as provider_spec
from greenshard.carbon import status as pstat
from greenshard.errors import InputError
from greenshard.k8s import gridprofiles, resources
from greenshard.k8s.errors import KubeError

SENTINEL = "SENTINEL-KEY-9f3b"
NOW = dt.datetime(2026, 11, 21, 6, 30, tzinfo=dt.UTC)
HOUR0 = NOW.replace(minute=0)

PROFILE_DOC: dict[str, Any] = {
    "apiVersion": "greenshard.io/v1alpha1",
    "kind": "GridProfile",
    "metadata": {"name": "live", "generation": 1},
    "spec": {
        "regions": {
            "eu-north-1": {"intensity": 40, "pue": 1.1},
            "us-east-1": {"intensity": 400, "pue": 1.1},
        },
        "accelerators": {"cpu": {"joulesPerTeraflop": 60}},
        "links": {
            "samePoolJoulesPerByte": 0,
            "sameRegionJoulesPerByte": 0,
            "crossRegionJoulesPerByte": 0,
        },
    },
}
PROFILE = parsing.parse_grid_profile(PROFILE_DOC)
ZONES = {"eu-north-1": "SE-SE3", "us-east-1": "US-MIDA-PJM"}


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        yield server


def ts(hours: float) -> str:
    return (HOUR0 + dt.timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


def em_serve(fake: FakeProvider, latest: Any, forecast: list[float] | None = None) -> None:
    fake.set("/v3/carbon-intensity/latest", latest)
    if forecast is not None:
        fake.set(
            "/v3/carbon-intensity/forecast",
            {
                "zone": "SE-SE3",
                "forecast": [
                    {"carbonIntensity": v, "datetime": ts(i)} for i, v in enumerate(forecast)
                ],
                "updatedAt": ts(0),
            },
        )


def em(fake: FakeProvider, timeout: float = 2.0) -> adapters.ElectricityMaps:
    return adapters.ElectricityMaps(fake.url, SENTINEL, timeout)


def latest(value: Any, zone: str = "SE-SE3") -> dict[str, Any]:
    return {
        "zone": zone,
        "carbonIntensity": value,
        "datetime": ts(0),
        "updatedAt": ts(0),
        "emissionFactorType": "lifecycle",
        "isEstimated": False,
    }


# --------------------------------------------------------------------------- electricityMaps


def test_electricity_maps_latest_and_forecast(fake: FakeProvider) -> None:
    em_serve(fake, latest(35), [36 + i for i in range(30)])
    out = em(fake).fetch({"eu-north-1": "SE-SE3"}, NOW)
    reading = out["eu-north-1"]
    assert isinstance(reading, readings.Reading)
    assert reading.current == 35
    assert reading.forecast == tuple(float(36 + i) for i in range(24))
    assert (reading.signal, reading.source) == ("average", "electricityMaps:SE-SE3")
    by_hour = reading.by_utc_hour()
    assert by_hour[6] == 35 and by_hour[7] == 37 and by_hour[5] == 36 + 23
    req = fake.hits("/v3/carbon-intensity/latest")[0]
    assert req.query == {"zone": "SE-SE3"} and req.headers["auth-token"] == SENTINEL
    status = pstat.region_status(reading)
    assert len(status["intensity"]) == 24 and status["fetchedAt"] == "2026-11-21T06:30:00Z"


def test_electricity_maps_without_forecast_repeats_current(fake: FakeProvider) -> None:
    em_serve(fake, latest(120))  # the forecast path answers 404 (not in the plan)
    reading = em(fake).fetch({"r": "SE-SE3"}, NOW)["r"]
    assert isinstance(reading, readings.Reading)
    assert reading.forecast == () and reading.by_utc_hour() == (120.0,) * 24


@pytest.mark.parametrize(
    ("status", "body", "headers", "error", "text"),
    [
        (
            401,
            {"message": f"bad token {SENTINEL}"},
            {},
            perr.AuthError,
            "API key was refused",
        ),
        (
            429,
            {"message": "slow down"},
            {"Retry-After": "120"},
            perr.RateLimitedError,
            "120 s",
        ),
        (503, f"<html>{SENTINEL}</html>", {}, perr.ServerError, "HTTP 503"),
        (200, '{"carbonIntensity": 3', {}, perr.MalformedResponseError, "not valid JSON"),
        (
            200,
            '{"carbonIntensity": NaN}',
            {},
            perr.MalformedResponseError,
            "not valid JSON",
        ),
        (200, latest(-5), {}, perr.MalformedResponseError, "not an intensity"),
        (200, latest("high"), {}, perr.MalformedResponseError, "expected a number"),
        (200, latest(None), {}, perr.NoDataError, "no carbonIntensity"),
        (404, {"error": "zone not found"}, {}, perr.NoDataError, "no data"),
    ],
)
def test_electricity_maps_failures_are_typed_and_keyless(
    fake: FakeProvider,
    status: int,
    body: Any,
    headers: dict[str, str],
    error: type[perr.ProviderError],
    text: str,
) -> None:
    fake.set("/v3/carbon-intensity/latest", body, status, headers)
    outcome = em(fake).fetch({"eu-north-1": "SE-SE3"}, NOW)["eu-north-1"]
    assert isinstance(outcome, error), outcome
    assert text in outcome.message and SENTINEL not in outcome.message
    if error is perr.RateLimitedError:
        assert outcome.retry_after == 120.0
        assert pstat.next_refresh_seconds(900, 1, outcome.retry_after) == 120.0


def test_timeout(fake: FakeProvider) -> None:
    fake.set("/v3/carbon-intensity/latest", latest(30), delay=1.5)
    outcome = em(fake, timeout=0.3).fetch({"r": "SE-SE3"}, NOW)["r"]
    assert isinstance(outcome, perr.ProviderTimeoutError)
    assert "no answer within 0.3 s" in outcome.message


def test_unreachable() -> None:
    provider = adapters.ElectricityMaps("http://127.0.0.1:9", SENTINEL, 1.0)
    outcome = provider.fetch({"r": "SE-SE3"}, NOW)["r"]
    assert isinstance(outcome, perr.UnreachableError | perr.ProviderTimeoutError)


def test_rate_limit_stops_asking_for_other_zones(fake: FakeProvider) -> None:
    fake.set("/v3/carbon-intensity/latest", {}, 429, {"Retry-After": "30"})
    out = em(fake).fetch(ZONES, NOW)
    assert all(isinstance(o, perr.RateLimitedError) for o in out.values())
    assert len(fake.hits("/v3/carbon-intensity/latest")) == 1


# -------------------------------------------------------------------------------- wattTime


def test_watttime_login_forecast_conversion_and_marginal(fake: FakeProvider) -> None:
    fake.set("/login", {"token": "tok-123"})
    points = [{"point_time": ts(i / 12), "value": 1000.0 + 100 * (i // 12)} for i in range(288)]
    fake.set(
        "/v3/forecast",
        {
            "data": points,
            "meta": {
                "region": "CAISO_NORTH",
                "signal_type": "co2_moer",
                "units": "lbs_co2_per_mwh",
                "data_point_period_seconds": 300,
            },
        },
    )
    provider = adapters.WattTime(fake.url, f"user:{SENTINEL}", 2.0)
    reading = provider.fetch({"us-west-1": "CAISO_NORTH"}, NOW)["us-west-1"]
    assert isinstance(reading, readings.Reading)
    assert reading.signal == "marginal"
    assert reading.current == pytest.approx(1000 * 0.453592)
    assert len(reading.forecast) == 24
    assert reading.forecast[3] == pytest.approx(1300 * 0.453592)
    login = fake.hits("/login")[0]
    assert login.headers["authorization"].startswith("Basic ")
    forecast = fake.hits("/v3/forecast")[0]
    assert forecast.headers["authorization"] == "Bearer tok-123"
    assert forecast.query["region"] == "CAISO_NORTH"
    assert forecast.query["signal_type"] == "co2_moer"
    # the token is cached: a second fetch does not log in again
    provider.fetch({"us-west-1": "CAISO_NORTH"}, NOW)
    assert len(fake.hits("/login")) == 1


def test_watttime_bad_login(fake: FakeProvider) -> None:
    fake.set("/login", {"error": "invalid"}, 401)
    outcome = adapters.WattTime(fake.url, f"user:{SENTINEL}", 2.0).fetch({"r": "X"}, NOW)["r"]
    assert isinstance(outcome, perr.AuthError) and SENTINEL not in outcome.message


def test_watttime_zone_without_data(fake: FakeProvider) -> None:
    fake.set("/login", {"token": "t"})
    fake.set("/v3/forecast", {"data": [], "meta": {"units": "lbs_co2_per_mwh"}})
    outcome = adapters.WattTime(fake.url, "u:p", 2.0).fetch({"r": "NOWHERE"}, NOW)["r"]
    assert isinstance(outcome, perr.NoDataError)


# ----------------------------------------------------------------------- ukCarbonIntensity


def _uk_period(hours: float, forecast: float, actual: float | None = None) -> dict[str, Any]:
    return {
        "from": ts(hours)[:16] + "Z",
        "to": ts(hours + 0.5)[:16] + "Z",
        "intensity": {"forecast": forecast, "actual": actual, "index": "moderate"},
    }


def test_uk_national(fake: FakeProvider) -> None:
    fake.set("/intensity", {"data": [_uk_period(0.5, 190, 185)]})
    start = NOW.strftime("%Y-%m-%dT%H:%MZ")
    fake.set(
        f"/intensity/{start}/fw24h",
        {"data": [_uk_period(i / 2, 200 + i) for i in range(1, 48)]},
    )
    reading = adapters.UkCarbonIntensity(fake.url, None, 2.0).fetch({"uk": "national"}, NOW)["uk"]
    assert isinstance(reading, readings.Reading)
    assert reading.current == 185  # the actual value wins over the forecast
    assert reading.forecast[0] == 201 and reading.forecast[1] == pytest.approx(202.5)
    assert not any("auth" in k.lower() for k in fake.requests[0].headers)


def test_uk_regional(fake: FakeProvider) -> None:
    fake.set(
        "/regional/regionid/13",
        {"data": [{"regionid": 13, "shortname": "London", "data": [_uk_period(0.5, 150)]}]},
    )
    start = NOW.strftime("%Y-%m-%dT%H:%MZ")
    fake.set(
        f"/regional/intensity/{start}/fw24h/regionid/13",
        {
            "data": {
                "regionid": 13,
                "shortname": "London",
                "data": [_uk_period(i / 2, 100) for i in range(48)],
            }
        },
    )
    reading = adapters.UkCarbonIntensity(fake.url, None, 2.0).fetch({"ldn": "13"}, NOW)["ldn"]
    assert isinstance(reading, readings.Reading)
    assert reading.current == 150 and reading.forecast[:3] == (100.0, 100.0, 100.0)


def test_uk_zone_without_data(fake: FakeProvider) -> None:
    fake.set("/regional/regionid/99", {"data": []})
    out = adapters.UkCarbonIntensity(fake.url, None, 2.0).fetch({"a": "99", "b": "atlantis"}, NOW)
    assert isinstance(out["a"], perr.NoDataError) and isinstance(out["b"], perr.NoDataError)


# -------------------------------------------------------------------------- carbonAwareSdk


def test_carbon_aware_sdk(fake: FakeProvider) -> None:
    fake.set(
        "/emissions/bylocation",
        [
            {"location": "eastus", "time": ts(-1), "rating": 500.0, "duration": "00:05:00"},
            {"location": "eastus", "time": ts(0), "rating": 450.5, "duration": "00:05:00"},
        ],
    )
    fake.set(
        "/emissions/forecasts/current",
        [
            {
                "generatedAt": ts(0),
                "location": "eastus",
                "forecastData": [
                    {"location": "eastus", "timestamp": ts(i / 12), "duration": 5, "value": 400}
                    for i in range(24 * 12)
                ],
                "optimalDataPoints": [],
            }
        ],
    )
    reading = adapters.CarbonAwareSdk(fake.url, None, 2.0).fetch({"us-east-1": "eastus"}, NOW)
    r = reading["us-east-1"]
    assert isinstance(r, readings.Reading)
    assert r.current == 450.5 and r.forecast == (400.0,) * 24 and r.signal == "average"
    assert fake.hits("/emissions/bylocation")[0].query["location"] == "eastus"


def test_carbon_aware_sdk_no_data(fake: FakeProvider) -> None:
    fake.set("/emissions/bylocation", [])
    out = adapters.CarbonAwareSdk(fake.url, None, 2.0).fetch({"r": "mars"}, NOW)
    assert isinstance(out["r"], perr.NoDataError)


def test_static_provider() -> None:
    out = adapters.StaticProvider(PROFILE).fetch({}, NOW)
    reading = out["us-east-1"]
    assert isinstance(reading, readings.Reading) and reading.current == 400


# ------------------------------------------------------------------------ staleness rule


def _prev(age_minutes: float, value: float = 55.0, source: str = "electricityMaps:SE-SE3") -> Any:
    return {
        "eu-north-1": {
            "intensity": [value] * 24,
            "current": value,
            "source": source,
            "signal": "average",
            "fetchedAt": pstat.iso(NOW - dt.timedelta(minutes=age_minutes)),
        }
    }


def test_resolve_keeps_last_good_until_stale_then_static() -> None:
    error = perr.ServerError("electricityMaps latest: HTTP 503: the provider failed")
    kept = pstat.resolve(PROFILE, _prev(30), {"eu-north-1": error}, NOW, 7200, "electricityMaps")
    assert kept.regions["eu-north-1"]["current"] == 55.0
    assert kept.degraded[0] and kept.degraded[1] == "ServerError"
    assert "keeping the values fetched at" in kept.degraded[2]
    assert kept.fresh[0] is False

    stale = pstat.resolve(PROFILE, _prev(180), {"eu-north-1": error}, NOW, 7200, "electricityMaps")
    entry = stale.regions["eu-north-1"]
    assert entry["source"] == "static (fallback)" and entry["intensity"] == [40.0] * 24
    assert "using the static spec.regions values" in stale.degraded[2]


def test_resolve_fresh_and_values_never_nan_or_negative() -> None:
    reading = readings.Reading(33.0, (34.0, 35.0), "electricityMaps:SE-SE3", "average", NOW)
    res = pstat.resolve(PROFILE, {}, {"eu-north-1": reading}, NOW, 7200, "electricityMaps")
    assert res.fresh[0] and not res.degraded[0]
    values = res.regions["eu-north-1"]["intensity"]
    assert len(values) == 24 and values[6:8] == [33.0, 35.0]
    assert all(math.isfinite(v) and v >= 0 for v in values)
    # a status built from it is what planning reads
    body = {**PROFILE_DOC, "status": {"regions": res.regions}}
    assert resources.grid_profile(body).regions["eu-north-1"].at(7) == 35.0


def test_backoff() -> None:
    assert pstat.next_refresh_seconds(900, 0, None) == 900
    assert pstat.next_refresh_seconds(900, 1, None) == 10
    assert pstat.next_refresh_seconds(900, 3, None) == 40
    assert pstat.next_refresh_seconds(900, 20, None) == 900
    assert pstat.next_refresh_seconds(900, 1, 3600) == 3600


def test_provider_spec_validation() -> None:
    spec = dict(PROFILE_DOC["spec"])
    assert provider_spec.parse_provider_spec(spec).type == "static"
    with pytest.raises(InputError, match="secretRef"):
        provider_spec.parse_provider_spec(
            {**spec, "provider": {"type": "wattTime", "zones": {"us-east-1": "y"}}}
        )
    with pytest.raises(InputError, match="spec.regions does not have"):
        provider_spec.parse_provider_spec(
            {**spec, "provider": {"type": "carbonAwareSdk", "zones": {"x": "y"}}}
        )
    parsed = provider_spec.parse_provider_spec(
        {
            **spec,
            "provider": {
                "type": "wattTime",
                "zones": {"us-east-1": "PJM_DC"},
                "secretRef": {"name": "wt", "namespace": "ops"},
                "refreshInterval": "5m",
            },
        }
    )
    assert parsed.signal == "marginal" and parsed.refresh_seconds == 300
    assert parsed.secret_ref == provider_spec.SecretRef("wt", "ops", "apiKey")


def test_forecast_window_is_the_mean_over_the_hours() -> None:
    carbon = model.RegionCarbon(tuple(float(h) for h in range(24)))
    assert carbon.mean_over(22, 1) == 22.0
    assert carbon.mean_over(22, 4) == pytest.approx((22 + 23 + 0 + 1) / 4)


# ----------------------------------------------------------------------------- refresher


class FakeApi:
    def __init__(self, secret: dict[str, str] | None = None) -> None:
        self.secret = secret
        self.patches: list[dict[str, Any]] = []
        self.secret_reads: list[tuple[str, str]] = []

    async def read_secret(self, namespace: str, name: str) -> dict[str, str]:
        self.secret_reads.append((namespace, name))
        if self.secret is None:
            raise KubeError(403, "Forbidden", "secrets is forbidden")
        return dict(self.secret)

    async def patch_gp_status(self, name: str, status: dict[str, Any]) -> dict[str, Any]:
        self.patches.append(status)
        return {}


def _live_body(fake: FakeProvider, status: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(json.dumps(PROFILE_DOC))
    body["spec"]["provider"] = {
        "type": "electricityMaps",
        "baseURL": fake.url,
        "zones": {"eu-north-1": "SE-SE3"},
        "secretRef": {"name": "em-key", "namespace": "ops", "key": "token"},
        "refreshInterval": "10m",
    }
    body["status"] = status or {}
    return body


def test_refresher_writes_status_and_never_leaks_the_key(
    fake: FakeProvider, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    api = FakeApi({"token": SENTINEL})
    clock = [0.0]
    refresher = gridprofiles.Refresher(api, clock=lambda: clock[0], now=lambda: NOW)
    em_serve(fake, latest(35), [35] * 24)
    with structlog.testing.capture_logs() as logs:
        assert asyncio.run(refresher.refresh("live", _live_body(fake))) == "fresh"
        status = api.patches[-1]
        assert status["regions"]["eu-north-1"]["current"] == 35
        assert status["provider"] == {"type": "electricityMaps", "signal": "average"}
        conds = {c["type"]: c for c in status["conditions"]}
        assert conds["Fresh"]["status"] == "True" and conds["Degraded"]["status"] == "False"
        assert api.secret_reads == [("ops", "em-key")]
        # not due yet: nothing happens
        assert asyncio.run(refresher.refresh("live", _live_body(fake, status))) == ""
        # the provider refuses the key and echoes it in its body: status says so, keyless
        fake.set("/v3/carbon-intensity/latest", {"message": f"bad key {SENTINEL}"}, 401)
        clock[0] += 601
        assert asyncio.run(refresher.refresh("live", _live_body(fake, status))) == "degraded"
        degraded = api.patches[-1]
        conds = {c["type"]: c for c in degraded["conditions"]}
        assert conds["Degraded"]["status"] == "True"
        assert conds["Degraded"]["reason"] == "Unauthorized"
        assert "keeping the values fetched at" in conds["Degraded"]["message"]
        assert conds["Fresh"]["status"] == "False"
        # backs off: the next try is 10 s later, not 10 min
        assert refresher.states["live"].due == pytest.approx(clock[0] + 10)
    assert any(e.get("event") == "carbon provider degraded" for e in logs)
    everything = json.dumps([api.patches, logs], default=str) + caplog.text
    captured = capsys.readouterr()
    assert SENTINEL not in everything + captured.out + captured.err


def test_refresher_secret_unreadable_falls_back_to_static(fake: FakeProvider) -> None:
    api = FakeApi(None)
    refresher = gridprofiles.Refresher(api, now=lambda: NOW)
    assert asyncio.run(refresher.refresh("live", _live_body(fake))) == "degraded"
    status = api.patches[-1]
    assert status["regions"]["eu-north-1"]["source"] == "static (fallback)"
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Degraded"]["reason"] == "KeyUnavailable"
    assert "cannot read Secret ops/em-key: HTTP 403" in conds["Degraded"]["message"]
    assert fake.requests == []  # no key, no call


def test_refresher_static_clears_live_status(fake: FakeProvider) -> None:
    api = FakeApi()
    body = json.loads(json.dumps(PROFILE_DOC))
    body["status"] = {"regions": _prev(1), "provider": {"type": "electricityMaps"}}
    body["spec"]["regions"]["us-east-1"]["intensity"] = [400 + h for h in range(24)]
    refresher = gridprofiles.Refresher(api, now=lambda: NOW)
    assert asyncio.run(refresher.refresh("live", body)) == "static"
    # The live values go; what `kubectl get gp` shows stays: the hour's static values.
    summary = f"eu-north-1=40,us-east-1={400 + NOW.hour}"
    assert api.patches == [
        {
            "regions": None,
            "provider": {"type": "static", "signal": "average"},
            "summary": summary,
            "observedGeneration": 1,
        }
    ]
    # Due again at the next UTC hour, not before.
    state = refresher.states["live"]
    assert state.due - refresher.clock() == pytest.approx(
        3600 - NOW.minute * 60 - NOW.second, abs=2
    )


# ----------------------------------------------------------------------------------- CLI


def _profile_file(tmp_path: Path, fake: FakeProvider, kind: str = "electricityMaps") -> str:
    doc = _live_body(fake)
    doc.pop("status")
    doc["spec"]["provider"]["type"] = kind
    path = tmp_path / "gp.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_cli_intensity_json_and_table(
    fake: FakeProvider,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    em_serve(fake, latest(35), [35 + i for i in range(24)])
    monkeypatch.setenv(cli.KEY_ENV, SENTINEL)
    path = _profile_file(tmp_path, fake)
    assert cli.main(["intensity", "--profile", path, "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    entry = data["regions"]["eu-north-1"]
    assert entry["source"] == "electricityMaps:SE-SE3" and len(entry["next24h"]) == 24
    assert fake.hits("/v3/carbon-intensity/latest")[-1].headers["auth-token"] == SENTINEL
    assert cli.main(["intensity", "--profile", path]) == 0
    out = capsys.readouterr().out
    assert out.startswith("REGION") and "eu-north-1" in out and SENTINEL not in out
    key_file = tmp_path / "key"
    key_file.write_text(SENTINEL + "\n")
    monkeypatch.delenv(cli.KEY_ENV)
    assert cli.main(["intensity", "--profile", path, "--key-file", str(key_file)]) == 0


def test_cli_intensity_errors_are_one_line(
    fake: FakeProvider,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = _profile_file(tmp_path, fake)
    monkeypatch.delenv(cli.KEY_ENV, raising=False)
    assert cli.main(["intensity", "--profile", path]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "GREENSHARD_PROVIDER_KEY" in err
    monkeypatch.setenv(cli.KEY_ENV, SENTINEL)
    fake.set("/v3/carbon-intensity/latest", {"echo": SENTINEL}, 401)
    assert cli.main(["intensity", "--profile", path]) == 1  # the provider failed: runtime
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "HTTP 401" in err and SENTINEL not in err
    bad = tmp_path / "bad.yaml"
    doc = yaml.safe_load(Path(path).read_text())
    doc["spec"]["provider"]["type"] = "nope"
    bad.write_text(yaml.safe_dump(doc))
    assert cli.main(["intensity", "--profile", str(bad)]) == 2
    assert "spec.provider.type" in capsys.readouterr().err


def test_forecast_hours_plans_over_the_window() -> None:
    settings = resources.parse_settings({"carbon": {"forecastHours": 6}})
    assert settings.forecast_hours == 6
    assert resources.parse_settings({}).forecast_hours == 1
    nodes = [
        model.NodeInfo(
            f"n-{region}",
            {model.REGION_LABEL: region},
            unschedulable=False,
            ready=True,
            allocatable_memory_bytes=2.0**40,
        )
        for region in ("a", "b")
    ]
    doc = json.loads(json.dumps(PROFILE_DOC))
    # a: a one-hour dip at hour 12, else high; b: flat and medium
    doc["spec"]["regions"] = {
        "a": {"intensity": [500.0] * 12 + [10.0] + [500.0] * 11},
        "b": {"intensity": 200},
    }
    profile = parsing.parse_grid_profile(doc)
    deployment = parsing.parse_deployment(
        {
            "kind": "InferenceDeployment",
            "metadata": {"name": "x"},
            "spec": {
                "model": {"layers": 4, "parametersBillions": 1, "hiddenSize": 1024},
                "sharding": {"shards": 1},
                "workload": {"tokensPerSecond": 100},
            },
        }
    )
    now = model.build_problem(deployment, nodes, profile, 12)
    window = model.build_problem(deployment, nodes, profile, 12, hours=6)
    assert [p.intensity for p in now.pools] == [10.0, 200.0]
    assert window.pools[0].intensity == pytest.approx((10 + 5 * 500) / 6)
    best_now = min(range(2), key=lambda k: model.emissions(now, [k]))
    best_window = min(range(2), key=lambda k: model.emissions(window, [k]))
    assert (best_now, best_window) == (0, 1)  # the dip does not win the window


def test_refresher_picks_up_a_rotated_key_at_the_next_refresh(fake: FakeProvider) -> None:
    api = FakeApi({"token": "old-key"})
    clock = [0.0]
    refresher = gridprofiles.Refresher(api, clock=lambda: clock[0], now=lambda: NOW)
    em_serve(fake, latest(35), [35] * 24)
    assert asyncio.run(refresher.refresh("live", _live_body(fake))) == "fresh"
    assert {r.headers.get("auth-token") for r in fake.requests} == {"old-key"}
    api.secret = {"token": "new-key"}  # the Secret is rotated
    clock[0] += 601
    fake.requests.clear()
    assert asyncio.run(refresher.refresh("live", _live_body(fake, api.patches[-1]))) == "fresh"
    assert fake.requests
    assert {r.headers.get("auth-token") for r in fake.requests} == {"new-key"}
