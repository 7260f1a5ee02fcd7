"""kopf's settings for the operator: its watches outlast an API outage.

kopf retries a failing API request over ``settings.networking.error_backoffs`` and then gives up;
a watch that gives up stops the whole operator. With kopf's default schedule (8 retries, 54 s),
10 kube-apiserver and 3 etcd restarts in a row stopped the operator (the chaos restart scenario
at full numbers), and its process then hung without a controller.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import aiohttp
import kopf
import pytest
from kopf._cogs.clients import api as kopf_api

from greenshard.k8s import handlers


class _Refusing:
    """An API server that refuses ``down`` connections, then answers 200."""

    def __init__(self, down: int) -> None:
        self.down = down
        self.calls = 0

    async def request(self, **_: Any) -> Any:
        self.calls += 1
        if self.calls <= self.down:
            raise aiohttp.ClientConnectionError("Connect call failed")

        class Ok:
            status = 200

        return Ok()


class _Context:
    def __init__(self, session: _Refusing) -> None:
        self.session = session
        self.server = "https://127.0.0.1:6443"

    def add_response(self, _: Any) -> None:
        pass


def _request(settings: kopf.OperatorSettings, session: _Refusing) -> Any:
    async def go() -> Any:
        return await kopf_api.request(
            "get",
            "/apis/greenshard.io/v1alpha1/inferencedeployments?watch=true",
            settings=settings,
            context=_Context(session),
            logger=logging.getLogger("test"),
        )

    return asyncio.run(go())


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(kopf_api.asyncio, "sleep", sleep)
    return slept


def test_kopf_default_gives_up_within_a_minute(no_sleep: list[float]) -> None:
    """What the operator must not rely on: kopf's own schedule escalates after 9 attempts."""
    with pytest.raises(aiohttp.ClientConnectionError):
        _request(kopf.OperatorSettings(), _Refusing(down=30))
    assert sum(no_sleep) < 60


def test_requests_outlast_a_ten_minute_outage(no_sleep: list[float]) -> None:
    settings = kopf.OperatorSettings()
    handlers.configure(settings)
    session = _Refusing(down=30)
    assert _request(settings, session).status == 200
    assert session.calls == 31
    assert sum(no_sleep) >= 600  # 30 refusals waited through 10+ minutes, never escalated
    assert max(no_sleep) <= 30  # and it comes back within 30 s of the API server


def test_backoffs_start_over_for_every_request() -> None:
    """kopf iterates the same settings object for every request: not a one-shot iterator."""
    backoffs = handlers.Backoffs()
    first = list(itertools.islice(backoffs, 12))
    assert list(itertools.islice(backoffs, 12)) == first
    assert first[:3] == [1.0, 1.0, 2.0]
    assert first[-1] == 30.0


def test_configure_keeps_the_watch_timeouts_and_bounds_a_hung_exit() -> None:
    settings = kopf.OperatorSettings()
    handlers.configure(settings)
    assert settings.posting.enabled is False
    assert settings.watching.server_timeout == 300
    assert settings.watching.client_timeout == 330
    assert settings.process.ultimate_exiting_timeout == 90
