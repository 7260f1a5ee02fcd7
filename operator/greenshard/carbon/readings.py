"""A provider's answer: one Reading per region (validated values), and the Provider protocol."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from greenshard.carbon.errors import MalformedResponseError, ProviderError

MAX_INTENSITY = 1e5
SIGNALS = ("average", "marginal")


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
