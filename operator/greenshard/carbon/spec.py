"""GridProfile.spec.provider, validated into a ProviderSpec (InputError names the field)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from greenshard.carbon.readings import SIGNALS
from greenshard.errors import InputError
from greenshard.parsing import duration_seconds

PROVIDER_TYPES = ("static", "electricityMaps", "wattTime", "ukCarbonIntensity", "carbonAwareSdk")
NEEDS_KEY = ("electricityMaps", "wattTime")
DEFAULT_REFRESH = "15m"
DEFAULT_STALE_AFTER = "2h"


@dataclass(frozen=True)
class SecretRef:
    name: str
    namespace: str
    key: str


@dataclass(frozen=True)
class ProviderSpec:
    """GridProfile.spec.provider, validated."""

    type: str = "static"
    base_url: str | None = None
    zones: Mapping[str, str] = field(default_factory=dict)
    secret_ref: SecretRef | None = None
    refresh_seconds: float = 900.0
    stale_after_seconds: float = 7200.0
    signal: str = "average"
    timeout_seconds: float = 10.0


def parse_provider_spec(spec: Mapping[str, Any]) -> ProviderSpec:
    """The provider part of a GridProfile spec (InputError names the field)."""
    raw = spec.get("provider")
    if raw is None:
        return ProviderSpec()
    if not isinstance(raw, Mapping):
        raise InputError("spec.provider", "must be a mapping")
    kind = str(raw.get("type") or "static")
    if kind not in PROVIDER_TYPES:
        raise InputError("spec.provider.type", f"must be one of {', '.join(PROVIDER_TYPES)}")
    zones = raw.get("zones") or {}
    if not isinstance(zones, Mapping) or not all(isinstance(v, str | int) for v in zones.values()):
        raise InputError("spec.provider.zones", "must map cluster regions to provider zones")
    regions = spec.get("regions") or {}
    for region in zones:
        if isinstance(regions, Mapping) and region not in regions:
            raise InputError(
                f"spec.provider.zones.{region}", "names a region that spec.regions does not have"
            )
    ref = raw.get("secretRef")
    secret: SecretRef | None = None
    if ref is not None:
        if not isinstance(ref, Mapping) or not ref.get("name") or not ref.get("namespace"):
            raise InputError("spec.provider.secretRef", "needs name and namespace")
        secret = SecretRef(str(ref["name"]), str(ref["namespace"]), str(ref.get("key") or "apiKey"))
    if kind in NEEDS_KEY and secret is None:
        raise InputError("spec.provider.secretRef", f"is required for type {kind}")
    if kind != "static" and not zones:
        raise InputError("spec.provider.zones", f"must map at least one region for type {kind}")
    signal = str(raw.get("signal") or ("marginal" if kind == "wattTime" else "average"))
    if signal not in SIGNALS:
        raise InputError("spec.provider.signal", "must be average or marginal")
    base = raw.get("baseURL")
    if base is not None and not (
        isinstance(base, str) and base.startswith(("http://", "https://"))
    ):
        raise InputError("spec.provider.baseURL", "must be an http(s) URL")
    return ProviderSpec(
        type=kind,
        base_url=base,
        zones={str(k): str(v) for k, v in zones.items()},
        secret_ref=secret,
        refresh_seconds=duration_seconds(
            str(raw.get("refreshInterval") or DEFAULT_REFRESH), "spec.provider.refreshInterval"
        ),
        stale_after_seconds=duration_seconds(
            str(raw.get("staleAfter") or DEFAULT_STALE_AFTER), "spec.provider.staleAfter"
        ),
        signal=signal,
    )
