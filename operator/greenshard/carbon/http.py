"""GET JSON over the standard library's urllib with a timeout; failures become typed
ProviderErrors that carry neither keys nor response bodies."""

from __future__ import annotations

import datetime as dt
import json
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


def _retry_after(value: str | None) -> float:
    if not value:
        return 60.0
    try:
        return max(1.0, float(value))
    except ValueError:
        pass
    try:
        import email.utils  # noqa: PLC0415 - only for the rare HTTP-date form

        when = email.utils.parsedate_to_datetime(value)
        return max(1.0, (when - dt.datetime.now(dt.UTC)).total_seconds())
    except (TypeError, ValueError):
        return 60.0


class Http:
    """GET JSON with a timeout; failures become typed ProviderErrors without keys or bodies."""

    def __init__(self, provider: str, timeout: float = 10.0) -> None:
        self.provider = provider
        self.timeout = timeout

    def get_json(self, url: str, headers: Mapping[str, str], what: str) -> Any:
        request = urllib.request.Request(url, headers={"Accept": "application/json", **headers})
        where = f"{self.provider} {what}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            code = exc.code
            retry = exc.headers.get("Retry-After") if exc.headers else None
            exc.close()
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
