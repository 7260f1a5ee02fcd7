"""GET JSON over the standard library's urllib with a timeout; failures become typed
ProviderErrors that carry neither keys nor response bodies."""

from __future__ import annotations

import datetime as dt
import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from greenshard.carbon.errors import (
    AuthError,
    MalformedResponseError,
    NoDataError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    ServerError,
    UnreachableError,
)

MAX_BODY_BYTES = 4 * 2**20  # a day of forecasts for one zone is a few KiB
MAX_RETRY_AFTER = 3600.0  # a provider cannot stop refreshes for longer than an hour
CREDENTIAL_HEADERS = frozenset({"authorization", "auth-token", "x-api-key", "api-key"})
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def _retry_after(value: str | None) -> float:
    """Seconds to wait, from a Retry-After header, always within 1 s .. MAX_RETRY_AFTER."""
    seconds = 60.0
    if value:
        try:
            seconds = float(value)
        except ValueError:
            try:
                import email.utils  # noqa: PLC0415 - only for the rare HTTP-date form

                when = email.utils.parsedate_to_datetime(value)
                seconds = (when - dt.datetime.now(dt.UTC)).total_seconds()
            except (TypeError, ValueError):
                seconds = 60.0
    if not math.isfinite(seconds):  # "inf" or "nan" would stop refreshes for good
        seconds = MAX_RETRY_AFTER if seconds > 0 else 60.0
    return min(MAX_RETRY_AFTER, max(1.0, seconds))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow a redirect: the request carries an API key, which must not reach another
    host (urllib would resend every header to wherever Location points)."""

    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> None:
        raise urllib.error.HTTPError(req.full_url, code, f"redirect to {newurl}", headers, fp)


_OPENER = urllib.request.build_opener(_NoRedirect)


class Http:
    """GET JSON within an overall deadline (``timeout`` covers connect, headers and the whole
    body, so a drip-fed response cannot hold a refresh), at most MAX_BODY_BYTES, never
    following redirects, and never sending a key over plain http except to loopback. Failures
    become typed ProviderErrors without keys or bodies."""

    def __init__(self, provider: str, timeout: float = 10.0) -> None:
        self.provider = provider
        self.timeout = timeout

    def get_json(self, url: str, headers: Mapping[str, str], what: str) -> Any:
        where = f"{self.provider} {what}"
        parts = urllib.parse.urlsplit(url)
        if (
            parts.scheme != "https"
            and any(k.lower() in CREDENTIAL_HEADERS for k in headers)
            and (parts.hostname or "") not in LOOPBACK
        ):
            raise ProviderError(
                f"{where}: refusing to send the API key over {parts.scheme}://; set "
                "spec.provider.baseURL to an https:// URL"
            )
        request = urllib.request.Request(url, headers={"Accept": "application/json", **headers})
        deadline = time.monotonic() + self.timeout
        try:
            with _OPENER.open(request, timeout=self.timeout) as resp:
                raw = self._read(resp, deadline, where)
        except urllib.error.HTTPError as exc:
            code = exc.code
            retry = exc.headers.get("Retry-After") if exc.headers else None
            exc.close()
            if 300 <= code < 400:
                raise ProviderError(
                    f"{where}: HTTP {code} redirect refused (the API key is never sent on to "
                    "another URL); set spec.provider.baseURL to the final URL"
                ) from None
            if code in (401, 403):
                raise AuthError(
                    f"{where}: HTTP {code}: the API key was refused; check the Secret that "
                    "spec.provider.secretRef names"
                ) from None
            if code == 429:
                seconds = _retry_after(retry)
                raise RateLimitedError(
                    f"{where}: HTTP 429 rate limited; retrying after {seconds:.0f} s",
                    retry_after=seconds,
                ) from None
            if code == 404:
                raise NoDataError(f"{where}: HTTP 404: no data for this zone") from None
            if code >= 500:
                raise ServerError(f"{where}: HTTP {code}: the provider failed") from None
            raise ProviderError(f"{where}: HTTP {code}") from None
        except TimeoutError:
            raise ProviderTimeoutError(f"{where}: no answer within {self.timeout:g} s") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise ProviderTimeoutError(
                    f"{where}: no answer within {self.timeout:g} s"
                ) from None
            raise UnreachableError(f"{where}: cannot connect ({exc.reason})") from None
        except OSError as exc:
            raise UnreachableError(f"{where}: connection failed ({exc.strerror or exc})") from None
        try:
            return json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError):
            raise MalformedResponseError(f"{where}: the response is not valid JSON") from None

    def _read(self, resp: Any, deadline: float, where: str) -> bytes:
        """The body, chunk by chunk, within the deadline and the size cap."""
        chunks: list[bytes] = []
        size = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            _set_socket_timeout(resp, left)
            chunk = resp.read1(65536)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise MalformedResponseError(
                    f"{where}: the response is over {MAX_BODY_BYTES // 2**20} MiB; not read"
                )
            chunks.append(chunk)


def _set_socket_timeout(resp: Any, seconds: float) -> None:
    """Each wait for bytes is bounded by what is left of the deadline."""
    sock = getattr(getattr(getattr(resp, "fp", None), "raw", None), "_sock", None)
    if sock is not None:
        sock.settimeout(max(0.01, seconds))


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def join_url(base: str, path: str, query: Mapping[str, str] | None = None) -> str:
    url = base.rstrip("/") + path
    if query:
        url += "?" + urllib.parse.urlencode(query)
    return url


def dig(data: Any, *keys: str | int) -> Any:
    for key in keys:
        if isinstance(key, int):
            if not isinstance(data, list) or len(data) <= key:
                return None
            data = data[key]
        else:
            if not isinstance(data, Mapping):
                return None
            data = data.get(key)
    return data
