"""Carbon data: which hour's intensity a plan uses, and live intensities from providers.

GridProfile parsing and the per-region intensity lookup live in :mod:`greenshard.parsing` and
:mod:`greenshard.model` (they are part of the cost-model contract). Live providers:
:mod:`~greenshard.carbon.spec` (GridProfile.spec.provider) -> :mod:`~greenshard.carbon.adapters`
(over :mod:`~greenshard.carbon.http`) -> :mod:`~greenshard.carbon.readings` or
:mod:`~greenshard.carbon.errors` -> :mod:`~greenshard.carbon.status` (staleness and fallback).
"""

from __future__ import annotations

import datetime as dt


def current_utc_hour(now: dt.datetime | None = None) -> int:
    """The UTC hour (0..23) whose intensity a plan uses when none is given."""
    moment = now if now is not None else dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:
        raise ValueError("a timezone-aware datetime is required")
    return moment.astimezone(dt.UTC).hour
