"""The extender's HTTP server (aiohttp): /filter, /prioritize, /metrics and /healthz, served in
the caller's event loop or in a thread of its own."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    generate_latest,
)

from greenshard.k8s.extender.scoring import Extender
from greenshard.k8s.extender.wire import BadRequestError

log = structlog.get_logger("greenshard.extender")


DEFAULT_PORT = 8888
# The scheduler calls a nodeCacheCapable extender with the pod and node names only: 5000 names
# are ~150 KiB. Anything far bigger is not a scheduler (an 11 MiB body took RSS to 1.36 GiB).
MAX_BODY_BYTES = 2 * 2**20


def build_app(extender: Extender) -> web.Application:
    metrics = extender.metrics
    state = extender.state

    def verb(name: str, fn: Callable[[bytes], bytes]) -> Callable[[web.Request], Any]:
        requests = {code: metrics.requests.labels(verb=name, code=code) for code in ("200", "400")}
        seconds = metrics.seconds.labels(verb=name)

        async def handle(request: web.Request) -> web.Response:
            start = time.perf_counter()
            body = await request.read()
            status = 200
            try:
                # off the event loop: /healthz and the other requests are served meanwhile
                data = await asyncio.to_thread(fn, body)
            except BadRequestError as exc:
                status, data = 400, json.dumps({"error": str(exc)}).encode()
                log.warning("bad request", verb=name, error=str(exc))
            except Exception as exc:  # never crash the server on one request
                status, data = 500, json.dumps({"error": f"internal error: {exc}"}).encode()
                log.exception("request failed", verb=name)
            seconds.observe(time.perf_counter() - start)
            counter = requests.get(str(status)) or metrics.requests.labels(name, str(status))
            counter.inc()
            return web.Response(body=data, status=status, content_type="application/json")

        return handle

    async def healthz(_: web.Request) -> web.Response:
        snap = state.snapshot()
        return web.json_response(
            {
                "status": "ok",
                "nodesSynced": state.nodes_synced.is_set(),
                "nodes": state.node_count,
                "gridProfile": state.grid_profile,
                "gridProfileLoaded": snap.profile is not None,
                "hour": snap.hour,
            }
        )

    async def readyz(_: web.Request) -> web.Response:
        ready = state.nodes_synced.is_set() and state.profile_synced.is_set()
        return web.Response(text="ok" if ready else "not synced", status=200 if ready else 503)

    async def metrics_page(_: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(metrics.registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app = web.Application(client_max_size=MAX_BODY_BYTES)  # larger: 413, never read
    app.router.add_post("/filter", verb("filter", extender.filter_json))
    app.router.add_post("/prioritize", verb("prioritize", extender.prioritize_json))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)
    return app


class Server:
    """The aiohttp app on its own event loop in a thread (tests, benchmarks) or the main one."""

    def __init__(self, extender: Extender, host: str = "127.0.0.1", port: int = 0) -> None:
        self.extender = extender
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    async def start_async(self) -> int:
        self._runner = web.AppRunner(build_app(self.extender), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        server: Any = site._server  # the bound port when port=0
        if server is not None and getattr(server, "sockets", None):
            self.port = int(server.sockets[0].getsockname()[1])
        return self.port

    async def stop_async(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def start_in_thread(self) -> int:
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def main() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.start_async())
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=main, name="extender-http", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the extender server did not start")
        return self.port

    def stop_thread(self) -> None:
        loop = self._loop
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop_async(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()
