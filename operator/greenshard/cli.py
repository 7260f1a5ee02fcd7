"""The `greenshard` command: plan | bench | experiment | intensity | run | extender.

Exit status (README "Command line"): 0 success; 1 a runtime failure (a provider that does not
answer, the cluster unreachable, a file that cannot be written); 2 a usage or input error (a bad
flag, an unreadable or invalid file: fix the command or the input); 130 interrupted. Errors are
one line on stderr, never a traceback. ``-f -`` (or any input path ``-``) reads stdin.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import yaml

from greenshard import bench, carbon, model, parsing, planner, pods
from greenshard.errors import GreenShardError, InputError
from greenshard.solvers.onehot import MIXERS
from greenshard.solvers.registry import (
    ALGORITHMS,
    ANSATZE,
    DEFAULT_MAX_QUBITS,
    MAX_QUBITS,
    SolverConfig,
    config_from_spec,
)

EXIT_FAILURE = 1
EXIT_USAGE = 2
STDIN = "-"


class CliError(Exception):
    """A usage or input error: one line for stderr; the command exits with status 2."""


class CliRuntimeError(Exception):
    """The inputs were fine but the work failed: one line for stderr; exit status 1."""


def version() -> str:
    from importlib.metadata import PackageNotFoundError  # noqa: PLC0415
    from importlib.metadata import version as package_version  # noqa: PLC0415

    try:
        return package_version("greenshard")
    except PackageNotFoundError:  # pragma: no cover - a source tree without an install
        return "unknown"


MAX_INPUT_BYTES = 32 * 2**20  # a 5000-node `kubectl get nodes -o yaml` is about 25 MiB
MAX_YAML_DEPTH = 64  # Kubernetes objects nest about 12 deep

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 10x faster when built


_stdin: list[bytes] = []  # stdin's bytes once read (a command may parse its input twice)


def read_text(path: str) -> str:
    """A file's text (PATH "-": stdin): at most MAX_INPUT_BYTES of UTF-8, or a one-line
    CliError."""
    try:
        if path == STDIN:
            if not _stdin:
                _stdin.append(sys.stdin.buffer.read(MAX_INPUT_BYTES + 1))
            data = _stdin[0]
        else:
            with open(path, "rb") as handle:
                data = handle.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        raise CliError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if len(data) > MAX_INPUT_BYTES:
        raise CliError(
            f"{path}: larger than the {MAX_INPUT_BYTES // 2**20} MiB input limit; "
            "pass only the objects needed (one deployment, the candidate nodes)"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save the file as UTF-8"
        ) from exc


def _check_depth(text: str) -> None:
    """Reject deep nesting from the event stream (no recursion) before anything builds it."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                mark = event.start_mark
                where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
                raise CliError(
                    f"nested deeper than {MAX_YAML_DEPTH} levels{where}; "
                    "a Kubernetes object is never that deep"
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def load_yaml(path: str, parse: Callable[[object], Any]) -> Any:
    """Read one YAML document and parse it, attributing any error to the file."""
    text = read_text(path)
    try:
        _check_depth(text)
        docs = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except CliError as exc:
        raise CliError(f"{path}: {exc}") from exc
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
    deployment, spec_solver = load_yaml(args.file, _deployment_and_solver)
    nodes = load_yaml(args.nodes, parsing.parse_nodes)
    profile = load_yaml(args.profile, parsing.parse_grid_profile)
    held = None
    if args.pods:
        others = load_yaml(args.pods, pods.parse_pods)
        held = pods.usage_by_node(others, exclude=(deployment.namespace, deployment.name))
    hour = args.hour if args.hour is not None else carbon.current_utc_hour()
    try:  # the file's spec.solver, the CRD's defaults for the rest, then the flags given
        config = config_from_spec(
            spec_solver,
            algorithm=args.solver,
            ansatz=args.ansatz,
            mixer=args.mixer,
            depth=args.depth,
            shots=args.shots,
            seed=args.seed,
            max_qubits=args.max_qubits,
        )
    except InputError as exc:
        raise CliError(str(exc.with_source(args.file))) from exc
    try:
        problem = model.build_problem(deployment, nodes, profile, hour, held=held)
    except GreenShardError as exc:
        raise CliError(
            f"{args.nodes}: {exc}; check spec.placement.nodeSelector in {args.file}, "
            f"node readiness, and spec.regions/spec.accelerators in {args.profile}"
        ) from exc
    try:
        result = planner.decide(problem, config).plan
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


def _deployment_and_solver(doc: object) -> tuple[Any, Any]:
    """The cost-model view of an InferenceDeployment and its raw spec.solver (or None)."""
    deployment = parsing.parse_deployment(doc)
    spec = doc.get("spec") if isinstance(doc, dict) else None
    solver = spec.get("solver") if isinstance(spec, dict) else None
    if solver is not None and not isinstance(solver, dict):
        raise InputError("spec.solver", "must be a mapping (algorithm, ansatz, depth, ...)")
    return deployment, solver


def render_plan_table(data: dict[str, Any]) -> str:
    rows = [("SHARD", "LAYERS", "POOL", "GPUS/REPLICA", "NODES", "GCO2E/H")]
    nodes_of: dict[int, list[str]] = {}
    for pool_packing in data["packing"].values():
        for node, shards in pool_packing.items():
            for shard in shards:
                nodes_of.setdefault(shard, []).append(node)
    for row in data["placement"]:
        rows.append(
            (
                str(row["shard"]),
                f"{row['layers'][0]}-{row['layers'][1]}",
                row["pool"],
                str(row["gpusPerReplica"]),
                ",".join(nodes_of.get(row["shard"], [])),
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
        "latency:    "
        + (
            "unknown (a region pair has no RTT in the GridProfile's spec.network)"
            if data["pipelineLatencyMs"] is None
            else f"{data['pipelineLatencyMs']:g} ms round trip summed over the shard boundaries"
        ),
        f"solver:     {solver['algorithm']} -> {solver['method']}, {solver['qubits']} qubits, "
        f"depth {solver['depth']}, {solver['evaluations']} evaluations, "
        f"{solver['wallSeconds']:.3f} s",
        f"optimum:    {solver['optimumGramsPerHour']:.3f} gCO2e/h, gap {gap_text}",
    ]
    if "reason" in solver:
        lines.append(f"why:        {solver['reason']}")
    if "samplingFoundOptimum" in solver:
        polish = ""
        if "polishChangedAnswer" in solver:
            changed = "yes" if solver["polishChangedAnswer"] else "no"
            polish = f"; local search changed the answer: {changed}"
        lines.append(
            f"qaoa:       {solver.get('ansatz', 'binary-x')} ansatz; sampling found the optimum: "
            f"{'yes' if solver['samplingFoundOptimum'] else 'no'}{polish}"
        )
        if "probabilityOfOptimum" in solver:
            ratio = solver.get("feasibleSetRatio")
            ratio_text = "" if ratio is None else f", {ratio:.3g}x uniform over the feasible set"
            lines.append(f"state:      P(optimum) {solver['probabilityOfOptimum']:.4g}{ratio_text}")
        if "rounds" in solver:
            lines.append(
                f"descent:    {solver['rounds']} threshold rounds, "
                f"{solver['oracleQueries']} oracle queries "
                f"({solver['depth']} Grover layers a preparation)"
            )
    for cap in data["capacity"]:
        lines.append(
            f"capacity:   {cap['pool']}: {cap['free']:g} of {cap['total']:g} {cap['unit']} free"
            + (f", {cap['freePodSlots']} pod slots" if "freePodSlots" in cap else "")
            + (f" (held: {cap['heldBy']})" if cap.get("heldBy") else "")
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


# ------------------------------------------------------------------------------- intensity

KEY_ENV = "GREENSHARD_PROVIDER_KEY"


def cmd_intensity(args: argparse.Namespace) -> int:
    """Each mapped region's intensity now and for the next 24 hours, from spec.provider."""
    # urllib only for this command
    from greenshard.carbon import adapters, readings  # noqa: PLC0415
    from greenshard.carbon import errors as carbon_errors  # noqa: PLC0415
    from greenshard.carbon import spec as provider_spec  # noqa: PLC0415
    from greenshard.carbon import status as carbon_status  # noqa: PLC0415

    raw = load_yaml(args.profile, lambda doc: doc)
    profile = load_yaml(args.profile, parsing.parse_grid_profile)
    try:
        pspec = provider_spec.parse_provider_spec((raw or {}).get("spec") or {})
    except InputError as exc:
        raise CliError(str(exc.with_source(args.profile))) from exc
    key = read_text(args.key_file).strip() if args.key_file else os.environ.get(KEY_ENV) or None
    if pspec.type in provider_spec.NEEDS_KEY and not key:
        raise CliError(
            f"{args.profile}: provider {pspec.type} needs an API key: set {KEY_ENV} or pass "
            "--key-file"
        )
    pspec = replace(pspec, timeout_seconds=args.timeout)
    zones = dict(pspec.zones) if pspec.type != "static" else {r: r for r in profile.regions}
    now = carbon_status.utc_now()
    outcomes = adapters.make_provider(pspec, key, profile).fetch(zones, now)
    for region in sorted(outcomes):
        outcome = outcomes[region]
        if isinstance(outcome, carbon_errors.ProviderError):
            raise CliRuntimeError(
                f"{args.profile}: region {region} ({pspec.type} zone {zones[region]!r}): "
                + carbon_status.redact(outcome.message, key)
            )
    data: dict[str, Any] = {
        "provider": pspec.type,
        "fetchedAt": carbon_status.iso(now),
        "regions": {},
    }
    for region in sorted(outcomes):
        reading = outcomes[region]
        assert isinstance(reading, readings.Reading)
        by_hour = reading.by_utc_hour()
        data["regions"][region] = {
            "zone": zones[region],
            "source": reading.source,
            "signal": reading.signal,
            "current": reading.current,
            "next24h": [by_hour[(now.hour + i) % 24] for i in range(24)],
            "forecastHours": len(reading.forecast),
        }
    if args.output == "json":
        print(json.dumps(data, indent=2))
    else:
        print(render_intensity_table(data, now.hour))
    return 0


def render_intensity_table(data: dict[str, Any], hour: int) -> str:
    head = ("REGION", "SOURCE", "SIGNAL", "NOW", f"NEXT 24H (UTC {hour:02d}:00 ON, gCO2e/kWh)")
    rows = [head]
    for region, entry in data["regions"].items():
        rows.append(
            (
                region,
                entry["source"],
                entry["signal"],
                f"{entry['current']:.0f}",
                " ".join(f"{v:.0f}" for v in entry["next24h"]),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    signals = {e["signal"] for e in data["regions"].values()}
    if "marginal" in signals:
        lines.append("note: marginal (MOER) values are not comparable with average intensities")
    short = [r for r, e in data["regions"].items() if e["forecastHours"] < 24]
    if short:
        lines.append(
            f"note: no full 24 h forecast for {', '.join(short)}: the current value is repeated"
        )
    return "\n".join(lines)


def cmd_experiment(args: argparse.Namespace) -> int:
    from greenshard import experiments  # noqa: PLC0415 - matplotlib only for `experiment`

    path = experiments.run(args.name, Path(args.out), seed=args.seed, quick=args.quick)
    print(path)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    if args.kubeconfig:
        # Before kopf imports the API client: it reads KUBECONFIG once, at import.
        os.environ["KUBECONFIG"] = os.path.abspath(args.kubeconfig)
    from greenshard.k8s import runner  # noqa: PLC0415 - kopf and the client only for `run`

    return runner.run(
        args.kubeconfig,
        args.liveness_port,
        args.metrics_port,
        args.log_format,
        args.namespace,
        log_level=args.log_level,
    )


def cmd_extender(args: argparse.Namespace) -> int:
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = os.path.abspath(args.kubeconfig)
    from greenshard.k8s.extender import main as extender  # noqa: PLC0415 - aiohttp, the client

    return extender.run(
        args.kubeconfig,
        args.port,
        args.grid_profile,
        args.log_format,
        args.address,
        args.hour,
        log_level=args.log_level,
    )


# ----------------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="greenshard",
        description="Carbon-aware placement of LLM layer shards on Kubernetes.",
        epilog="Exit status: 0 success, 1 runtime failure, 2 usage or input error, "
        "130 interrupted. An input path of - reads stdin.",
    )
    parser.add_argument("--version", action="version", version=f"greenshard {version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("plan", help="plan a placement from YAML files (no cluster needed)")
    p.add_argument("-f", "--file", required=True, help="InferenceDeployment YAML (- for stdin)")
    p.add_argument("--nodes", required=True, help="NodeList YAML (kubectl get nodes -o yaml)")
    p.add_argument("--profile", required=True, help="GridProfile YAML")
    p.add_argument(
        "--pods",
        help="PodList YAML (kubectl get pods -A -o yaml): GPUs other pods hold count as used",
    )
    p.add_argument("--hour", type=_hour, help="UTC hour 0..23 (default: now)")
    defaults = " (default: the file's spec.solver, else the CRD default %s)"
    p.add_argument(
        "--solver",
        choices=ALGORITHMS,
        default=None,
        help="solver" + defaults % SolverConfig.algorithm,
    )
    p.add_argument(
        "--ansatz",
        choices=ANSATZE,
        default=None,
        help="QAOA ansatz" + defaults % SolverConfig.ansatz,
    )
    p.add_argument(
        "--mixer",
        choices=MIXERS,
        default=None,
        help="one-hot XY mixer" + defaults % SolverConfig.mixer,
    )
    p.add_argument("--seed", type=_seed, default=None, help="seed" + defaults % SolverConfig.seed)
    p.add_argument(
        "--depth",
        type=_positive("--depth", 1000),
        default=None,
        help="QAOA depth p, a linear ramp" + defaults % SolverConfig.depth,
    )
    p.add_argument(
        "--shots",
        type=_positive("--shots", 100_000),
        default=None,
        help="QAOA samples" + defaults % SolverConfig.shots,
    )
    p.add_argument(
        "--max-qubits",
        type=_positive("--max-qubits", MAX_QUBITS),
        default=None,
        help="auto: QAOA while the state has at most 2^N amplitudes"
        + defaults % DEFAULT_MAX_QUBITS,
    )
    p.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    p.set_defaults(func=cmd_plan)

    bench.add_parser(sub)

    e = sub.add_parser(
        "experiment",
        help="run a reproducible experiment: a markdown report with PNG figures",
        description="static: QAOA p=1..5 vs exact, genetic, annealing and seconds per evaluation "
        "against qubits; dynamic: 24 hours of grid intensity and re-planning strategies; noisy: "
        "QAOA under depolarizing and amplitude-damping noise. Writes OUT/NAME/report.md "
        "(needs matplotlib: pip install 'greenshard[experiments]').",
    )
    e.add_argument("name", choices=("static", "dynamic", "noisy"))
    e.add_argument("--out", default="docs/results", help="output folder (default docs/results)")
    e.add_argument("--seed", type=_seed, default=0)
    e.add_argument("--quick", action="store_true", help="a reduced size (seconds; for tests)")
    e.set_defaults(func=cmd_experiment)

    i = sub.add_parser(
        "intensity",
        help="print each region's intensity now and for the next 24 h from spec.provider",
        description=(
            "Fetch live carbon intensity as a GridProfile's spec.provider configures it. The API "
            f"key comes from ${KEY_ENV} or --key-file (never from the command line, never "
            "printed); wattTime takes 'username:password'."
        ),
    )
    i.add_argument("--profile", required=True, help="GridProfile YAML with spec.provider")
    i.add_argument("--key-file", help=f"file holding the API key (default: ${KEY_ENV})")
    i.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    i.add_argument("-o", "--output", choices=("table", "json"), default="table")
    i.set_defaults(func=cmd_intensity)

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
    r.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        default="INFO",
        help="the least severe level logged (default INFO)",
    )
    r.set_defaults(func=cmd_run)

    e = sub.add_parser(
        "extender", help="serve the kube-scheduler extender (carbon-aware filter and scores)"
    )
    e.add_argument("--port", type=_positive("--port", 65535), default=8888, help="HTTP port")
    e.add_argument("--address", default="0.0.0.0", help="listen address (default 0.0.0.0)")
    e.add_argument(
        "--grid-profile", default="default", help="the GridProfile to use (default: default)"
    )
    e.add_argument("--kubeconfig", help="kubeconfig path (default: KUBECONFIG or in-cluster)")
    e.add_argument("--hour", type=_hour, help="fixed UTC hour 0..23 (default: the current hour)")
    e.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        default="auto",
        help="auto: JSON unless stderr is a terminal",
    )
    e.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        default="INFO",
        help="the least severe level logged (default INFO)",
    )
    e.set_defaults(func=cmd_extender)
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
    except CliRuntimeError as exc:
        print(f"greenshard: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:  # `greenshard plan ... | head`: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except OSError as exc:  # writing a report, a socket: the environment, not the input
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"greenshard: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
