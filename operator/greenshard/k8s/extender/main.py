"""`greenshard extender`: wires the watches, the state, the verbs and the server, and serves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from greenshard import carbon
from greenshard.k8s.extender.metrics import ExtenderMetrics
from greenshard.k8s.extender.scoring import Extender
from greenshard.k8s.extender.server import Server
from greenshard.k8s.extender.state import ClusterState
from greenshard.k8s.extender.watches import Watches

log = structlog.get_logger("greenshard.extender")


def run(
    kubeconfig: str | None,
    port: int,
    grid_profile: str,
    log_format: str,
    address: str = "0.0.0.0",
    hour: int | None = None,
    log_level: str = "INFO",
) -> int:
    from greenshard.k8s import kube  # noqa: PLC0415
    from greenshard.k8s.logs import configure_logging  # noqa: PLC0415

    configure_logging(log_format, log_level)
    metrics = ExtenderMetrics()
    clock: Callable[[], int] = carbon.current_utc_hour if hour is None else (lambda: hour)
    state = ClusterState(grid_profile, hour=clock, metrics=metrics)
    watches = Watches(state, kube.ListWatch(kube.load_client(kubeconfig), log))
    watches.start()
    server = Server(Extender(state, metrics), host=address, port=port)

    async def serve() -> None:
        await server.start_async()
        log.info("extender serving", address=address, port=server.port, grid_profile=grid_profile)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop_async()

    try:
        asyncio.run(serve())
    finally:
        watches.stop()
    return 0
