"""A hostile or broken carbon provider: redirects never carry the key on, a key never travels
over plain http, a drip-fed or huge body is cut off, Retry-After is clamped."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from greenshard.carbon import http
from greenshard.carbon.errors import (
    MalformedResponseError,
    ProviderError,
    ProviderTimeoutError,
)

SECRET = "k-123-secret"


class Server:
    """127.0.0.1 server whose handler behaviour is set per test; records what it received."""

    def __init__(self) -> None:
        self.behaviour = "ok"
        self.seen: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer.seen.append({"path": self.path, **dict(self.headers)})
                if self.path.startswith("/elsewhere"):
                    self._send(200, b'{"stolen": true}')
                elif outer.behaviour == "redirect":
                    self.send_response(302)
                    self.send_header("Location", f"{outer.url}/elsewhere")
                    self.end_headers()
                elif outer.behaviour == "drip":
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    try:
                        for _ in range(1000):
                            self.wfile.write(b" ")
                            self.wfile.flush()
                            time.sleep(0.2)
                    except OSError:
                        pass
                elif outer.behaviour == "huge":
                    body = b"[" + b"1," * (3 * 2**20) + b"1]"
                    self._send(200, body)
                else:
                    self._send(200, b'{"ok": 1}')

            def _send(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.close()


def test_a_redirect_is_refused_and_the_key_goes_nowhere_else(server: Server) -> None:
    server.behaviour = "redirect"
    client = http.Http("electricityMaps", timeout=5)
    with pytest.raises(ProviderError, match="HTTP 302 redirect refused") as info:
        client.get_json(server.url + "/v3/latest", {"auth-token": SECRET}, "latest")
    assert SECRET not in str(info.value)
    assert [s["path"] for s in server.seen] == ["/v3/latest"]


def test_a_key_is_never_sent_over_plain_http_to_another_host() -> None:
    client = http.Http("electricityMaps", timeout=5)
    with pytest.raises(ProviderError, match="refusing to send the API key over http://"):
        client.get_json("http://203.0.113.7/v3/latest", {"auth-token": SECRET}, "latest")
    with pytest.raises(ProviderError, match="refusing"):
        client.get_json("http://example.com/x", {"Authorization": "Bearer " + SECRET}, "login")


def test_a_drip_fed_body_is_cut_at_the_overall_deadline(server: Server) -> None:
    server.behaviour = "drip"  # one byte every 0.2 s: each read is quick, the whole is not
    client = http.Http("ukCarbonIntensity", timeout=1.0)
    start = time.monotonic()
    with pytest.raises(ProviderTimeoutError, match="no answer within 1 s"):
        client.get_json(server.url + "/intensity", {}, "intensity")
    assert time.monotonic() - start < 3.0  # the landed code held a 3 s timeout for 32 s


def test_a_huge_body_is_not_read(server: Server) -> None:
    server.behaviour = "huge"
    client = http.Http("carbonAwareSdk", timeout=10)
    with pytest.raises(MalformedResponseError, match="over 4 MiB"):
        client.get_json(server.url + "/emissions", {}, "emissions")


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("inf", 3600.0), ("nan", 60.0), ("1e12", 3600.0), ("-5", 1.0), ("30", 30.0), (None, 60.0)],
)
def test_retry_after_is_clamped(header: str | None, seconds: float) -> None:
    assert http._retry_after(header) == seconds


def test_loopback_http_with_a_key_is_allowed_for_local_mirrors(server: Server) -> None:
    client = http.Http("electricityMaps", timeout=5)
    assert client.get_json(server.url + "/v3/latest", {"auth-token": SECRET}, "latest") == {"ok": 1}
