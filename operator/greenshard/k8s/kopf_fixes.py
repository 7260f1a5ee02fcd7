"""A fix to kopf's start-up at thousands of objects, applied by :func:`greenshard.k8s.runner.run`.

kopf (1.45) holds back every event until all indexes are filled. Each object's worker waits on
``operator_indexed``, a ``ToggleSet(all)`` with one toggle per object still being indexed, until
the set is on. Every toggle made or dropped notifies the set's condition, which wakes every
waiting worker. Each of them takes the condition's lock in turn and checks every toggle. With N
objects that is N^2 wake-ups and N^3 toggle checks. In the soak (5000 KWOK nodes, 200
InferenceDeployments), the operator made no reconcile in ten minutes at 50% CPU, with py-spy
showing ``ToggleSet.make_toggle`` and ``wait_for``.

:func:`share_toggle_waits` makes the callers of ``ToggleSet.wait_for(state)`` share one waiter
per set and state. That waiter is kopf's own ``wait_for``, so it keeps kopf's semantics; the
others await it, and it is cancelled when the last of them is. A change then wakes one task,
not N.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from kopf._cogs.aiokits import aiotoggles

_ATTR = "_greenshard_shared_waits"


class _Shared:
    def __init__(self, task: asyncio.Future[None]) -> None:
        self.task = task
        self.awaiting = 0


def _shared_wait_for(
    original: Callable[[aiotoggles.ToggleSet, bool], Coroutine[Any, Any, None]],
) -> Callable[[aiotoggles.ToggleSet, bool], Coroutine[Any, Any, None]]:
    async def wait_for(self: aiotoggles.ToggleSet, state: bool) -> None:
        wanted = bool(state)
        if self.is_on() == wanted:
            return
        shared: dict[bool, _Shared] = self.__dict__.setdefault(_ATTR, {})
        entry = shared.get(wanted)
        if entry is None or entry.task.done():
            entry = _Shared(asyncio.ensure_future(original(self, wanted)))
            shared[wanted] = entry
        entry.awaiting += 1
        try:
            await asyncio.shield(entry.task)
        finally:
            entry.awaiting -= 1
            if entry.awaiting == 0:
                if not entry.task.done():
                    entry.task.cancel()  # nobody waits: no task left pending at shutdown
                if shared.get(wanted) is entry:
                    del shared[wanted]

    wait_for.__greenshard_shared__ = True  # type: ignore[attr-defined]
    return wait_for


def share_toggle_waits() -> None:
    """Patch ``kopf``'s ToggleSet.wait_for (once; a second call does nothing)."""
    current = aiotoggles.ToggleSet.wait_for
    if getattr(current, "__greenshard_shared__", False):
        return
    aiotoggles.ToggleSet.wait_for = _shared_wait_for(current)  # type: ignore[method-assign,assignment]
