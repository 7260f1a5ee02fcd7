"""The GridProfile refresher: live intensities from each profile's provider into its status.

One asyncio task (like the controller loop; no kopf daemons or timers, which would add
finalizers). Every GridProfile whose ``spec.provider.type`` is not ``static`` is refreshed on its
``refreshInterval``: the API key is read from the one Secret that ``secretRef`` names, the
provider is asked (in a thread), :func:`carbon_status.resolve` decides what the status says (fresh
values, the last good ones until ``staleAfter``, else the static spec values), and the status is
patched through the status subresource only when it differs. Planning reads
``status.regions[*].intensity`` (see :func:`resources.grid_profile`). A static profile gets
``status.provider`` and the hour's ``summary`` only (for `kubectl get gp`), re-written each UTC
hour; planning reads its spec.

Keys live in memory only: never in a log line, an Event, the status or an annotation.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from greenshard.carbon import adapters, readings
from greenshard.carbon import errors as carbon_errors
from greenshard.carbon import spec as provider_spec
from greenshard.carbon import status as carbon_status
from greenshard.errors import GreenShardError
from greenshard.k8s import resources
from greenshard.k8s.conditions import Condition, merge_conditions, now_iso
from greenshard.k8s.errors import KubeError
from greenshard.k8s.loop import Loop, PatchGate, fingerprint, first

log = structlog.get_logger("greenshard.gridprofiles")


class Metrics(Protocol):
    def provider_failed(self, profile: str, provider: str, regions: int = 1) -> None: ...


class Api(Protocol):
    async def read_secret(self, namespace: str, name: str) -> dict[str, str]: ...

    async def patch_gp_status(self, name: str, status: dict[str, Any]) -> dict[str, Any]: ...


@dataclass
class _State:
    fingerprint: str = ""
    due: float = float("-inf")
    failures: int = 0
    provider: readings.Provider | None = None
    provider_key: str | None = None  # the key the provider was made with
    gate: PatchGate = field(default_factory=PatchGate)


class Refresher(Loop):
    def __init__(
        self,
        api: Api,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = carbon_status.utc_now,
        make_provider: Callable[..., readings.Provider] = adapters.make_provider,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(clock)
        self.api = api
        self.metrics = metrics
        self.now = now
        self.make_provider = make_provider
        self.profiles: Mapping[str, Any] = {}
        self.states: dict[str, _State] = {}

    def attach(self, profiles: Mapping[str, Any]) -> None:
        self.profiles = profiles
        self.wake.set()

    async def pass_all(self) -> None:
        names = sorted(self.profiles.keys())
        for name in list(self.states):
            if name not in self.profiles:
                del self.states[name]
        for name in names:
            body = first(self.profiles.get(name))
            if body is None:
                continue
            try:
                await self.refresh(name, body)
            except KubeError as err:
                log.warning("gridprofile status write failed", profile=name, error=str(err))
            except Exception:  # one bad profile must not stop the others
                log.exception("gridprofile refresh crashed", profile=name)

    async def refresh(self, name: str, body: Mapping[str, Any]) -> str:
        """One profile: '' when not due, else what happened (for tests)."""
        state = self.states.setdefault(name, _State())
        spec = body.get("spec") or {}
        status = body.get("status") or {}
        generation = int((body.get("metadata") or {}).get("generation", 1))
        fp = fingerprint(spec.get("provider"), spec.get("regions"))
        if fp != state.fingerprint:
            state.fingerprint, state.due, state.failures, state.provider = fp, -1e300, 0, None
        if self.clock() < state.due:
            return ""
        try:
            pspec = provider_spec.parse_provider_spec(spec)
            profile = resources.grid_profile({"metadata": body["metadata"], "spec": spec})
        except GreenShardError as err:
            state.due = float("inf")  # until the spec changes
            invalid: dict[str, Any] = {
                "conditions": self._conditions(
                    status,
                    generation,
                    (False, "InvalidProvider", str(err)),
                    (True, "InvalidProvider", str(err)),
                )
            }
            return await self._write(name, state, status, invalid, "invalid")
        if pspec.type == "static":
            # `kubectl get gp` shows the hour's values: re-written at each UTC hour.
            now = self.now()
            state.due = self.clock() + 3600 - (now.minute * 60 + now.second)
            static: dict[str, Any] = {
                "regions": None,
                "conditions": None,
                "provider": {"type": "static", "signal": pspec.signal},
                "summary": _summary(
                    {r: {"current": c.at(now.hour)} for r, c in profile.regions.items()}
                ),
                "observedGeneration": generation,
            }
            return await self._write(name, state, status, static, "static")

        key, key_error = await self._key(pspec)
        now = self.now()
        if key_error is not None:
            outcomes: dict[str, readings.Outcome] = dict.fromkeys(pspec.zones, key_error)
        else:
            if state.provider is None or state.provider_key != key:
                # a rotated Secret takes effect at the next refresh, not at the next restart
                state.provider = self.make_provider(pspec, key)
                state.provider_key = key
            outcomes = await asyncio.to_thread(state.provider.fetch, pspec.zones, now)
        resolution = carbon_status.resolve(
            profile,
            status.get("regions") or {},
            outcomes,
            now,
            pspec.stale_after_seconds,
            pspec.type,
        )
        failed = resolution.degraded[0]
        if self.metrics is not None:
            errors = sum(isinstance(o, carbon_errors.ProviderError) for o in outcomes.values())
            if errors:
                self.metrics.provider_failed(name, pspec.type, errors)
        state.failures = state.failures + 1 if failed else 0
        state.due = self.clock() + carbon_status.next_refresh_seconds(
            pspec.refresh_seconds, state.failures, resolution.retry_after
        )
        fresh = _redacted(resolution.fresh, key)
        degraded = _redacted(resolution.degraded, key)
        if failed:
            log.warning(
                "carbon provider degraded",
                profile=name,
                provider=pspec.type,
                reason=degraded[1],
                error=degraded[2],
                retry_in=round(state.due - self.clock(), 1),
            )
        wanted: dict[str, Any] = {
            "provider": {"type": pspec.type, "signal": pspec.signal},
            "regions": resolution.regions,
            "summary": _summary(resolution.regions),
            "conditions": self._conditions(status, generation, fresh, degraded),
            "observedGeneration": generation,
        }
        return await self._write(name, state, status, wanted, "degraded" if failed else "fresh")

    async def _key(
        self, pspec: provider_spec.ProviderSpec
    ) -> tuple[str | None, carbon_errors.ProviderError | None]:
        ref = pspec.secret_ref
        if ref is None:
            return None, None
        try:
            data = await self.api.read_secret(ref.namespace, ref.name)
        except KubeError as err:
            hint = (
                " (the operator may get only the Secret that the chart's "
                "carbonProvider.secretRef names)"
                if err.status == 403
                else ""
            )
            return None, carbon_errors.KeyUnavailableError(
                f"cannot read Secret {ref.namespace}/{ref.name}: HTTP {err.status} {err.reason}"
                + hint
            )
        value = data.get(ref.key)
        if not value:
            return None, carbon_errors.KeyUnavailableError(
                f"Secret {ref.namespace}/{ref.name} has no key {ref.key!r}"
            )
        return value, None

    @staticmethod
    def _conditions(
        status: Mapping[str, Any],
        generation: int,
        fresh: tuple[bool, str, str],
        degraded: tuple[bool, str, str],
    ) -> list[dict[str, Any]]:
        return merge_conditions(
            status.get("conditions") or [],
            [Condition("Fresh", *fresh), Condition("Degraded", *degraded)],
            generation,
            now_iso(),
        )

    async def _write(
        self,
        name: str,
        state: _State,
        status: Mapping[str, Any],
        wanted: Mapping[str, Any],
        result: str,
    ) -> str:
        async def send(patch: dict[str, Any]) -> None:
            await self.api.patch_gp_status(name, patch)

        await state.gate.write(status, wanted, self.clock, send)
        return result


def _redacted(cond: tuple[bool, str, str], key: str | None) -> tuple[bool, str, str]:
    return cond[0], cond[1], carbon_status.redact(cond[2], key)


def _summary(regions: Mapping[str, Mapping[str, Any]]) -> str:
    parts = []
    for region in sorted(regions):
        entry = regions[region]
        current = entry.get("current")
        text = f"{current:g}" if isinstance(current, int | float) else "?"
        parts.append(f"{region}={text}")
    return ",".join(parts)
