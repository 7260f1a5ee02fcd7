"""A fault-injecting HTTPS proxy in front of kube-apiserver, for chaos tests.

Clients (the operator) talk TLS to the proxy with the cluster's own serving certificate (its SANs
cover 127.0.0.1), so the cluster CA in their kubeconfig still verifies it; the proxy talks to the
real API server with a client certificate of its own. Every request is counted by verb and
resource (as the API server's audit log names them: ``list``/``watch``/``get``/``create``/
``update``/``patch``/``delete``), and armed faults answer matching requests instead of the server:

- an HTTP status (409, 429 with ``Retry-After``, 500, ...) as a ``metav1.Status`` body;
- ``expire``: a watch answered 200 with one ``ERROR`` event of code 410 (resource version too
  old), as the API server does when a watch's resourceVersion is compacted;
- ``timeout``: the request is held without an answer for ``hold`` seconds, then dropped.

It runs its own event loop in a thread, so a synchronous test drives it directly::

    with FaultProxy.for_cluster(state_dir) as proxy:
        proxy.write_kubeconfig(path)
        proxy.inject(409, verb="update", resource="deployments")
        ...
        proxy.counts[("patch", "inferencedeployments/status")]
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}

_CLUSTER_SCOPE_PREFIXES = ("namespaces",)


def classify(method: str, path: str, query: dict[str, str]) -> tuple[str, str]:
    """(verb, resource) of a Kubernetes API request, e.g. ('watch', 'nodes'),
    ('patch', 'inferencedeployments/status'); ('nonresource', path) for /healthz etc."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        rest = parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        rest = parts[3:]
    else:
        return "nonresource", path
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) > 2:
        rest = rest[2:]  # namespaced: drop namespaces/<ns>
    if not rest:
        return "discovery", path
    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else ""
    sub = rest[2] if len(rest) >= 3 else ""
    if sub:
        resource = f"{resource}/{sub}"
    method = method.upper()
    watch = query.get("watch", "") in ("1", "true", "True")
    if method == "GET":
        verb = "watch" if watch else ("get" if name else "list")
    else:
        verb = {
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
        }.get(method, method.lower())
    return verb, resource


@dataclass
class Fault:
    """One armed fault: answers the next ``count`` requests that match."""

    status: int = 0  # HTTP status to answer, 0 for 'expire'/'timeout'
    kind: str = "status"  # status | expire | timeout
    verb: str | None = None
    resource: str | None = None  # exact, or a regex if it starts with '^'
    count: int = 1
    retry_after: int | None = None
    hold: float = 60.0
    fired: list[tuple[float, str, str]] = field(default_factory=list)

    def matches(self, verb: str, resource: str) -> bool:
        if self.count <= 0:
            return False
        if self.verb is not None and self.verb != verb:
            return False
        if self.resource is not None:
            if self.resource.startswith("^"):
                return re.match(self.resource, resource) is not None
            return self.resource == resource
        return True


def _status_body(code: int, reason: str, message: str, retry_after: int | None) -> bytes:
    details: dict[str, Any] = {}
    if retry_after is not None:
        details["retryAfterSeconds"] = retry_after
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return json.dumps(body).encode()


REASONS = {
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class FaultProxy:
    def __init__(
        self,
        upstream: str,
        *,
        ca_file: str,
        client_cert: str,
        client_key: str,
        serve_cert: str,
        serve_key: str,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.ca_file = ca_file
        self.client_cert = client_cert
        self.client_key = client_key
        self.serve_cert = serve_cert
        self.serve_key = serve_key
        self.port = 0
        self.counts: Counter[tuple[str, str]] = Counter()
        self.log: list[tuple[float, str, str, int]] = []  # (time, verb, resource, status)
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._watches: set[tuple[str, aiohttp.ClientResponse]] = set()

    @classmethod
    def for_cluster(cls, state_dir: str | Path) -> FaultProxy:
        """A proxy in front of the hack/cluster.sh cluster whose state is STATE_DIR."""
        state = Path(state_dir)
        ports = dict(
            line.split("=", 1) for line in (state / "ports.env").read_text().split() if "=" in line
        )
        pki = state / "pki"
        return cls(
            f"https://127.0.0.1:{ports['API_PORT']}",
            ca_file=str(pki / "ca.crt"),
            client_cert=str(pki / "admin.crt"),
            client_key=str(pki / "admin.key"),
            serve_cert=str(pki / "apiserver.crt"),
            serve_key=str(pki / "apiserver.key"),
        )

    # ------------------------------------------------------------------ life cycle

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="faultproxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("fault proxy did not start")
        if self._error is not None:
            raise RuntimeError(f"fault proxy failed: {self._error}")

    def stop(self) -> None:
        loop = self._loop
        if loop is None or self._thread is None:
            return
        self.cut_watches()  # streaming handlers end now instead of holding the cleanup
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        with contextlib.suppress(Exception):
            fut.result(30)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(30)
        self._loop = None

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        # Finish every handler before the loop closes: one left pending is finalised later by
        # the garbage collector, on a closed loop ("Event loop is closed", and under Python
        # 3.11.7 a SystemError in whatever the interpreter was compiling at that moment).
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    async def _startup(self) -> None:
        upstream_ssl = ssl.create_default_context(cafile=self.ca_file)
        upstream_ssl.load_cert_chain(self.client_cert, self.client_key)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=upstream_ssl, limit=200),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, connect=5, sock_connect=5),
        )
        serve_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        serve_ssl.load_cert_chain(self.serve_cert, self.serve_key)
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # cleanup() waits this long for open requests (watches) before cancelling them
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=2.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=serve_ssl)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    # ------------------------------------------------------------------ faults and counts

    def inject(
        self,
        status: int = 0,
        *,
        kind: str = "status",
        verb: str | None = None,
        resource: str | None = None,
        count: int = 1,
        retry_after: int | None = None,
        hold: float = 60.0,
    ) -> Fault:
        """Arm a fault for the next COUNT requests matching VERB and RESOURCE."""
        fault = Fault(status, kind, verb, resource, count, retry_after, hold)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def _take(self, verb: str, resource: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(verb, resource):
                    fault.count -= 1
                    fault.fired.append((time.monotonic(), verb, resource))
                    return fault
        return None

    def snapshot(self) -> Counter[tuple[str, str]]:
        with self._lock:
            return Counter(self.counts)

    def calls_since(self, since: float, verbs: tuple[str, ...] | None = None) -> int:
        with self._lock:
            return sum(1 for t, v, _, _ in self.log if t >= since and (verbs is None or v in verbs))

    def writes_since(self, since: float) -> int:
        return self.calls_since(since, ("create", "update", "patch", "delete", "deletecollection"))

    def cut_watches(self, resource: str | None = None) -> int:
        """End the open watch streams (of RESOURCE), as a server restart or a load balancer
        would: clients must watch again, and meet any fault armed for ``watch``."""
        loop = self._loop
        if loop is None:
            return 0
        with self._lock:
            hits = [r for name, r in self._watches if resource is None or name == resource]
        for upstream in hits:
            loop.call_soon_threadsafe(upstream.close)
        return len(hits)

    def write_kubeconfig(self, path: str | Path) -> Path:
        """A kubeconfig for this proxy: the cluster CA, no client credentials needed."""
        ca = Path(self.ca_file).read_text()

        text = (
            "apiVersion: v1\nkind: Config\nclusters:\n- name: faultproxy\n  cluster:\n"
            f"    server: {self.url}\n"
            f"    certificate-authority-data: {base64.b64encode(ca.encode()).decode()}\n"
            "users:\n- name: proxied\n  user:\n    token: faultproxy\n"
            "contexts:\n- name: faultproxy\n  context: {cluster: faultproxy, user: proxied}\n"
            "current-context: faultproxy\n"
        )
        out = Path(path)
        out.write_text(text)
        out.chmod(0o600)
        return out

    # ------------------------------------------------------------------ proxying

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        verb, resource = classify(request.method, request.path, query)
        now = time.monotonic()
        fault = self._take(verb, resource)
        if fault is not None:
            response = await self._fault(request, fault, verb, resource)
            with self._lock:
                self.counts[(verb, resource)] += 1
                self.log.append((now, verb, resource, response.status))
            return response
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers.pop("Authorization", None)  # the proxy's client certificate speaks upstream
        assert self._session is not None
        status = 0
        try:
            upstream = await self._session.request(
                request.method,
                self.upstream + request.path_qs,
                data=body or None,
                headers=headers,
                allow_redirects=False,
                # the client's headers as sent, none of aiohttp's own: no Content-Type (the
                # kubernetes client sends none, which the API server reads as JSON) and no
                # Accept-Encoding (bodies pass through undecoded, Content-Encoding and all)
                skip_auto_headers=("Content-Type", "Accept-Encoding"),
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            status = 503
            response = web.Response(
                status=503,
                body=_status_body(503, "ServiceUnavailable", f"proxy: upstream: {exc}", None),
                content_type="application/json",
            )
        else:
            status = upstream.status
            response = await self._relay(request, upstream, resource, streaming=verb == "watch")
        with self._lock:
            self.counts[(verb, resource)] += 1
            self.log.append((now, verb, resource, status))
        return response

    async def _relay(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        resource: str,
        *,
        streaming: bool,
    ) -> web.StreamResponse:
        headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            if not streaming:
                data = await upstream.read()
                return web.Response(status=upstream.status, body=data, headers=headers)
            response = web.StreamResponse(status=upstream.status, headers=headers)
            await response.prepare(request)
            entry = (resource, upstream)
            with self._lock:
                self._watches.add(entry)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass  # the server went away mid-stream (or was cut): end the watch as it would
            finally:
                with self._lock:
                    self._watches.discard(entry)
            with contextlib.suppress(Exception):
                await response.write_eof()
            return response
        finally:
            upstream.release()

    async def _fault(
        self, request: web.Request, fault: Fault, verb: str, resource: str
    ) -> web.StreamResponse:
        await request.read()
        if fault.kind == "timeout":
            await asyncio.sleep(fault.hold)
            transport = request.transport
            if transport is not None:
                transport.close()
            return web.Response(status=504)
        if fault.kind == "expire":
            response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            await response.prepare(request)
            event = {
                "type": "ERROR",
                "object": json.loads(
                    _status_body(410, "Expired", "too old resource version (injected)", None)
                ),
            }
            await response.write(json.dumps(event).encode() + b"\n")
            await response.write_eof()
            return response
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        reason = REASONS.get(fault.status, "InternalError")
        return web.Response(
            status=fault.status,
            body=_status_body(
                fault.status,
                reason,
                f"injected {fault.status} for {verb} {resource}",
                fault.retry_after,
            ),
            headers=headers,
            content_type="application/json",
        )


@contextlib.contextmanager
def proxied(state_dir: str | Path, kubeconfig: str | Path) -> Iterator[FaultProxy]:
    """A started proxy in front of the cluster in STATE_DIR, with its kubeconfig at KUBECONFIG."""
    with FaultProxy.for_cluster(state_dir) as proxy:
        proxy.write_kubeconfig(kubeconfig)
        yield proxy
