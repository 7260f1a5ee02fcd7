"""Seeded synthetic instances for benchmarks, experiments and tests.

An instance of ``qubits`` n uses K = 4 pools (2 bits a shard, S = n / 2) when n is even and K = 2
(S = n) when n is odd. Pools span regions with different intensities and PUE, accelerators with
different energy; capacities are drawn so that the greenest pool cannot hold the whole model, and
links are costly enough that splitting has a price: the optimum is neither "everything on the
greenest pool" nor obvious.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from greenshard import model

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
    nodes = []
    for i, (region, accel) in enumerate(sorted(pool_keys)):
        share = float(rng.uniform(0.35, 0.9))
        mib = int(np.ceil(model_bytes * share / 2**20))
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
                        model.GPU_COUNT_LABEL: "1",
                    },
                },
                "status": {
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "allocatable": {"memory": "64Gi"},
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
        model.parse_deployment(deployment),
        model.parse_nodes(nodes),
        model.parse_grid_profile(profile),
        hour,
    )
