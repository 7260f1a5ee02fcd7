"""kopf's ToggleSet waits, shared (greenshard.k8s.kopf_fixes): same answers, N times fewer
checks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest
from kopf._cogs.aiokits import aiotoggles

from greenshard.k8s import kopf_fixes

N = 200


class Counted:
    """``all`` that counts how often the set's state is computed."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, states: Iterable[bool]) -> bool:
        self.calls += 1
        return all(states)


async def start_up(n: int) -> tuple[int, int, list[bool]]:
    """N objects indexed as kopf does at start: a toggle each, a worker each waiting for the
    whole set; the toggles dropped one by one. (checks, workers done early, done at the end)."""
    fn = Counted()
    indexed = aiotoggles.ToggleSet(fn)
    toggles = [await indexed.make_toggle(name=str(i)) for i in range(n)]
    workers = [asyncio.create_task(indexed.wait_for(True)) for _ in range(n)]
    await asyncio.sleep(0)
    early = 0
    for toggle in toggles:
        await indexed.drop_toggle(toggle)
        await asyncio.sleep(0)
        early += sum(w.done() for w in workers) if len(indexed) else 0
    await asyncio.wait_for(asyncio.gather(*workers), timeout=30)
    return fn.calls, early, [w.done() for w in workers]


@pytest.fixture
def original_wait_for() -> object:
    """Restores kopf's own wait_for after the test."""
    saved = aiotoggles.ToggleSet.wait_for
    yield saved
    aiotoggles.ToggleSet.wait_for = saved  # type: ignore[method-assign]


def test_shared_waits_check_the_set_n_times_not_n_squared(original_wait_for: object) -> None:
    if getattr(original_wait_for, "__greenshard_shared__", False):
        pytest.skip("kopf already patched in this process")
    kopf_calls, kopf_early, kopf_done = asyncio.run(start_up(N))
    kopf_fixes.share_toggle_waits()
    kopf_fixes.share_toggle_waits()  # idempotent
    calls, early, done = asyncio.run(start_up(N))
    assert all(kopf_done) and all(done)
    assert kopf_early == 0 and early == 0, "no worker may go on before every object is indexed"
    assert kopf_calls > N * N / 4, kopf_calls  # kopf's own: every change wakes every worker
    assert calls < 4 * N, calls


def test_the_shared_waiter_is_cancelled_with_its_last_caller(original_wait_for: object) -> None:
    kopf_fixes.share_toggle_waits()

    async def scenario() -> int:
        indexed = aiotoggles.ToggleSet(all)
        await indexed.make_toggle(name="never indexed")
        workers = [asyncio.create_task(indexed.wait_for(True)) for _ in range(3)]
        await asyncio.sleep(0.01)
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await asyncio.sleep(0)
        current = asyncio.current_task()
        return len([t for t in asyncio.all_tasks() if t is not current and not t.done()])

    assert asyncio.run(scenario()) == 0
