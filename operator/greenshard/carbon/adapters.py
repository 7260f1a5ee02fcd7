"""The providers: the spec's static numbers, Electricity Maps, WattTime, the UK Carbon Intensity
API and the Carbon Aware SDK, each mapping cluster regions to Readings; :func:`make_provider`
picks one from a ProviderSpec. API keys go in headers only."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping

from greenshard import model
from greenshard.carbon.errors import (
    AuthError,
    MalformedResponseError,
    NoDataError,
    ProviderError,
    RateLimitedError,
)
from greenshard.carbon.http import Http, dig, join_url
from greenshard.carbon.readings import Outcome, Provider, Reading, check_value, hourly, parse_time
from greenshard.carbon.spec import ProviderSpec
from greenshard.errors import InputError

LBS_PER_MWH_TO_G_PER_KWH = 0.453592  # 1 lb = 453.592 g; 1 MWh = 1000 kWh
DEFAULT_BASE_URLS: Mapping[str, str] = {
    "electricityMaps": "https://api.electricitymap.org",
    "wattTime": "https://api.watttime.org",
    "ukCarbonIntensity": "https://api.carbonintensity.org.uk",
    "carbonAwareSdk": "http://localhost:8080",
}


class _Base:
    name = "provider"
    signal = "average"

    def __init__(self, base_url: str | None, key: str | None, timeout: float) -> None:
        self.base_url = base_url or DEFAULT_BASE_URLS[self.name]
        self.key = key
        self.http = Http(self.name, timeout)

    def fetch(self, zones: Mapping[str, str], now: dt.datetime) -> dict[str, Outcome]:
        out: dict[str, Outcome] = {}
        stop: ProviderError | None = None
        for region in sorted(zones):
            if stop is not None:  # rate limited or locked out: do not hammer the provider
                out[region] = stop
                continue
            try:
                out[region] = self.fetch_zone(zones[region], now)
            except (RateLimitedError, AuthError) as err:
                stop = err
                out[region] = err
            except ProviderError as err:
                out[region] = err
        return out

    def fetch_zone(self, zone: str, now: dt.datetime) -> Reading:
        raise NotImplementedError

    def reading(
        self, zone: str, current: float, forecast: tuple[float, ...], now: dt.datetime
    ) -> Reading:
        return Reading(current, forecast, f"{self.name}:{zone}", self.signal, now)


class StaticProvider:
    """The spec's numbers (the default): no network."""

    name = "static"

    def __init__(self, profile: model.GridProfile) -> None:
        self.profile = profile

    def fetch(self, zones: Mapping[str, str], now: dt.datetime) -> dict[str, Outcome]:
        hour = now.astimezone(dt.UTC).hour
        out: dict[str, Outcome] = {}
        for region in zones or self.profile.regions:
            carbon = self.profile.regions.get(region)
            if carbon is None:
                out[region] = NoDataError(f"static: region {region!r} is not in spec.regions")
                continue
            forecast = tuple(carbon.at((hour + i) % 24) for i in range(24))
            out[region] = Reading(carbon.at(hour), forecast, "static", "average", now)
        return out


class ElectricityMaps(_Base):
    """v3 ``/carbon-intensity/latest`` and ``/carbon-intensity/forecast`` by zone;
    ``auth-token`` header; lifecycle average intensity in gCO2eq/kWh."""

    name = "electricityMaps"

    def fetch_zone(self, zone: str, now: dt.datetime) -> Reading:
        headers = {"auth-token": self.key or ""}
        latest = self.http.get_json(
            join_url(self.base_url, "/v3/carbon-intensity/latest", {"zone": zone}),
            headers,
            "latest",
        )
        value = dig(latest, "carbonIntensity")
        if value is None:
            raise NoDataError(f"electricityMaps latest: no carbonIntensity for zone {zone!r}")
        current = check_value(value, f"electricityMaps zone {zone!r} carbonIntensity")
        forecast: tuple[float, ...] = ()
        try:
            data = self.http.get_json(
                join_url(self.base_url, "/v3/carbon-intensity/forecast", {"zone": zone}),
                headers,
                "forecast",
            )
            rows = dig(data, "forecast")
            if isinstance(rows, list):
                points = [
                    (
                        parse_time(dig(r, "datetime"), "electricityMaps forecast datetime"),
                        check_value(dig(r, "carbonIntensity"), f"electricityMaps zone {zone!r}"),
                    )
                    for r in rows
                    if dig(r, "carbonIntensity") is not None
                ]
                forecast = hourly(points, now)
        except NoDataError:
            forecast = ()  # no forecast for this zone (plan tier): the current value holds
        return self.reading(zone, current, forecast, now)


class WattTime(_Base):
    """v3: ``/login`` (basic auth, the Secret's value is ``username:password``) for a token,
    then ``/v3/forecast`` by region (5-minute points, averaged per hour). Marginal emissions
    (co2_moer) in lbs/MWh, converted to g/kWh and labelled ``signal: marginal``."""

    name = "wattTime"
    signal = "marginal"

    def __init__(self, base_url: str | None, key: str | None, timeout: float) -> None:
        super().__init__(base_url, key, timeout)
        self.token: str | None = None

    def _login(self) -> str:
        user, _, password = (self.key or "").partition(":")
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        data = self.http.get_json(
            join_url(self.base_url, "/login"), {"Authorization": f"Basic {basic}"}, "login"
        )
        token = dig(data, "token")
        if not isinstance(token, str) or not token:
            raise MalformedResponseError("wattTime login: the answer has no token")
        return token

    def fetch_zone(self, zone: str, now: dt.datetime) -> Reading:
        query = {"region": zone, "signal_type": "co2_moer", "horizon_hours": "24"}
        for attempt in range(2):
            if self.token is None:
                self.token = self._login()
            try:
                data = self.http.get_json(
                    join_url(self.base_url, "/v3/forecast", query),
                    {"Authorization": f"Bearer {self.token}"},
                    "forecast",
                )
                break
            except AuthError:
                self.token = None  # tokens expire after 30 minutes: log in again once
                if attempt:
                    raise
        units = str(dig(data, "meta", "units") or "lbs_co2_per_mwh")
        factor = LBS_PER_MWH_TO_G_PER_KWH if "lbs" in units else 1.0
        rows = dig(data, "data")
        if not isinstance(rows, list) or not rows:
            raise NoDataError(f"wattTime forecast: no data for region {zone!r}")
        points = [
            (
                parse_time(dig(r, "point_time"), "wattTime point_time"),
                check_value(dig(r, "value"), f"wattTime region {zone!r}") * factor,
            )
            for r in rows
        ]
        points.sort()
        current = points[0][1]
        return self.reading(zone, current, hourly(points, now) or (current,), now)


class UkCarbonIntensity(_Base):
    """National Grid ESO's Carbon Intensity API (no key): zone ``national`` (or ``GB``) uses
    ``/intensity`` and ``/intensity/{from}/fw24h``; a region id 1..17 uses
    ``/regional/regionid/{id}`` and ``/regional/intensity/{from}/fw24h/regionid/{id}``."""

    name = "ukCarbonIntensity"

    def fetch_zone(self, zone: str, now: dt.datetime) -> Reading:
        start = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%MZ")
        national = zone.lower() in ("national", "gb", "")
        region_id = zone.removeprefix("regionid:")
        if not national and not region_id.isdigit():
            raise NoDataError(
                f"ukCarbonIntensity: zone {zone!r} is neither 'national' nor a region id 1..17"
            )
        if national:
            latest = self.http.get_json(join_url(self.base_url, "/intensity"), {}, "intensity")
            periods = dig(latest, "data")
            ahead = self.http.get_json(
                join_url(self.base_url, f"/intensity/{start}/fw24h"), {}, "forecast"
            )
            future = dig(ahead, "data")
        else:
            latest = self.http.get_json(
                join_url(self.base_url, f"/regional/regionid/{region_id}"), {}, "regional"
            )
            periods = dig(latest, "data", 0, "data")
            ahead = self.http.get_json(
                join_url(self.base_url, f"/regional/intensity/{start}/fw24h/regionid/{region_id}"),
                {},
                "regional forecast",
            )
            future = dig(ahead, "data", "data")
            if future is None:
                future = dig(ahead, "data", 0, "data")
        if not isinstance(periods, list) or not periods:
            raise NoDataError(f"ukCarbonIntensity: no data for zone {zone!r}")
        now_entry = dig(periods, 0, "intensity")
        value = dig(now_entry, "actual")
        if value is None:
            value = dig(now_entry, "forecast")
        if value is None:
            raise NoDataError(f"ukCarbonIntensity: no intensity for zone {zone!r}")
        current = check_value(value, f"ukCarbonIntensity zone {zone!r}")
        points = []
        for row in future if isinstance(future, list) else []:
            v = dig(row, "intensity", "forecast")
            if v is not None:
                points.append(
                    (
                        parse_time(dig(row, "from"), "ukCarbonIntensity from"),
                        check_value(v, f"ukCarbonIntensity zone {zone!r}"),
                    )
                )
        return self.reading(zone, current, hourly(points, now), now)


class CarbonAwareSdk(_Base):
    """The Green Software Foundation's Carbon Aware SDK WebAPI (no key by default):
    ``/emissions/bylocation`` for the latest rating and ``/emissions/forecasts/current`` for
    the forecast. Its signal depends on the SDK's data source: spec.provider.signal says which."""

    name = "carbonAwareSdk"

    def __init__(
        self, base_url: str | None, key: str | None, timeout: float, signal: str = "average"
    ) -> None:
        super().__init__(base_url, key, timeout)
        self.signal = signal

    def fetch_zone(self, zone: str, now: dt.datetime) -> Reading:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        frm = (now - dt.timedelta(hours=1)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        to = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows = self.http.get_json(
            join_url(
                self.base_url,
                "/emissions/bylocation",
                {"location": zone, "time": frm, "toTime": to},
            ),
            headers,
            "bylocation",
        )
        if not isinstance(rows, list) or not rows:
            raise NoDataError(f"carbonAwareSdk: no emissions data for location {zone!r}")
        latest = max(rows, key=lambda r: str(dig(r, "time") or ""))
        current = check_value(dig(latest, "rating"), f"carbonAwareSdk location {zone!r} rating")
        forecast: tuple[float, ...] = ()
        try:
            data = self.http.get_json(
                join_url(self.base_url, "/emissions/forecasts/current", {"location": zone}),
                headers,
                "forecasts",
            )
            series = dig(data, 0, "forecastData")
            if isinstance(series, list):
                points = [
                    (
                        parse_time(dig(r, "timestamp"), "carbonAwareSdk timestamp"),
                        check_value(dig(r, "value"), f"carbonAwareSdk location {zone!r}"),
                    )
                    for r in series
                ]
                forecast = hourly(points, now)
        except NoDataError:
            forecast = ()
        return self.reading(zone, current, forecast, now)


def make_provider(
    spec: ProviderSpec, key: str | None, profile: model.GridProfile | None = None
) -> Provider:
    """The provider a spec names (``key``: the API key, never logged)."""
    if spec.type == "electricityMaps":
        return ElectricityMaps(spec.base_url, key, spec.timeout_seconds)
    if spec.type == "wattTime":
        return WattTime(spec.base_url, key, spec.timeout_seconds)
    if spec.type == "ukCarbonIntensity":
        return UkCarbonIntensity(spec.base_url, key, spec.timeout_seconds)
    if spec.type == "carbonAwareSdk":
        return CarbonAwareSdk(spec.base_url, key, spec.timeout_seconds, spec.signal)
    if profile is None:
        raise InputError("spec.provider.type", "static needs the profile's spec.regions")
    return StaticProvider(profile)
