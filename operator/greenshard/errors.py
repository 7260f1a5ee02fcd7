"""The domain's own errors. Fronts (CLI, operator) turn them into exit codes or conditions."""

from __future__ import annotations


class GreenShardError(Exception):
    """Base class of every error the domain raises on purpose."""


class InputError(GreenShardError):
    """Bad input: names where it came from, which field, and what to do.

    ``str(err)`` is one line: ``<source>: <field>: <message>``.
    """

    def __init__(self, field: str, message: str, source: str = "") -> None:
        self.field = field
        self.message = message
        self.source = source
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [p for p in (self.source, self.field) if p]
        return ": ".join([*parts, self.message])

    def with_source(self, source: str) -> InputError:
        """The same error, attributed to a file or object name."""
        return InputError(self.field, self.message, source)

    def __str__(self) -> str:
        return self._render()


class InfeasibleError(GreenShardError):
    """No placement satisfies memory and hop limits; the message says what binds."""


class NoCandidatePoolError(GreenShardError):
    """Every pool was filtered out (selector, readiness, or missing from the GridProfile)."""


class DeadlineExceededError(GreenShardError):
    """The solver time bound passed before any feasible placement was found."""
