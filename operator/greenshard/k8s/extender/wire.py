"""The extender's wire format: ExtenderArgs parsed as kube-scheduler's Go decoder reads it
(field names matched case-insensitively), with a 400-worthy error for anything else."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CARBON_AWARE_LABEL = "greenshard.io/carbon-aware"
MAX_INTENSITY_ANNOTATION = "greenshard.io/max-intensity"


class BadRequestError(Exception):
    """A request that is not a valid ExtenderArgs: answered 400 with a JSON error."""


@dataclass(frozen=True)
class Args:
    """An ExtenderArgs: the pod's identity, opt-in and ceiling, and the candidate nodes."""

    pod: str  # namespace/name
    opted_in: bool
    ceiling: str | None  # the raw annotation
    names: list[str]
    nodes: list[Mapping[str, Any]] | None  # full Node objects when not nodeCacheCapable


def _field(obj: Mapping[str, Any], name: str) -> Any:
    """obj[name], matched case-insensitively as Go's encoding/json does."""
    if name in obj:
        return obj[name]
    lowered = name.lower()
    for key, value in obj.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return None


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadRequestError(f"{what} must be an object")
    return value


def parse_args(body: bytes) -> Args:
    """Parse an ExtenderArgs body; :class:`BadRequestError` says what is wrong."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"body is not JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise BadRequestError("body must be an ExtenderArgs object")
    pod = _field(data, "Pod")
    if not isinstance(pod, Mapping):
        raise BadRequestError("Pod is required (an object)")
    meta = _mapping(pod.get("metadata"), "Pod.metadata")
    labels = _mapping(meta.get("labels"), "Pod.metadata.labels")
    annotations = _mapping(meta.get("annotations"), "Pod.metadata.annotations")
    ceiling = annotations.get(MAX_INTENSITY_ANNOTATION)
    names_raw = _field(data, "NodeNames")
    nodes: list[Mapping[str, Any]] | None = None
    if names_raw is not None:
        if not isinstance(names_raw, list) or set(map(type, names_raw)) - {str}:
            raise BadRequestError("NodeNames must be a list of strings")
        names: list[str] = names_raw
    else:
        node_list = _field(data, "Nodes")
        if node_list is None:
            raise BadRequestError("NodeNames or Nodes is required")
        items = _mapping(node_list, "Nodes").get("items") or []
        if not isinstance(items, list) or not all(isinstance(n, Mapping) for n in items):
            raise BadRequestError("Nodes.items must be a list of Node objects")
        names = []
        for i, item in enumerate(items):
            name = _mapping(item.get("metadata"), f"Nodes.items[{i}].metadata").get("name")
            if not isinstance(name, str):
                raise BadRequestError(f"Nodes.items[{i}].metadata.name must be a string")
            names.append(name)
        nodes = items
    return Args(
        pod=f"{meta.get('namespace', '')}/{meta.get('name', '')}",
        opted_in=labels.get(CARBON_AWARE_LABEL) == "true",
        ceiling=None if ceiling is None else str(ceiling),
        names=names,
        nodes=nodes,
    )
