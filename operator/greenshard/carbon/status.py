"""Staleness and fallback, as GridProfile status: fresh values win; after a failure the last good
values are kept until staleAfter, then the spec's static values are used and the message says
so (:func:`resolve`). :func:`next_refresh_seconds` backs off, honouring a 429's Retry-After."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from greenshard import model
from greenshard.carbon.errors import MalformedResponseError
from greenshard.carbon.readings import Outcome, Reading, parse_time


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


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
