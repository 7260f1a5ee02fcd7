"""What every loop of the operator shares: a wake-up, a heartbeat, the idle wait, reading kopf's
index stores, input fingerprints, and the gated status write (never resend a patch that the
cache has not caught up with).

The controller (:mod:`.controller`) and the GridProfile refresher (:mod:`.gridprofiles`) are
each one :class:`Loop`: one asyncio task that runs a pass on every wake-up or idle period.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any


def first(value: Any) -> Any:
    """kopf indexes hold a store (an iterable of values) per key; plain dicts hold the value."""
    if isinstance(value, Mapping) or value is None:
        return value
    for item in value:
        return item
    return None


def fingerprint(*parts: Any) -> str:
    """A stable digest of plain data: equal inputs, equal fingerprints."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


async def idle(wake: asyncio.Event, stopped: asyncio.Event, seconds: float) -> None:
    """Sleep until woken, stopped, or ``seconds`` pass (at once when already woken)."""
    waiter = asyncio.ensure_future(wake.wait())
    stopper = asyncio.ensure_future(stopped.wait())
    await asyncio.wait({waiter, stopper}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    stopper.cancel()


class Loop:
    """One asyncio task: :meth:`pass_all` on each wake-up (or every ``idle_seconds``), a
    heartbeat for the liveness probe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.wake = asyncio.Event()
        self.heartbeat = clock()

    def ready(self) -> bool:
        """Whether a pass may run (the caches are attached)."""
        return True

    async def pass_all(self) -> None:
        raise NotImplementedError

    async def run(self, stopped: asyncio.Event, idle_seconds: float = 1.0) -> None:
        while not stopped.is_set():
            self.heartbeat = self.clock()
            # Cleared before the pass, not after it: a change that arrives during the pass
            # wakes the next one at once instead of waiting out the idle time.
            self.wake.clear()
            if self.ready():
                await self.pass_all()
            await idle(self.wake, stopped, idle_seconds)


# ------------------------------------------------------------------------ the gated write


def _diff(current: Any, wanted: Any) -> Any:
    """JSON merge patch turning ``current`` into ``wanted`` (None: nothing to do).

    Keys of a nested object that ``wanted`` no longer has are set to null, so stale fields
    (an old fallbackReason, say) are removed rather than kept forever."""
    if isinstance(wanted, Mapping) and isinstance(current, Mapping):
        patch: dict[str, Any] = {}
        for key, value in wanted.items():
            sub = _diff(current.get(key), value)
            if sub is not _SAME:
                patch[key] = sub
        for key in current:
            if key not in wanted:
                patch[key] = None
        return patch or _SAME
    return _SAME if current == wanted else wanted


_SAME: Any = object()


def status_patch(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch of the keys of ``wanted`` (other top-level keys are left alone: a failed
    plan keeps the last good placement), or None when the status already says it all."""
    patch = {}
    for key, value in wanted.items():
        sub = _diff(current.get(key), value)
        if sub is not _SAME:
            patch[key] = sub
    return patch or None


@dataclass
class PatchGate:
    """Remembers the last status patch sent, so that a pass that runs before our own write
    comes back through the watch does not send it again."""

    patch: dict[str, Any] | None = None
    sent_at: float = float("-inf")
    window: float = 10.0  # seconds our own write may take to come back as an event

    def due(
        self, current: Mapping[str, Any], wanted: Mapping[str, Any], now: float
    ) -> dict[str, Any] | None:
        """The merge patch to send now, or None (nothing differs, or just sent)."""
        patch = status_patch(current, wanted)
        if patch is None or (patch == self.patch and now - self.sent_at < self.window):
            return None
        return patch

    def sent(self, patch: dict[str, Any], now: float) -> None:
        self.patch, self.sent_at = patch, now

    async def write(
        self,
        current: Mapping[str, Any],
        wanted: Mapping[str, Any],
        clock: Callable[[], float],
        send: Callable[[dict[str, Any]], Awaitable[Any]],
    ) -> bool:
        """Sends the patch that turns ``current`` into ``wanted`` when one is due; whether it
        did."""
        patch = self.due(current, wanted, clock())
        if patch is None:
            return False
        await send(patch)
        self.sent(patch, clock())
        return True
