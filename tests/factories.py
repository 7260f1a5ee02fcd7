"""Shared test data: random problems and an independent implementation of cost-model.md."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from greenshard import instances, model, parsing

DTYPE = {"float32": 4, "bfloat16": 2, "float16": 2, "float8": 1, "int8": 1, "int4": 0.5}


def random_problem(
    rng: np.random.Generator,
    shards: int,
    pools: int,
    regions: int = 3,
    hops: int | None = None,
    tight: bool = False,
) -> model.Problem:
    """A random problem built through the real parsers (deployment, nodes, profile)."""
    deployment, nodes, profile = random_documents(rng, shards, pools, regions, hops, tight)
    return model.build_problem(
        parsing.parse_deployment(deployment),
        parsing.parse_nodes({"items": nodes}),
        parsing.parse_grid_profile(profile),
        0,
    )


def random_documents(
    rng: np.random.Generator,
    shards: int,
    pools: int,
    regions: int = 3,
    hops: int | None = None,
    tight: bool = False,
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """The deployment, node and GridProfile documents of :func:`random_problem`."""
    layers = shards * 2 + int(rng.integers(0, shards + 1))
    params = 70.0
    model_bytes = params * 1e9 * 2
    accels = ["NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-40GB", "NVIDIA-L4", "cpu"]
    region_names = [f"r{i}" for i in range(regions)]
    keys: list[tuple[str, str]] = []
    for region, accel in itertools.product(region_names, accels):
        keys.append((region, accel))
    rng.shuffle(keys)
    shard_bytes = model_bytes / shards * 1.2  # a replica of an average shard, overhead included
    nodes = []
    for i, (region, accel) in enumerate(sorted(keys[:pools])):
        # Whole GPUs per node (cost-model v2): a shard replica needs 1 or 2 GPUs; tight pools
        # have room for a few replicas only, loose ones for every shard.
        per_gpu = shard_bytes * rng.uniform(0.6, 1.3)
        count = int(rng.integers(1, 3))
        for j in range(count):
            gpus = int(rng.integers(1, 4)) if tight else 2 * shards
            labels = {model.REGION_LABEL: region}
            alloc = {"memory": "1Gi"}
            if accel != "cpu":
                labels |= {
                    model.GPU_PRODUCT_LABEL: accel,
                    model.GPU_MEMORY_LABEL: str(math.ceil(per_gpu / 2**20)),
                    model.GPU_COUNT_LABEL: str(gpus),
                }
                alloc["nvidia.com/gpu"] = str(gpus)
            else:
                alloc = {"memory": str(int(per_gpu * gpus))}
            nodes.append(
                {
                    "metadata": {"name": f"n{i}-{j}", "labels": labels},
                    "status": {
                        "allocatable": alloc,
                        "conditions": [{"type": "Ready", "status": "True"}],
                    },
                }
            )
    deployment = {
        "metadata": {"name": "t"},
        "spec": {
            "model": {
                "layers": layers,
                "hiddenSize": 8192,
                "parametersBillions": params,
                "dtype": "bfloat16",
            },
            "sharding": {"shards": shards},
            "workload": {"tokensPerSecond": 1000.0},
            "placement": {} if hops is None else {"maxRegionHops": hops},
        },
    }
    profile = {
        "spec": {
            "regions": {
                r: {"intensity": float(rng.uniform(20, 600)), "pue": float(rng.uniform(1.0, 1.5))}
                for r in region_names
            },
            "accelerators": {a: {"joulesPerTeraflop": float(rng.uniform(0.5, 5))} for a in accels},
            "links": {
                "samePoolJoulesPerByte": 1e-9,
                "sameRegionJoulesPerByte": 1e-7,
                "crossRegionJoulesPerByte": float(rng.uniform(1e-6, 1e-5)),
            },
        }
    }
    return deployment, nodes, profile


def brute_force_reference(problem: model.Problem) -> tuple[float, tuple[int, ...]] | None:
    """Plain enumeration in lexicographic order: least emissions, first of ties."""
    best: tuple[float, tuple[int, ...]] | None = None
    for placement in itertools.product(range(problem.num_pools), repeat=problem.num_shards):
        if model.feasible(problem, placement):
            e = model.emissions(problem, placement)
            if best is None or e < best[0] - 1e-12 * abs(best[0]):
                best = (e, placement)
    return best


def independent_emissions(
    deployment: dict[str, Any], profile: dict[str, Any], hour: int, pools: list[tuple[str, str]]
) -> float:
    """cost-model.md written out again from the raw documents, sharing no code with greenshard.

    ``pools[s]`` is (region, accelerator) of shard s."""
    spec = deployment["spec"]
    layers = spec["model"]["layers"]
    params = spec["model"]["parametersBillions"]
    b = DTYPE[spec["model"].get("dtype", "bfloat16")]
    shards = spec["sharding"]["shards"]
    tokens = spec["workload"]["tokensPerSecond"]
    boundary_bytes = spec["model"]["hiddenSize"] * b
    regions = profile["spec"]["regions"]
    accels = profile["spec"]["accelerators"]
    links = profile["spec"]["links"]

    def ci(region: str) -> float:
        value = regions[region]["intensity"]
        return float(value[hour]) if isinstance(value, list) else float(value)

    def pue(region: str) -> float:
        return float(regions[region].get("pue", 1.0))

    total = 0.0
    for s in range(shards):
        n_s = (s + 1) * layers // shards - s * layers // shards
        flops = 2 * (params * 1e9 / layers) * n_s
        region, accel = pools[s]
        joules = accels[accel]["joulesPerTeraflop"] / 1e12
        total += flops * tokens * joules * pue(region) * ci(region) / 1000
    for s in range(shards - 1):
        (r1, a1), (r2, a2) = pools[s], pools[s + 1]
        if (r1, a1) == (r2, a2):
            e = links["samePoolJoulesPerByte"]
        elif r1 == r2:
            e = links["sameRegionJoulesPerByte"]
        else:
            e = links["crossRegionJoulesPerByte"]
        total += (
            boundary_bytes * tokens * e * (pue(r1) + pue(r2)) / 2 * (ci(r1) + ci(r2)) / 2 / 1000
        )
    return total


def starved(problem: model.Problem) -> model.Problem:
    """The same problem with no free capacity on any node (every GPU held by someone else)."""
    from dataclasses import replace

    from greenshard import feasibility

    cap = problem.capacity
    pools = [replace(p, free=tuple(0 for _ in p.free)) for p in cap.pools]
    return replace(problem, capacity=feasibility.Capacity.build(pools, cap.demand, cap.replicas))


#: (shards, pools) of the circuit-equivalence tests: 9 to 20 qubits.
CIRCUIT_SIZES = [(4, 5), (5, 4), (6, 3), (3, 5), (4, 4), (5, 3), (3, 4), (3, 3), (4, 3), (2, 5)]


def loose_held_out_families(monkeypatch: Any) -> None:
    """Small instances cannot be under 5% feasible and still have a few feasible placements:
    these draws get roomier pools and only need some feasible and some infeasible placements."""
    for name, family in instances.HELD_OUT_FAMILIES.items():
        low, high = family.capacity
        roomier = {"capacity": (2 * low, 3 * high), "feasible": (1e-9, 0.6)}
        loose = instances.Family(**{**family.__dict__, **roomier})
        monkeypatch.setitem(instances.FAMILIES, name, loose)
