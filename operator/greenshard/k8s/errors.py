"""What the API server answered when a call failed, without the client: controllers catch
:class:`KubeError` and need not import the kubernetes package to do so."""

from __future__ import annotations


class KubeError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        super().__init__(f"{status} {reason}: {message}")
