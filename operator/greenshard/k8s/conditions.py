"""Status conditions (pure): the Kubernetes shape, merged so that lastTransitionTime moves only
when a condition's status does; used by the InferenceDeployment and GridProfile statuses."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

CONDITION_TYPES = ("Ready", "Optimized", "Progressing", "Degraded")


def now_iso(now: dt.datetime | None = None) -> str:
    moment = now or dt.datetime.now(dt.UTC)
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool | None
    reason: str
    message: str

    @property
    def status_text(self) -> str:
        return {True: "True", False: "False", None: "Unknown"}[self.status]


def merge_conditions(
    current: Sequence[Mapping[str, Any]], wanted: Sequence[Condition], generation: int, now: str
) -> list[dict[str, Any]]:
    """The whole conditions list (a merge patch replaces lists whole), keeping
    lastTransitionTime where the status did not change, in CONDITION_TYPES order."""
    old = {c.get("type"): c for c in current if isinstance(c, Mapping)}
    out = []
    for cond in sorted(
        wanted, key=lambda c: CONDITION_TYPES.index(c.type) if c.type in CONDITION_TYPES else 99
    ):
        prev = old.get(cond.type)
        changed = prev is None or prev.get("status") != cond.status_text
        out.append(
            {
                "type": cond.type,
                "status": cond.status_text,
                "reason": cond.reason,
                "message": cond.message,
                "lastTransitionTime": now
                if changed or prev is None
                else prev.get("lastTransitionTime", now),
                "observedGeneration": generation,
            }
        )
    return out
