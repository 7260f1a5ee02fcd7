"""`greenshard run`: the operator process (kopf, structlog JSON logs, liveness, metrics)."""

from __future__ import annotations

import os

import kopf
import structlog

from greenshard.k8s.kopf_fixes import share_toggle_waits
from greenshard.k8s.logs import configure_logging
from greenshard.k8s.metrics import Metrics


def run(
    kubeconfig: str | None,
    liveness_port: int,
    metrics_port: int,
    log_format: str,
    namespace: list[str] | None = None,
    *,
    log_level: str = "INFO",
) -> int:
    if kubeconfig and os.environ.get("KUBECONFIG") != os.path.abspath(kubeconfig):
        raise RuntimeError("set KUBECONFIG before importing greenshard.k8s (cli.cmd_run does)")
    configure_logging(log_format, log_level)
    from greenshard.k8s import handlers  # noqa: F401, PLC0415 - registers the handlers

    if namespace:
        structlog.get_logger("greenshard.runner").warning(
            "watching only some namespaces: GPUs that pods elsewhere hold are not counted",
            namespaces=namespace,
            hint="give these namespaces GPU nodes of their own (spec.placement.nodeSelector), "
            "or watch all namespaces",
        )
    share_toggle_waits()  # kopf's start-up at thousands of objects: see kopf_fixes
    memo = kopf.Memo()
    metrics = Metrics()
    if metrics_port:
        metrics.serve(metrics_port)
    memo["metrics"] = metrics
    kopf.run(
        standalone=True,
        clusterwide=not namespace,
        namespaces=namespace or (),
        memo=memo,
        liveness_endpoint=f"http://0.0.0.0:{liveness_port}/healthz" if liveness_port else None,
    )
    return 0
