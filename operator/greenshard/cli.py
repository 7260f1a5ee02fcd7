"""The `greenshard` command: plan | bench (and, from the operator package, run | extender)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import yaml

from greenshard import bench, carbon, model, planner
from greenshard.errors import GreenShardError, InputError
from greenshard.solvers import ALGORITHMS, DEFAULT_MAX_QUBITS, SolverConfig

EXIT_USAGE = 2


class CliError(Exception):
    """One line for stderr; the command exits with status 2."""


def load_yaml(path: str, parse: Callable[[object], Any]) -> Any:
    """Read one YAML document and parse it, attributing any error to the file."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise CliError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "malformed"
        raise CliError(f"{path}: invalid YAML{where}: {problem}; fix the syntax") from exc
    if len(docs) != 1:
        raise CliError(f"{path}: expected exactly one YAML document, found {len(docs)}")
    try:
        return parse(docs[0])
    except InputError as exc:
        raise CliError(str(exc.with_source(path))) from exc


def _hour(value: str) -> int:
    try:
        hour = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--hour must be an integer 0..23 (got {value!r})"
        ) from None
    if not 0 <= hour <= 23:
        raise argparse.ArgumentTypeError(f"--hour must be 0..23 (got {hour})")
    return hour


def _positive(name: str, maximum: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer (got {value!r})") from None
        if not 1 <= number <= maximum:
            raise argparse.ArgumentTypeError(f"{name} must be 1..{maximum} (got {number})")
        return number

    return parse


def _seed(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seed must be an integer (got {value!r})") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"--seed must be >= 0 (got {number})")
    return number


# ------------------------------------------------------------------------------------ plan


def cmd_plan(args: argparse.Namespace) -> int:
    deployment = load_yaml(args.file, model.parse_deployment)
    nodes = load_yaml(args.nodes, model.parse_nodes)
    profile = load_yaml(args.profile, model.parse_grid_profile)
    hour = args.hour if args.hour is not None else carbon.current_utc_hour()
    config = SolverConfig(
        algorithm=args.solver,
        depth=args.depth,
        shots=args.shots,
        seed=args.seed,
        max_qubits=args.max_qubits,
    )
    try:
        problem = model.build_problem(deployment, nodes, profile, hour)
    except GreenShardError as exc:
        raise CliError(
            f"{args.nodes}: {exc}; check spec.placement.nodeSelector in {args.file}, "
            f"node readiness, and spec.regions/spec.accelerators in {args.profile}"
        ) from exc
    try:
        result = planner.plan(problem, config)
    except GreenShardError as exc:
        raise CliError(f"{args.file}: {exc}") from exc
    data = result.to_dict()
    if args.output == "json":
        print(json.dumps(data, indent=2))
    elif args.output == "yaml":
        print(yaml.safe_dump(data, sort_keys=False), end="")
    else:
        print(render_plan_table(data))
    return 0


def render_plan_table(data: dict[str, Any]) -> str:
    rows = [("SHARD", "LAYERS", "POOL", "REGION", "ACCELERATOR", "GCO2E/H")]
    for row in data["placement"]:
        rows.append(
            (
                str(row["shard"]),
                f"{row['layers'][0]}-{row['layers'][1]}",
                row["pool"],
                row["region"],
                row["accelerator"],
                f"{row['gramsPerHour']:.3f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    solver = data["solver"]
    gap = solver["gap"]
    gap_text = "unknown" if gap is None else ("0 (exact optimum)" if gap == 0 else f"{gap:.3e}")
    lines += [
        "",
        f"emissions:  {data['emissionsGramsPerHour']:.3f} gCO2e/h at UTC hour {data['hour']}"
        " (compute + links)",
        f"baseline:   {data['baselineGramsPerHour']:.3f} gCO2e/h (carbon-unaware: "
        f"{_runs(data['baselinePlacement'])})",
        f"savings:    {data['savingsPercent']:.2f} %",
        f"solver:     {solver['algorithm']} -> {solver['method']}, {solver['qubits']} qubits, "
        f"depth {solver['depth']}, {solver['evaluations']} evaluations, "
        f"{solver['wallSeconds']:.3f} s",
        f"optimum:    {solver['optimumGramsPerHour']:.3f} gCO2e/h, gap {gap_text}",
    ]
    if "reason" in solver:
        lines.append(f"why:        {solver['reason']}")
    if "samplingFoundOptimum" in solver:
        lines.append(
            f"qaoa:       sampling found the optimum: "
            f"{'yes' if solver['samplingFoundOptimum'] else 'no'}; local search changed "
            f"the answer: {'yes' if solver['polishChangedAnswer'] else 'no'}"
        )
    for skipped in data["skippedPools"]:
        lines.append(f"skipped:    {skipped['pool']}: {skipped['reason']}")
    return "\n".join(lines)


def _runs(pools: list[str]) -> str:
    """'a x3, b x2' for consecutive shards on the same pool."""
    runs: list[list[Any]] = []
    for pool in pools:
        if runs and runs[-1][0] == pool:
            runs[-1][1] += 1
        else:
            runs.append([pool, 1])
    return ", ".join(f"{pool} x{count}" for pool, count in runs)


def cmd_run(args: argparse.Namespace) -> int:
    if args.kubeconfig:
        # Before kopf imports the API client: it reads KUBECONFIG once, at import.
        os.environ["KUBECONFIG"] = os.path.abspath(args.kubeconfig)
    from greenshard.k8s import runner  # noqa: PLC0415 - kopf and the client only for `run`

    return runner.run(
        args.kubeconfig, args.liveness_port, args.metrics_port, args.log_format, args.namespace
    )


# ----------------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="greenshard", description="Carbon-aware placement of LLM layer shards on Kubernetes."
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("plan", help="plan a placement from YAML files (no cluster needed)")
    p.add_argument("-f", "--file", required=True, help="InferenceDeployment YAML")
    p.add_argument("--nodes", required=True, help="NodeList YAML (kubectl get nodes -o yaml)")
    p.add_argument("--profile", required=True, help="GridProfile YAML")
    p.add_argument("--hour", type=_hour, help="UTC hour 0..23 (default: now)")
    p.add_argument("--solver", choices=ALGORITHMS, default="auto")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument(
        "--depth",
        type=_positive("--depth", 1000),
        default=SolverConfig.depth,
        help=f"QAOA depth p (default {SolverConfig.depth}: a linear ramp)",
    )
    p.add_argument("--shots", type=_positive("--shots", 10_000_000), default=SolverConfig.shots)
    p.add_argument(
        "--max-qubits",
        type=_positive("--max-qubits", 30),
        default=DEFAULT_MAX_QUBITS,
        help="auto: QAOA up to this many qubits",
    )
    p.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    p.set_defaults(func=cmd_plan)

    bench.add_parser(sub)

    r = sub.add_parser("run", help="run the operator (kopf) against the current kubeconfig")
    r.add_argument("--kubeconfig", help="kubeconfig path (default: KUBECONFIG or in-cluster)")
    r.add_argument("--liveness-port", type=int, default=8080, help="/healthz port (0: off)")
    r.add_argument("--metrics-port", type=int, default=9090, help="/metrics port (0: off)")
    r.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        default="auto",
        help="auto: JSON unless stderr is a terminal",
    )
    r.add_argument(
        "--namespace", action="append", help="watch only this namespace (repeatable; default: all)"
    )
    r.set_defaults(func=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except CliError as exc:
        print(f"greenshard: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
