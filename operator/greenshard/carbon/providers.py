"""Live carbon-intensity providers, and what to do when they fail (pure, no Kubernetes).

One :class:`Provider` protocol: ``fetch(zones, now)`` maps each cluster region (through its
provider zone) to a :class:`Reading` (the current intensity, up to 24 hourly forecast values from
the current hour on, source, signal type, fetchedAt) or to a :class:`ProviderError`. HTTP goes
through the standard library (urllib) with a timeout. Values are validated: never NaN, never
negative. API keys are sent in headers only and never appear in an error message or a log line.

:func:`resolve` is the staleness/fallback rule: fresh values win; after a failure the last good
values are kept until ``staleAfter``, then the static spec values are used and the message says
so. :func:`next_refresh_seconds` backs off, honouring a 429's Retry-After.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from greenshard import model
from greenshard.errors import InputError

LBS_PER_MWH_TO_G_PER_KWH = 0.453592  # 1 lb = 453.592 g; 1 MWh = 1000 kWh
MAX_INTENSITY = 1e5
SIGNALS = ("average", "marginal")
PROVIDER_TYPES = ("static", "electricityMaps", "wattTime", "ukCarbonIntensity", "carbonAwareSdk")
DEFAULT_BASE_URLS: Mapping[str, str] = {
    "electricityMaps": "https://api.electricitymap.org",
    "wattTime": "https://api.watttime.org",
    "ukCarbonIntensity": "https://api.carbonintensity.org.uk",
    "carbonAwareSdk": "http://localhost:8080",
}
NEEDS_KEY = ("electricityMaps", "wattTime")
DEFAULT_REFRESH = "15m"
DEFAULT_STALE_AFTER = "2h"


# ----------------------------------------------------------------------------------- errors


class ProviderError(Exception):
    """A provider failed for a region. ``reason`` is a CamelCase condition reason; the message
    names the provider and what to check, never a key."""

    reason = "ProviderError"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class AuthError(ProviderError):
    reason = "Unauthorized"


class RateLimitedError(ProviderError):
    reason = "RateLimited"


class ServerError(ProviderError):
    reason = "ServerError"


class MalformedResponseError(ProviderError):
    reason = "MalformedResponse"


class ProviderTimeoutError(ProviderError):
    reason = "Timeout"


class UnreachableError(ProviderError):
    reason = "Unreachable"


class NoDataError(ProviderError):
    reason = "NoData"


class KeyUnavailableError(ProviderError):
    reason = "KeyUnavailable"


# ----------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Reading:
    """One region's live intensity (gCO2e/kWh)."""

    current: float
    forecast: tuple[float, ...]  # hourly, forecast[0] = the current UTC hour; at most 24
    source: str
    signal: str  # "average" or "marginal"
    fetched_at: dt.datetime

    def by_utc_hour(self) -> tuple[float, ...]:
        """24 values indexed by UTC hour 0..23, as GridProfile intensities are: the forecast
        where it reaches, else the current value repeated."""
        start = self.fetched_at.astimezone(dt.UTC).hour
        values = [self.current] * 24
        for offset, value in enumerate(self.forecast[:24]):
            values[(start + offset) % 24] = value
        values[start] = self.current
        return tuple(values)


Outcome = Reading | ProviderError


class Provider(Protocol):
    name: str

    def fetch(self, zones: Mapping[str, str], now: dt.datetime) -> dict[str, Outcome]:
        """Per cluster region (keys of ``zones``), its reading or what went wrong."""
        ...


def check_value(value: object, what: str) -> float:
    """A finite, non-negative intensity, or MalformedResponseError."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedResponseError(f"{what}: expected a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or number > MAX_INTENSITY:
        raise MalformedResponseError(
            f"{what}: {number!r} is not an intensity in 0..{MAX_INTENSITY:g}"
        )
    return number


def parse_time(value: object, what: str) -> dt.datetime:
    if not isinstance(value, str):
        raise MalformedResponseError(f"{what}: expected an ISO 8601 time")
    text = value.strip().replace("Z", "+00:00")
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise MalformedResponseError(f"{what}: {value!r} is not an ISO 8601 time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def hourly(points: Sequence[tuple[dt.datetime, float]], now: dt.datetime) -> tuple[float, ...]:
    """Mean per UTC hour from the current hour on (at most 24), gaps carried forward."""
    start = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    buckets: dict[int, list[float]] = {}
    for moment, value in points:
        offset = math.floor((moment - start).total_seconds() / 3600.0)
        if 0 <= offset < 24:
            buckets.setdefault(offset, []).append(value)
    if not buckets:
        return ()
    out: list[float] = []
    last = buckets[min(buckets)]
    for offset in range(max(buckets) + 1):
        last = buckets.get(offset, last)
        out.append(sum(last) / len(last))
    return tuple(out)


# -------------------------------------------------------------------------------------- HTTP


def _retry_after(value: str | None) -> float:
    if not value:
        return 60.0
    try:
        return max(1.0, float(value))
    except ValueError:
        pass
    try:
        import email.utils  # noqa: PLC0415 - only for the rare HTTP-date form

        when = email.utils.parsedate_to_datetime(value)
        return max(1.0, (when - dt.datetime.now(dt.UTC)).total_seconds())
    except (TypeError, ValueError):
        return 60.0


class Http:
    """GET JSON with a timeout; failures become typed ProviderErrors without keys or bodies."""

    def __init__(self, provider: str, timeout: float = 10.0) -> None:
        self.provider = provider
        self.timeout = timeout

    def get_json(self, url: str, headers: Mapping[str, str], what: str) -> Any:
        request = urllib.request.Request(url, headers={"Accept": "application/json", **headers})
        where = f"{self.provider} {what}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            code = exc.code
            retry = exc.headers.get("Retry-After") if exc.headers else None
            exc.close()
            if code in (401, 403):
                raise AuthError(
                    f"{where}: HTTP {code}: the API key was refused; check the Secret that "
                    "spec.provider.secretRef names"
                ) from None
            if code == 429:
                seconds = _retry_after(retry)
                raise RateLimitedError(
                    f"{where}: HTTP 429 rate limited; retrying after {seconds:.0f} s",
                    retry_after=seconds,
                ) from None
            if code == 404:
                raise NoDataError(f"{where}: HTTP 404: no data for this zone") from None
            if code >= 500:
                raise ServerError(f"{where}: HTTP {code}: the provider failed") from None
            raise ProviderError(f"{where}: HTTP {code}") from None
        except TimeoutError:
            raise ProviderTimeoutError(f"{where}: no answer within {self.timeout:g} s") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise ProviderTimeoutError(
                    f"{where}: no answer within {self.timeout:g} s"
                ) from None
            raise UnreachableError(f"{where}: cannot connect ({exc.reason})") from None
        except OSError as exc:
            raise UnreachableError(f"{where}: connection failed ({exc.strerror or exc})") from None
        try:
            return json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError):
            raise MalformedResponseError(f"{where}: the response is not valid JSON") from None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _url(base: str, path: str, query: Mapping[str, str] | None = None) -> str:
    url = base.rstrip("/") + path
    if query:
        url += "?" + urllib.parse.urlencode(query)
    return url


def _get(data: Any, *keys: str | int) -> Any:
    for key in keys:
        if isinstance(key, int):
            if not isinstance(data, list) or len(data) <= key:
                return None
            data = data[key]
        else:
            if not isinstance(data, Mapping):
                return None
            data = data.get(key)
    return data


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


# ------------------------------------------------------------------------------- providers


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
            _url(self.base_url, "/v3/carbon-intensity/latest", {"zone": zone}), headers, "latest"
        )
        value = _get(latest, "carbonIntensity")
        if value is None:
            raise NoDataError(f"electricityMaps latest: no carbonIntensity for zone {zone!r}")
        current = check_value(value, f"electricityMaps zone {zone!r} carbonIntensity")
        forecast: tuple[float, ...] = ()
        try:
            data = self.http.get_json(
                _url(self.base_url, "/v3/carbon-intensity/forecast", {"zone": zone}),
                headers,
                "forecast",
            )
            rows = _get(data, "forecast")
            if isinstance(rows, list):
                points = [
                    (
                        parse_time(_get(r, "datetime"), "electricityMaps forecast datetime"),
                        check_value(_get(r, "carbonIntensity"), f"electricityMaps zone {zone!r}"),
                    )
                    for r in rows
                    if _get(r, "carbonIntensity") is not None
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
            _url(self.base_url, "/login"), {"Authorization": f"Basic {basic}"}, "login"
        )
        token = _get(data, "token")
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
                    _url(self.base_url, "/v3/forecast", query),
                    {"Authorization": f"Bearer {self.token}"},
                    "forecast",
                )
                break
            except AuthError:
                self.token = None  # tokens expire after 30 minutes: log in again once
                if attempt:
                    raise
        units = str(_get(data, "meta", "units") or "lbs_co2_per_mwh")
        factor = LBS_PER_MWH_TO_G_PER_KWH if "lbs" in units else 1.0
        rows = _get(data, "data")
        if not isinstance(rows, list) or not rows:
            raise NoDataError(f"wattTime forecast: no data for region {zone!r}")
        points = [
            (
                parse_time(_get(r, "point_time"), "wattTime point_time"),
                check_value(_get(r, "value"), f"wattTime region {zone!r}") * factor,
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
            latest = self.http.get_json(_url(self.base_url, "/intensity"), {}, "intensity")
            periods = _get(latest, "data")
            ahead = self.http.get_json(
                _url(self.base_url, f"/intensity/{start}/fw24h"), {}, "forecast"
            )
            future = _get(ahead, "data")
        else:
            latest = self.http.get_json(
                _url(self.base_url, f"/regional/regionid/{region_id}"), {}, "regional"
            )
            periods = _get(latest, "data", 0, "data")
            ahead = self.http.get_json(
                _url(self.base_url, f"/regional/intensity/{start}/fw24h/regionid/{region_id}"),
                {},
                "regional forecast",
            )
            future = _get(ahead, "data", "data")
            if future is None:
                future = _get(ahead, "data", 0, "data")
        if not isinstance(periods, list) or not periods:
            raise NoDataError(f"ukCarbonIntensity: no data for zone {zone!r}")
        now_entry = _get(periods, 0, "intensity")
        value = _get(now_entry, "actual")
        if value is None:
            value = _get(now_entry, "forecast")
        if value is None:
            raise NoDataError(f"ukCarbonIntensity: no intensity for zone {zone!r}")
        current = check_value(value, f"ukCarbonIntensity zone {zone!r}")
        points = []
        for row in future if isinstance(future, list) else []:
            v = _get(row, "intensity", "forecast")
            if v is not None:
                points.append(
                    (
                        parse_time(_get(row, "from"), "ukCarbonIntensity from"),
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
            _url(
                self.base_url,
                "/emissions/bylocation",
                {"location": zone, "time": frm, "toTime": to},
            ),
            headers,
            "bylocation",
        )
        if not isinstance(rows, list) or not rows:
            raise NoDataError(f"carbonAwareSdk: no emissions data for location {zone!r}")
        latest = max(rows, key=lambda r: str(_get(r, "time") or ""))
        current = check_value(_get(latest, "rating"), f"carbonAwareSdk location {zone!r} rating")
        forecast: tuple[float, ...] = ()
        try:
            data = self.http.get_json(
                _url(self.base_url, "/emissions/forecasts/current", {"location": zone}),
                headers,
                "forecasts",
            )
            series = _get(data, 0, "forecastData")
            if isinstance(series, list):
                points = [
                    (
                        parse_time(_get(r, "timestamp"), "carbonAwareSdk timestamp"),
                        check_value(_get(r, "value"), f"carbonAwareSdk location {zone!r}"),
                    )
                    for r in series
                ]
                forecast = hourly(points, now)
        except NoDataError:
            forecast = ()
        return self.reading(zone, current, forecast, now)


# ------------------------------------------------------------------------------- the spec


_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def duration_seconds(text: str, field_name: str) -> float:
    match = _DURATION.match(text.strip())
    if not text.strip() or not match:
        raise InputError(field_name, f"{text!r} is not a duration like 15m, 1h or 90s")
    h, m, s = (int(g) if g else 0 for g in match.groups())
    return max(10.0, h * 3600.0 + m * 60.0 + s)


@dataclass(frozen=True)
class SecretRef:
    name: str
    namespace: str
    key: str


@dataclass(frozen=True)
class ProviderSpec:
    """GridProfile.spec.provider, validated."""

    type: str = "static"
    base_url: str | None = None
    zones: Mapping[str, str] = field(default_factory=dict)
    secret_ref: SecretRef | None = None
    refresh_seconds: float = 900.0
    stale_after_seconds: float = 7200.0
    signal: str = "average"
    timeout_seconds: float = 10.0


def parse_provider_spec(spec: Mapping[str, Any]) -> ProviderSpec:
    """The provider part of a GridProfile spec (InputError names the field)."""
    raw = spec.get("provider")
    if raw is None:
        return ProviderSpec()
    if not isinstance(raw, Mapping):
        raise InputError("spec.provider", "must be a mapping")
    kind = str(raw.get("type") or "static")
    if kind not in PROVIDER_TYPES:
        raise InputError("spec.provider.type", f"must be one of {', '.join(PROVIDER_TYPES)}")
    zones = raw.get("zones") or {}
    if not isinstance(zones, Mapping) or not all(isinstance(v, str | int) for v in zones.values()):
        raise InputError("spec.provider.zones", "must map cluster regions to provider zones")
    regions = spec.get("regions") or {}
    for region in zones:
        if isinstance(regions, Mapping) and region not in regions:
            raise InputError(
                f"spec.provider.zones.{region}", "names a region that spec.regions does not have"
            )
    ref = raw.get("secretRef")
    secret: SecretRef | None = None
    if ref is not None:
        if not isinstance(ref, Mapping) or not ref.get("name") or not ref.get("namespace"):
            raise InputError("spec.provider.secretRef", "needs name and namespace")
        secret = SecretRef(str(ref["name"]), str(ref["namespace"]), str(ref.get("key") or "apiKey"))
    if kind in NEEDS_KEY and secret is None:
        raise InputError("spec.provider.secretRef", f"is required for type {kind}")
    if kind != "static" and not zones:
        raise InputError("spec.provider.zones", f"must map at least one region for type {kind}")
    signal = str(raw.get("signal") or ("marginal" if kind == "wattTime" else "average"))
    if signal not in SIGNALS:
        raise InputError("spec.provider.signal", "must be average or marginal")
    base = raw.get("baseURL")
    if base is not None and not (
        isinstance(base, str) and base.startswith(("http://", "https://"))
    ):
        raise InputError("spec.provider.baseURL", "must be an http(s) URL")
    return ProviderSpec(
        type=kind,
        base_url=base,
        zones={str(k): str(v) for k, v in zones.items()},
        secret_ref=secret,
        refresh_seconds=duration_seconds(
            str(raw.get("refreshInterval") or DEFAULT_REFRESH), "spec.provider.refreshInterval"
        ),
        stale_after_seconds=duration_seconds(
            str(raw.get("staleAfter") or DEFAULT_STALE_AFTER), "spec.provider.staleAfter"
        ),
        signal=signal,
    )


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


# ------------------------------------------------------------------ staleness and fallback


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Resolution:
    """What the GridProfile status should say after one refresh."""

    regions: dict[str, dict[str, Any]]
    fresh: tuple[bool, str, str]  # status, reason, message
    degraded: tuple[bool, str, str]
    retry_after: float | None  # the largest Retry-After among the errors


def region_status(reading: Reading) -> dict[str, Any]:
    return {
        "intensity": [_r(v) for v in reading.by_utc_hour()],
        "current": _r(reading.current),
        "source": reading.source,
        "signal": reading.signal,
        "fetchedAt": iso(reading.fetched_at),
    }


def _r(value: float) -> float:
    return float(f"{value:.6g}")


def _age_seconds(entry: Mapping[str, Any], now: dt.datetime) -> float | None:
    try:
        fetched = parse_time(entry.get("fetchedAt"), "fetchedAt")
    except MalformedResponseError:
        return None
    return (now - fetched).total_seconds()


def resolve(
    profile: model.GridProfile,
    previous: Mapping[str, Any],
    outcomes: Mapping[str, Outcome],
    now: dt.datetime,
    stale_after_seconds: float,
    provider_name: str,
) -> Resolution:
    """Fresh readings win; a failed region keeps its last good values (``previous``: the
    status.regions written before) until they are ``stale_after_seconds`` old, then falls back
    to the static spec values, and the Degraded message says which and why."""
    hour = now.astimezone(dt.UTC).hour
    regions: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    reasons: list[str] = []
    retry: float | None = None
    for region in sorted(outcomes):
        outcome = outcomes[region]
        if isinstance(outcome, Reading):
            regions[region] = region_status(outcome)
            continue
        reasons.append(outcome.reason)
        if outcome.retry_after is not None:
            retry = max(retry or 0.0, outcome.retry_after)
        prev = previous.get(region) if isinstance(previous, Mapping) else None
        age = _age_seconds(prev, now) if isinstance(prev, Mapping) else None
        live_prev = (
            isinstance(prev, Mapping)
            and age is not None
            and age <= stale_after_seconds
            and not str(prev.get("source", "")).startswith("static")
        )
        if live_prev and isinstance(prev, Mapping) and age is not None:
            regions[region] = dict(prev)
            problems.append(
                f"{region}: {outcome.message}; keeping the values fetched at "
                f"{prev.get('fetchedAt')} ({age / 60:.0f} min old, stale after "
                f"{stale_after_seconds / 60:.0f} min)"
            )
            continue
        carbon = profile.regions.get(region)
        if carbon is None:
            problems.append(f"{region}: {outcome.message}; not in spec.regions")
            continue
        values = [_r(carbon.at(h)) for h in range(24)]
        regions[region] = {
            "intensity": values,
            "current": _r(carbon.at(hour)),
            "source": "static (fallback)",
            "signal": "average",
            "fetchedAt": iso(now),
        }
        problems.append(
            f"{region}: {outcome.message}; no live values younger than "
            f"{stale_after_seconds / 60:.0f} min, using the static spec.regions values"
        )
    if not problems:
        fresh = (True, "Fetched", f"{provider_name}: every mapped region fetched at {iso(now)}")
        degraded = (False, "AsExpected", "no error")
    else:
        reason = reasons[0] if len(set(reasons)) == 1 else "ProviderErrors"
        fresh = (False, reason, f"{len(problems)} of {len(outcomes)} region(s) not fresh")
        degraded = (True, reason, "; ".join(problems)[:1000])
    return Resolution(regions, fresh, degraded, retry)


def next_refresh_seconds(
    interval: float, failures: int, retry_after: float | None, base_backoff: float = 10.0
) -> float:
    """Seconds until the next refresh: the interval when all went well; after failures an
    exponential backoff (10 s, 20 s, ... capped by the interval); after a 429 at least its
    Retry-After."""
    if retry_after is not None:
        return max(retry_after, 1.0)
    if failures <= 0:
        return interval
    backoff: float = base_backoff * 2.0 ** min(failures - 1, 16)
    return min(interval, backoff)


def redact(text: str, *secrets: str | None) -> str:
    """Belt and braces: any secret text that slipped into a message becomes '***'."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
            for part in secret.split(":"):
                if len(part) >= 4:
                    text = text.replace(part, "***")
    return text


Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
