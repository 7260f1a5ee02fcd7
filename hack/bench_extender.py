#!/usr/bin/env python3
"""Benchmark of the scheduler extender's /prioritize (and /filter) for N nodes.

The server (the same aiohttp app as `greenshard extender`, its node cache filled with N KWOK-like
nodes cycling through hack/nodes.yaml's shapes, the sample GridProfile) runs in its own process;
this process sends ExtenderArgs bodies as kube-scheduler does (a carbon-aware pod, NodeNames of
all N nodes) from C concurrent connections and times each request end to end.

  .venv/bin/python hack/bench_extender.py                       # 500 nodes, 50 concurrent
  .venv/bin/python hack/bench_extender.py --nodes 5000 --concurrency 1,50 --requests 4000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

import yaml  # noqa: E402

SHAPES = [
    ("eu-north-1", "NVIDIA-H100-80GB-HBM3"),
    ("eu-north-1", "NVIDIA-A100-SXM4-40GB"),
    ("eu-north-1", "NVIDIA-L4"),
    ("eu-north-1", None),
    ("us-east-1", "NVIDIA-H100-80GB-HBM3"),
    ("us-east-1", "NVIDIA-A100-SXM4-40GB"),
    ("us-east-1", "NVIDIA-L4"),
    ("us-east-1", None),
    ("ap-southeast-2", "NVIDIA-H100-80GB-HBM3"),
    ("ap-southeast-2", "NVIDIA-A100-SXM4-40GB"),
    ("ap-southeast-2", "NVIDIA-L4"),
    ("ap-southeast-2", None),
]


def node(i: int) -> dict[str, Any]:
    region, gpu = SHAPES[i % len(SHAPES)]
    labels = {"topology.kubernetes.io/region": region, "kubernetes.io/hostname": f"node-{i:05d}"}
    if gpu:
        labels |= {"nvidia.com/gpu.product": gpu, "nvidia.com/gpu.count": "8"}
    return {
        "metadata": {"name": f"node-{i:05d}", "labels": labels},
        "status": {
            "allocatable": {"memory": "128Gi"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def pod(opted_in: bool) -> dict[str, Any]:
    labels = {"app": "bench"} | ({"greenshard.io/carbon-aware": "true"} if opted_in else {})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bench", "namespace": "default", "uid": "u", "labels": labels},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                }
            ]
        },
    }


def serve(nodes: int, port_queue: Any) -> None:
    # in the server process only
    from greenshard.k8s.extender.scoring import Extender  # noqa: PLC0415
    from greenshard.k8s.extender.server import Server  # noqa: PLC0415
    from greenshard.k8s.extender.state import ClusterState  # noqa: PLC0415
    from greenshard.k8s.logs import configure_logging  # noqa: PLC0415

    configure_logging("json")  # as `greenshard extender` serves: INFO, JSON lines
    profile = yaml.safe_load((ROOT / "crds/samples/gridprofile.yaml").read_text())
    state = ClusterState("default", hour=lambda: 12)
    state.replace_nodes(node(i) for i in range(nodes))
    state.set_profile(profile)
    server = Server(Extender(state), port=0)

    async def main() -> None:
        port_queue.put(await server.start_async())
        await asyncio.Event().wait()

    asyncio.run(main())


async def load(
    port: int, path: str, bodies: list[bytes], concurrency: int, requests: int
) -> tuple[list[float], float]:
    """CONCURRENCY keep-alive connections, each sending its next request as soon as the last
    answer is read, until REQUESTS are answered. A minimal HTTP/1.1 client on asyncio streams,
    so that the load generator costs little of the machine's CPU beside the server."""
    messages = [
        (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for body in bodies
    ]
    latencies: list[float] = []
    remaining = requests

    async def roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(messages[remaining % len(messages)])
        header = await reader.readuntil(b"\r\n\r\n")
        status = header.split(b" ", 2)[1]
        if status != b"200":
            raise RuntimeError(f"{path}: HTTP {status.decode()}")
        length = 0
        for line in header.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)

    async def worker() -> None:
        nonlocal remaining
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await roundtrip(reader, writer)  # warm-up
        await ready.wait()
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            await roundtrip(reader, writer)
            latencies.append(time.perf_counter() - start)
        writer.close()

    ready = asyncio.Event()
    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.sleep(0.2)
    start = time.perf_counter()
    ready.set()
    await asyncio.gather(*tasks)
    return latencies, time.perf_counter() - start


def server_seconds(port: int, verb: str) -> tuple[float, float]:
    """(sum, count) of the server's own greenshard_extender_request_seconds for VERB."""
    import urllib.request  # noqa: PLC0415

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    values = {}
    for line in text.splitlines():
        for part in ("sum", "count"):
            if line.startswith(f'greenshard_extender_request_seconds_{part}{{verb="{verb}"}}'):
                values[part] = float(line.rsplit(" ", 1)[1])
    return values["sum"], values["count"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--concurrency", default="1,50", help="comma-separated (default 1,50)")
    parser.add_argument("--requests", type=int, default=3000, help="per configuration")
    parser.add_argument("--verbs", default="prioritize,filter")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    ports: Any = ctx.Queue()
    proc = ctx.Process(target=serve, args=(args.nodes, ports), daemon=True)
    proc.start()
    rows = []
    try:
        port = ports.get(timeout=60)
        names = [f"node-{i:05d}" for i in range(args.nodes)]
        for verb in args.verbs.split(","):
            cases = [("carbon-aware", True, 1), ("passthrough", False, 1)]
            if verb == "prioritize":  # answers are cached per node set: also time new sets
                cases.insert(1, ("carbon-aware, new node set", True, args.requests))
            for label, opted_in, variants in cases:
                # variant i leaves node i out: every request a node set never seen before
                bodies = [
                    json.dumps(
                        {
                            "Pod": pod(opted_in),
                            "NodeNames": names if variants == 1 else names[:i] + names[i + 1 :],
                        }
                    ).encode()
                    for i in range(min(variants, len(names)))
                ]
                for concurrency in (int(c) for c in args.concurrency.split(",")):
                    sum0, count0 = server_seconds(port, verb)
                    lat, wall = asyncio.run(
                        load(port, f"/{verb}", bodies, concurrency, args.requests)
                    )
                    sum1, count1 = server_seconds(port, verb)
                    rows.append(
                        {
                            "serverMeanMs": 1000 * (sum1 - sum0) / max(1.0, count1 - count0),
                            "verb": verb,
                            "pod": label,
                            "nodes": args.nodes,
                            "concurrency": concurrency,
                            "requests": len(lat),
                            "p50Ms": 1000 * percentile(lat, 50),
                            "p99Ms": 1000 * percentile(lat, 99),
                            "meanMs": 1000 * statistics.fmean(lat),
                            "requestsPerSecond": len(lat) / wall,
                        }
                    )
    finally:
        proc.terminate()
        proc.join(5)
    if args.output == "json":
        print(json.dumps(rows, indent=2))
        return 0
    load1 = os.getloadavg()[0]
    print(f"extender benchmark: {args.nodes} nodes, {os.cpu_count()} CPUs, load {load1:.2f}")
    print("(P50/P99: end to end at the client; SERVER MS: mean time inside the handler)")
    header = ("VERB", "POD", "NODES", "CONC", "REQUESTS", "P50 MS", "P99 MS", "REQ/S", "SERVER MS")
    table = [header] + [
        (
            r["verb"],
            r["pod"],
            str(r["nodes"]),
            str(r["concurrency"]),
            str(r["requests"]),
            f"{r['p50Ms']:.2f}",
            f"{r['p99Ms']:.2f}",
            f"{r['requestsPerSecond']:.0f}",
            f"{r['serverMeanMs']:.3f}",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
