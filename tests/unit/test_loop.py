"""The reconcile loop's wake-ups (k8s/loop.py): a change never waits out the idle time."""

from __future__ import annotations

import asyncio

from greenshard.k8s.loop import Loop


class Recorder(Loop):
    """Counts passes; the first pass is woken by a change that arrives while it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.passes = 0

    async def pass_all(self) -> None:
        self.passes += 1
        if self.passes == 1:
            self.wake.set()  # an index event during the pass
        await asyncio.sleep(0)


def test_a_wake_up_during_a_pass_runs_the_next_pass_at_once() -> None:
    async def scenario() -> int:
        loop, stopped = Recorder(), asyncio.Event()
        task = asyncio.create_task(loop.run(stopped, idle_seconds=60.0))
        await asyncio.sleep(0.2)  # far less than the idle time
        stopped.set()
        await asyncio.wait_for(task, timeout=5)
        return loop.passes

    assert asyncio.run(scenario()) == 2  # the second pass ran without waiting 60 s


def test_without_changes_it_idles() -> None:
    async def scenario() -> int:
        class Quiet(Loop):
            passes = 0

            async def pass_all(self) -> None:
                self.passes += 1

        loop, stopped = Quiet(), asyncio.Event()
        task = asyncio.create_task(loop.run(stopped, idle_seconds=60.0))
        await asyncio.sleep(0.2)
        stopped.set()
        await asyncio.wait_for(task, timeout=5)
        return loop.passes

    assert asyncio.run(scenario()) == 1
