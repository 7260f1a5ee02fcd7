"""Seeded synthetic instances for benchmarks, experiments and tests.

An instance of ``qubits`` n uses K = 4 pools (2 bits a shard, S = n / 2) when n is even and K = 2
(S = n) when n is odd. Pools span regions with different intensities and PUE, accelerators with
different energy; capacities are drawn so that the greenest pool cannot hold the whole model, and
links are costly enough that splitting has a price: the optimum is neither "everything on the
greenest pool" nor obvious.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from greenshard import model, parsing, subspace
from greenshard.errors import GreenShardError

ACCELERATORS = {  # joules per teraflop, PUE excluded (rough datasheet figures at ~40% MFU)
    "NVIDIA-H100-80GB-HBM3": 1.75,
    "NVIDIA-A100-SXM4-40GB": 3.2,
    "NVIDIA-L4": 1.5,
    "cpu": 60.0,
}


def synthetic_documents(
    qubits: int, seed: int
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(InferenceDeployment, NodeList, GridProfile) as the YAML documents a user would write."""
    if qubits < 1:
        raise ValueError("qubits must be >= 1")
    rng = np.random.default_rng(seed)
    pools = 4 if qubits % 2 == 0 else 2
    shards = qubits // 2 if pools == 4 else qubits
    layers = shards * int(rng.integers(2, 5))
    params = float(rng.choice([7.0, 13.0, 34.0, 70.0]))
    regions = ["eu-north-1", "us-east-1", "ap-southeast-2"][: 2 if pools == 2 else 3]
    accels = list(ACCELERATORS)[:3]
    pool_keys: list[tuple[str, str]] = []
    while len(pool_keys) < pools:
        key = (str(rng.choice(regions)), str(rng.choice(accels)))
        if key not in pool_keys:
            pool_keys.append(key)
    model_bytes = params * 1e9 * 2.0
    # Whole GPUs (cost-model v2): one GPU holds the largest shard (memoryOverhead 0), and a pool
    # holds a share of the shards (35-90%, as the summed-memory instances held a share of the
    # model), so capacity binds about as often as before.
    largest = model_bytes * -(-layers // shards) / layers
    nodes = []
    for i, (region, accel) in enumerate(sorted(pool_keys)):
        share = float(rng.uniform(0.35, 0.9))
        mib = int(np.ceil(largest / 2**20))
        gpus = max(1, int(np.floor(share * shards)))
        nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": f"node-{i}",
                    "labels": {
                        model.REGION_LABEL: region,
                        model.GPU_PRODUCT_LABEL: accel,
                        model.GPU_MEMORY_LABEL: str(mib),
                        model.GPU_COUNT_LABEL: str(gpus),
                    },
                },
                "status": {
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "allocatable": {"memory": "64Gi", "nvidia.com/gpu": str(gpus)},
                },
            }
        )
    deployment = {
        "apiVersion": "greenshard.io/v1alpha1",
        "kind": "InferenceDeployment",
        "metadata": {"name": f"synthetic-{qubits}q-{seed}", "namespace": "default"},
        "spec": {
            "model": {
                "name": "synthetic",
                "layers": layers,
                "hiddenSize": 8192,
                "parametersBillions": params,
                "dtype": "bfloat16",
                "memoryOverhead": 0.0,
            },
            "sharding": {"shards": shards, "replicas": 1},
            "workload": {"tokensPerSecond": float(rng.integers(200, 2000))},
        },
    }
    profile = {
        "apiVersion": "greenshard.io/v1alpha1",
        "kind": "GridProfile",
        "metadata": {"name": "synthetic"},
        "spec": {
            "regions": {
                r: {
                    "intensity": round(float(rng.uniform(20, 600)), 3),
                    "pue": round(float(rng.uniform(1.05, 1.5)), 3),
                }
                for r in regions
            },
            "accelerators": {
                a: {"joulesPerTeraflop": j * float(rng.uniform(0.8, 1.25))}
                for a, j in ACCELERATORS.items()
            },
            "links": {
                "samePoolJoulesPerByte": 1e-9,
                "sameRegionJoulesPerByte": 2e-6,
                "crossRegionJoulesPerByte": float(rng.uniform(1e-5, 4e-5)),
            },
        },
    }
    return deployment, {"apiVersion": "v1", "kind": "NodeList", "items": nodes}, profile


def synthetic_problem(qubits: int, seed: int, hour: int = 0) -> model.Problem:
    deployment, nodes, profile = synthetic_documents(qubits, seed)
    return model.build_problem(
        parsing.parse_deployment(deployment),
        parsing.parse_nodes(nodes),
        parsing.parse_grid_profile(profile),
        hour,
    )


# --------------------------------------------------------------------------------------------
# Constrained families: where QAOA schedules are fitted (training) and judged (held out)
# --------------------------------------------------------------------------------------------

GPU_ACCELERATORS = tuple(a for a in ACCELERATORS if a != "cpu")


@dataclass(frozen=True)
class Family:
    """A recipe for constrained instances. ``feasible`` bounds the fraction of the K**S
    placements that are feasible: a draw outside it is redrawn (so a family stays as
    constrained as it says whatever the feasibility rule)."""

    name: str
    regions: int
    accelerators: tuple[str, ...]
    nodes_per_pool: tuple[int, int]  # inclusive range
    gpus_per_node: tuple[int, ...]
    capacity: tuple[float, float]  # a pool's memory in units of a fair share (weights / K)
    hops: tuple[int | None, ...]  # maxRegionHops choices (None: no limit)
    intensity: str  # spread | close | bimodal
    cross_region: tuple[float, float]  # J/B between regions
    feasible: tuple[float, float] = (0.0005, 0.05)


#: Schedules are fitted on these (with FITTING_SEEDS) and nowhere else.
TRAINING_FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "train-capacity",
            3,
            GPU_ACCELERATORS,
            (1, 2),
            (1, 2),
            (0.8, 2.0),
            (None,),
            "spread",
            (1e-5, 4e-5),
        ),
        Family(
            "train-hops",
            4,
            GPU_ACCELERATORS[:2],
            (1, 1),
            (1,),
            (1.2, 2.8),
            (1, 2),
            "close",
            (5e-6, 2e-5),
        ),
        Family(
            "train-mixed",
            3,
            GPU_ACCELERATORS,
            (1, 3),
            (1, 2, 4),
            (0.6, 1.8),
            (None, 2),
            "bimodal",
            (1e-5, 3e-5),
        ),
    )
}
#: Schedules are judged on these, which share no recipe with the training families.
HELD_OUT_FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "heldout-bimodal-wide",
            5,
            GPU_ACCELERATORS,
            (2, 3),
            (2, 4),
            (0.5, 1.6),
            (None,),
            "bimodal",
            (2e-5, 6e-5),
        ),
        Family(
            "heldout-close-hops",
            3,
            GPU_ACCELERATORS,
            (1, 2),
            (1, 2),
            (1.0, 2.4),
            (0, 1),
            "close",
            (1e-6, 1e-5),
        ),
        Family(
            "heldout-spread-tight",
            4,
            GPU_ACCELERATORS[1:],
            (1, 4),
            (1, 8),
            (0.4, 1.4),
            (None, 3),
            "spread",
            (5e-6, 5e-5),
        ),
    )
}
#: Roomy instances of any size, for the memory and time wall (any feasible fraction).
WALL_FAMILY = Family(
    "wall",
    4,
    GPU_ACCELERATORS,
    (1, 2),
    (1, 2),
    (1.5, 3.0),
    (None,),
    "spread",
    (1e-5, 4e-5),
    (1e-12, 1.0),
)
FAMILIES: dict[str, Family] = {**TRAINING_FAMILIES, **HELD_OUT_FAMILIES, "wall": WALL_FAMILY}
#: Seeds the schedules were fitted on; tests and held-out reports never use them.
FITTING_SEEDS = range(0, 1000)
#: Seeds of held-out reports and tests.
HELD_OUT_SEEDS = range(100_000, 200_000)
MAX_DRAWS = 400


def family_documents(
    family: Family, shards: int, pools: int, rng: np.random.Generator
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """One draw of (InferenceDeployment, NodeList, GridProfile) from a family."""
    regions = [f"region-{chr(97 + i)}" for i in range(family.regions)]
    keys = [(r, a) for r in regions for a in family.accelerators]
    if pools > len(keys):
        raise ValueError(f"family {family.name} has at most {len(keys)} pools")
    chosen = sorted(keys[i] for i in rng.choice(len(keys), size=pools, replace=False))
    layers = shards * int(rng.integers(2, 5)) + int(rng.integers(0, shards))
    params = float(rng.choice([13.0, 34.0, 70.0]))
    model_bytes = params * 1e9 * 2.0
    largest = model_bytes * -(-layers // shards) / layers  # bytes of the largest shard
    nodes: list[dict[str, Any]] = []
    for region, accel in chosen:
        share = float(rng.uniform(*family.capacity)) / pools
        count = int(rng.integers(family.nodes_per_pool[0], family.nodes_per_pool[1] + 1))
        # Whole GPUs (cost-model v2): a replica of the largest shard needs g = 4..8 small GPUs
        # (so shards of fewer layers need fewer, and capacity is fine-grained as the
        # summed-memory families were), and the pool holds about `share` of the shards.
        g = int(rng.integers(4, 9))
        mib = int(np.ceil(largest / g / 2**20))
        count = max(1, min(count, int(share * shards)))  # no node too small for a replica
        gpus = max(1, int(share * shards * g / count))
        for _ in range(count):
            nodes.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": f"node-{len(nodes)}",
                        "labels": {
                            model.REGION_LABEL: region,
                            model.GPU_PRODUCT_LABEL: accel,
                            model.GPU_MEMORY_LABEL: str(mib),
                            model.GPU_COUNT_LABEL: str(gpus),
                        },
                    },
                    "status": {
                        "conditions": [{"type": "Ready", "status": "True"}],
                        "allocatable": {"memory": "64Gi", "nvidia.com/gpu": str(gpus)},
                    },
                }
            )
    hops = family.hops[int(rng.integers(0, len(family.hops)))]
    deployment = {
        "apiVersion": "greenshard.io/v1alpha1",
        "kind": "InferenceDeployment",
        "metadata": {"name": f"{family.name}-{shards}x{pools}", "namespace": "default"},
        "spec": {
            "model": {
                "name": "synthetic",
                "layers": layers,
                "hiddenSize": 8192,
                "parametersBillions": params,
                "dtype": "bfloat16",
                "memoryOverhead": 0.0,
            },
            "sharding": {"shards": shards, "replicas": 1},
            "workload": {"tokensPerSecond": float(rng.integers(200, 2000))},
            "placement": {} if hops is None else {"maxRegionHops": hops},
        },
    }
    profile = {
        "apiVersion": "greenshard.io/v1alpha1",
        "kind": "GridProfile",
        "metadata": {"name": family.name},
        "spec": {
            "regions": {
                r: {
                    "intensity": _intensity(family.intensity, i, rng),
                    "pue": round(float(rng.uniform(1.05, 1.5)), 3),
                }
                for i, r in enumerate(regions)
            },
            "accelerators": {
                a: {"joulesPerTeraflop": j * float(rng.uniform(0.8, 1.25))}
                for a, j in ACCELERATORS.items()
            },
            "links": {
                "samePoolJoulesPerByte": 1e-9,
                "sameRegionJoulesPerByte": 2e-7,
                "crossRegionJoulesPerByte": float(rng.uniform(*family.cross_region)),
            },
        },
    }
    return deployment, {"apiVersion": "v1", "kind": "NodeList", "items": nodes}, profile


def _intensity(kind: str, index: int, rng: np.random.Generator) -> float:
    if kind == "close":
        return round(float(rng.uniform(250, 330)), 3)
    if kind == "bimodal":
        return round(float(rng.uniform(20, 90) if index % 2 == 0 else rng.uniform(380, 700)), 3)
    return round(float(rng.uniform(20, 600)), 3)


def family_problem(name: str, shards: int, pools: int, seed: int, hour: int = 0) -> model.Problem:
    """The seed's instance of a family: the first draw whose feasible fraction is in the band."""
    family = FAMILIES[name]
    tag = sum(ord(c) * 31**i for i, c in enumerate(name)) % 2**32
    rng = np.random.default_rng([seed, tag, shards, pools])
    for _ in range(MAX_DRAWS):
        deployment, nodes, profile = family_documents(family, shards, pools, rng)
        try:
            problem = model.build_problem(
                parsing.parse_deployment(deployment),
                parsing.parse_nodes(nodes),
                parsing.parse_grid_profile(profile),
                hour,
            )
        except GreenShardError:
            continue
        if problem.num_pools != pools:
            continue
        fraction = subspace.PlacementSpace(problem).stats.count / problem.num_pools**shards
        if family.feasible[0] <= fraction <= family.feasible[1]:
            return problem
    raise ValueError(f"family {name}: no {shards}x{pools} draw in its feasible band")
