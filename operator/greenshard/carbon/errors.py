"""What can go wrong when a carbon provider is asked: one ProviderError family (no client code)."""

from __future__ import annotations


class ProviderError(Exception):
    """A provider failed for a region. ``reason`` is a CamelCase condition reason; the message
    names the provider and what to check, never a key."""

    reason = "ProviderError"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class AuthError(ProviderError):
    reason = "Unauthorized"


class RateLimitedError(ProviderError):
    reason = "RateLimited"


class ServerError(ProviderError):
    reason = "ServerError"


class MalformedResponseError(ProviderError):
    reason = "MalformedResponse"


class ProviderTimeoutError(ProviderError):
    reason = "Timeout"


class UnreachableError(ProviderError):
    reason = "Unreachable"


class NoDataError(ProviderError):
    reason = "NoData"


class KeyUnavailableError(ProviderError):
    reason = "KeyUnavailable"
