"""`greenshard run`: the operator process (kopf, structlog JSON logs, liveness, metrics)."""

from __future__ import annotations

import logging
import os
import sys

import kopf
import structlog

from greenshard.k8s.metrics import Metrics


def configure_logging(fmt: str, level: str = "INFO") -> None:
    """structlog everywhere; kopf's stdlib records are rendered by the same processors."""
    json_logs = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json_logs
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("kubernetes").setLevel("WARNING")
    logging.getLogger("urllib3").setLevel("WARNING")
    logging.getLogger("kopf.objects").setLevel("WARNING")  # "Handler succeeded" per event


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
