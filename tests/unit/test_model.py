"""The cost model: parsing, shards, pools, the formula, feasibility."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from factories import independent_emissions
from greenshard import model, parsing, planner
from greenshard.errors import InputError, NoCandidatePoolError

ROOT = Path(__file__).resolve().parents[2]
FILES = {
    "llama-70b.yaml": ROOT / "crds/samples",
    "gridprofile.yaml": ROOT / "crds/samples",
    "nodes.yaml": ROOT / "examples",
}


def load(name: str) -> Any:
    return yaml.safe_load((FILES[name] / name).read_text())


@pytest.fixture
def docs() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    return load("llama-70b.yaml"), load("nodes.yaml"), load("gridprofile.yaml")


def build(
    docs: tuple[dict[str, Any], dict[str, Any], dict[str, Any]], hour: int = 12
) -> model.Problem:
    d, n, p = docs
    return model.build_problem(
        parsing.parse_deployment(d), parsing.parse_nodes(n), parsing.parse_grid_profile(p), hour
    )


def test_shard_layer_ranges_follow_the_floor_rule() -> None:
    assert model.shard_layers(10, 3) == [(0, 2), (3, 5), (6, 9)]
    assert model.shard_layers(80, 8)[7] == (70, 79)
    ranges = model.shard_layers(7, 7)
    assert ranges == [(i, i) for i in range(7)]


def test_pools_are_candidates_grouped_and_ordered(docs: Any) -> None:
    problem = build(docs)
    # The selector keeps H100 nodes in eu-north-1 and us-east-1 only.
    assert problem.pool_keys() == [
        "eu-north-1/NVIDIA-H100-80GB-HBM3",
        "us-east-1/NVIDIA-H100-80GB-HBM3",
    ]
    eu, us = problem.pools
    assert eu.capacity_bytes == 81559 * 2**20 * 2
    assert us.capacity_bytes == 2 * 81559 * 2**20 * 8
    assert us.nodes == ("us-east-1-h100-0", "us-east-1-h100-1")
    assert eu.intensity == 35 and us.intensity == 385  # hour 12 of the 24-value lists


def test_not_ready_and_cordoned_nodes_are_not_candidates(docs: Any) -> None:
    d, n, p = docs
    d = copy.deepcopy(d)
    del d["spec"]["placement"]["nodeSelector"]
    problem = build((d, n, p))
    keys = problem.pool_keys()
    assert "ap-southeast-2/NVIDIA-L4" not in keys  # NotReady
    assert "ap-southeast-2/cpu" not in keys  # cordoned
    assert "eu-north-1/cpu" in keys
    cpu = problem.pools[keys.index("eu-north-1/cpu")]
    assert cpu.capacity_bytes == 512 * 2**30  # status.allocatable.memory for CPU nodes


def test_pools_missing_from_the_profile_are_skipped_with_a_reason(docs: Any) -> None:
    d, n, p = docs
    p = copy.deepcopy(p)
    del p["spec"]["regions"]["eu-north-1"]
    problem = build((d, n, p))
    assert problem.pool_keys() == ["us-east-1/NVIDIA-H100-80GB-HBM3"]
    (skipped,) = problem.skipped
    assert skipped.key == "eu-north-1/NVIDIA-H100-80GB-HBM3"
    assert "eu-north-1" in skipped.reason and "spec.regions" in skipped.reason


def test_no_candidate_pool_is_a_clear_error(docs: Any) -> None:
    d, n, p = docs
    p = copy.deepcopy(p)
    del p["spec"]["accelerators"]["NVIDIA-H100-80GB-HBM3"]
    with pytest.raises(NoCandidatePoolError, match="spec.accelerators"):
        build((d, n, p))


@pytest.mark.parametrize("hour", [0, 7, 12, 23])
def test_formula_agrees_with_an_independent_implementation(docs: Any, hour: int) -> None:
    d, n, p = docs
    d = copy.deepcopy(d)
    del d["spec"]["placement"]["nodeSelector"]
    problem = build((d, n, p), hour)
    rng = np.random.default_rng(hour)
    for _ in range(50):
        placement = tuple(int(k) for k in rng.integers(0, problem.num_pools, problem.num_shards))
        pools = [(problem.pools[k].region, problem.pools[k].accelerator) for k in placement]
        ours = model.emissions(problem, placement)
        theirs = independent_emissions(d, p, hour, pools)
        assert ours == pytest.approx(theirs, rel=1e-9)


def test_emissions_by_hand_for_one_shard() -> None:
    deployment = parsing.parse_deployment(
        {
            "spec": {
                "model": {
                    "layers": 2,
                    "hiddenSize": 10,
                    "parametersBillions": 1,
                    "dtype": "float32",
                },
                "sharding": {"shards": 2},
                "workload": {"tokensPerSecond": 100},
            }
        }
    )
    nodes = parsing.parse_nodes(
        {
            "items": [
                {
                    "metadata": {"name": "a", "labels": {model.REGION_LABEL: "x"}},
                    "status": {
                        "allocatable": {"memory": "64Gi"},
                        "conditions": [{"type": "Ready", "status": "True"}],
                    },
                }
            ]
        }
    )
    profile = parsing.parse_grid_profile(
        {
            "spec": {
                "regions": {"x": {"intensity": 200, "pue": 1.5}},
                "accelerators": {"cpu": {"joulesPerTeraflop": 10}},
                "links": {
                    "samePoolJoulesPerByte": 1e-9,
                    "sameRegionJoulesPerByte": 0,
                    "crossRegionJoulesPerByte": 0,
                },
            }
        }
    )
    problem = model.build_problem(deployment, nodes, profile, 0)
    # F_s = 2 * 0.5e9 * 1 = 1e9 FLOPs/token; 100 tok/s -> 1e11 FLOP/s * 1e-11 J/FLOP = 1 W
    # compute = 1 W * 1.5 * 200 / 1000 = 0.3 g/h per shard
    # link = 40 B * 100 /s * 1e-9 J/B * 1.5 * 200 / 1000 = 1.2e-6 g/h
    assert model.emissions(problem, (0, 0)) == pytest.approx(0.6 + 1.2e-6, rel=1e-12)


def test_memory_and_hops_feasibility(docs: Any) -> None:
    problem = build(docs)
    eu, us = 0, 1
    # eu-north-1 has one node of 2 GPUs; a replica of a 10-layer shard (8.75 GB x 1.2) needs
    # one whole GPU, so it holds the 2 replicas of one shard: 2 shards (4 replicas) do not fit,
    # though 4 x 10.5 GB is far below the 2 x 80 GiB the summed-memory rule (v1) counted.
    assert model.gpus_per_replica(problem, (eu,) * 8) == [1] * 8
    assert model.feasible(problem, (eu,) + (us,) * 7)
    reasons = model.violations(problem, (eu,) * 2 + (us,) * 6)
    assert len(reasons) == 1 and reasons[0].startswith("pool eu-north-1/NVIDIA-H100-80GB-HBM3")
    assert "need 4 GPUs" in reasons[0] and "free: 2 GPUs of 2 GPUs" in reasons[0]
    # maxRegionHops: 1
    reasons = model.violations(problem, (us, eu, us, us, us, us, us, us))
    assert reasons == ["2 region hops exceed maxRegionHops=1"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("64Gi", 64 * 2**30),
        ("128974848", 128974848),
        ("129e6", 129e6),
        ("129M", 129e6),
        ("123Mi", 123 * 2**20),
        ("1.5Gi", 1.5 * 2**30),
        ("500m", 0.5),
        ("1k", 1000),
    ],
)
def test_parse_quantity(value: str, expected: float) -> None:
    assert parsing.parse_quantity(value) == pytest.approx(expected)


@pytest.mark.parametrize("value", ["", "12XB", "Gi", "1e3Mi", "abc"])
def test_parse_quantity_rejects(value: str) -> None:
    with pytest.raises(InputError, match="quantity"):
        parsing.parse_quantity(value, "status.allocatable.memory")


def test_label_selector_semantics() -> None:
    sel = parsing.parse_selector(
        {
            "matchLabels": {"a": "1"},
            "matchExpressions": [
                {"key": "b", "operator": "In", "values": ["x", "y"]},
                {"key": "c", "operator": "NotIn", "values": ["z"]},
                {"key": "d", "operator": "Exists"},
                {"key": "e", "operator": "DoesNotExist"},
            ],
        },
        "sel",
    )
    assert sel.matches({"a": "1", "b": "x", "d": ""})
    assert sel.matches({"a": "1", "b": "y", "c": "w", "d": "1"})
    assert not sel.matches({"a": "1", "b": "q", "d": ""})
    assert not sel.matches({"a": "1", "b": "x", "c": "z", "d": ""})
    assert not sel.matches({"a": "1", "b": "x"})
    assert not sel.matches({"a": "1", "b": "x", "d": "", "e": "1"})
    assert not sel.matches({"a": "2", "b": "x", "d": ""})


BAD_DEPLOYMENTS = [
    ("spec.model.layers", lambda s: s["model"].update(layers=0), "1..100000"),
    ("spec.model.layers", lambda s: s["model"].update(layers="eighty"), "integer"),
    ("spec.model.dtype", lambda s: s["model"].update(dtype="float64"), "unknown dtype"),
    ("spec.sharding.shards", lambda s: s["sharding"].update(shards=81), "exceed"),
    ("spec.workload.tokensPerSecond", lambda s: s["workload"].update(tokensPerSecond=-5), "> 0"),
    ("spec.model.parametersBillions", lambda s: s["model"].pop("parametersBillions"), "required"),
    ("spec.placement.maxRegionHops", lambda s: s["placement"].update(maxRegionHops=-1), "0..1024"),
    (
        "spec.placement.nodeSelector.matchExpressions[0].operator",
        lambda s: s["placement"]["nodeSelector"]["matchExpressions"][0].update(operator="Gt"),
        "In, NotIn",
    ),
    ("spec.workload", lambda s: s.pop("workload"), "required"),
]


@pytest.mark.parametrize(("field", "mutate", "message"), BAD_DEPLOYMENTS)
def test_bad_deployment_names_the_field(field: str, mutate: Any, message: str) -> None:
    doc = load("llama-70b.yaml")
    mutate(doc["spec"])
    with pytest.raises(InputError) as err:
        parsing.parse_deployment(doc)
    assert err.value.field == field
    assert message in str(err.value)


def test_bad_profile_names_the_field() -> None:
    doc = load("gridprofile.yaml")
    doc["spec"]["regions"]["us-east-1"]["intensity"] = [1, 2, 3]
    with pytest.raises(InputError, match="24 hourly values") as err:
        parsing.parse_grid_profile(doc)
    assert err.value.field == "spec.regions.us-east-1.intensity"
    doc = load("gridprofile.yaml")
    doc["spec"]["accelerators"]["NVIDIA-L4"]["joulesPerTeraflop"] = 0
    with pytest.raises(InputError) as err:
        parsing.parse_grid_profile(doc)
    assert err.value.field == "spec.accelerators.NVIDIA-L4.joulesPerTeraflop"


def test_wrong_kind_is_rejected() -> None:
    with pytest.raises(InputError, match="must be InferenceDeployment"):
        parsing.parse_deployment({"kind": "Deployment", "spec": {}})


@pytest.mark.parametrize(("hour", "hours"), [(5, 6), (20, 8), (0, 24)])
def test_window_plan_is_the_sum_of_its_hours(hour: int, hours: int) -> None:
    """forecastHours: emissions on the window's mean CI x hours == the sum over the hours, for
    every placement, so the window's optimum minimises the summed emissions."""
    import itertools
    import random

    from greenshard import instances

    deployment, nodes, profile = instances.synthetic_documents(8, 5)
    rng = random.Random(hour)
    for region in profile["spec"]["regions"].values():
        region["intensity"] = [round(rng.uniform(20, 600), 1) for _ in range(24)]
    dep = parsing.parse_deployment(deployment)
    node_infos = parsing.parse_nodes(nodes)
    prof = parsing.parse_grid_profile(profile)
    window = model.build_problem(dep, node_infos, prof, hour, hours=hours)
    each = [model.build_problem(dep, node_infos, prof, (hour + i) % 24) for i in range(hours)]
    for placement in itertools.product(range(window.num_pools), repeat=window.num_shards):
        total = sum(model.emissions(p, placement) for p in each)
        assert hours * model.emissions(window, placement) == pytest.approx(total, rel=1e-12)


def _cpu_node(name: str, region: str, pods: str | None) -> dict[str, Any]:
    allocatable = {"memory": "512Gi"} | ({"pods": pods} if pods is not None else {})
    return {
        "metadata": {"name": name, "labels": {model.REGION_LABEL: region}},
        "status": {
            "allocatable": allocatable,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def test_pod_slots_bound_a_node_that_has_the_memory() -> None:
    """A node holds at most status.allocatable.pods pods, less the pods bound there: the green
    node has the memory for all 8 shards but 3 free pod slots (5 with none held), so 3 go there
    and the exact solvers agree with enumeration."""
    from factories import brute_force_reference
    from greenshard import feasibility
    from greenshard.solvers import exact

    deployment = parsing.parse_deployment(
        {
            "metadata": {"name": "m"},
            "spec": {
                "model": {"layers": 8, "hiddenSize": 64, "parametersBillions": 1},
                "sharding": {"shards": 8},
                "workload": {"tokensPerSecond": 100},
            },
        }
    )
    nodes = parsing.parse_nodes(
        {"items": [_cpu_node("green", "x", "5"), _cpu_node("grey", "y", None)]}
    )
    profile = parsing.parse_grid_profile(
        {
            "spec": {
                "regions": {"x": {"intensity": 20}, "y": {"intensity": 400}},
                "accelerators": {"cpu": {"joulesPerTeraflop": 10}},
                "links": {  # no link costs: equal shards tie, the tie rule decides
                    "samePoolJoulesPerByte": 0,
                    "sameRegionJoulesPerByte": 0,
                    "crossRegionJoulesPerByte": 0,
                },
            }
        }
    )
    held = {"green": feasibility.NodeUsage(pods=2)}
    problem = model.build_problem(deployment, nodes, profile, 0, held=held)
    assert problem.capacity.pools[0].slots == (3,)
    assert problem.capacity.pools[1].slots is None  # no pods field: no limit
    reference = brute_force_reference(problem)
    assert reference is not None
    assert reference[1] == (0, 0, 0, 1, 1, 1, 1, 1)
    assert exact.solve_exact(problem).placement == reference[1]
    assert exact.milp_lexicographic(problem)[0] == reference[1]
    assert exact.brute_force(problem)[0] == reference[1]
    reasons = model.violations(problem, (0,) * 4 + (1,) * 4)
    assert len(reasons) == 1 and "free pod slots: 3 for 4 pod(s)" in reasons[0], reasons
    # nothing held: 5 slots, 5 shards on the green node
    free = model.build_problem(deployment, nodes, profile, 0)
    assert exact.solve_exact(free).placement == (0,) * 5 + (1,) * 3


def test_a_node_that_reports_no_pod_limit_shows_a_real_count() -> None:
    """In a pool where one node reports allocatable.pods and another does not, the latter never
    limits: it has a slot for each of the deployment's pods (8 shards x 2 replicas), not a
    sentinel that would read as 2**31 in messages and in status.capacity."""
    deployment = parsing.parse_deployment(
        {
            "metadata": {"name": "m"},
            "spec": {
                "model": {"layers": 8, "hiddenSize": 64, "parametersBillions": 1},
                "sharding": {"shards": 8, "replicas": 2},
                "workload": {"tokensPerSecond": 100},
            },
        }
    )
    nodes = parsing.parse_nodes({"items": [_cpu_node("a", "x", "5"), _cpu_node("b", "x", None)]})
    profile = parsing.parse_grid_profile(
        {
            "spec": {
                "regions": {"x": {"intensity": 20}},
                "accelerators": {"cpu": {"joulesPerTeraflop": 10}},
                "links": {
                    "samePoolJoulesPerByte": 0,
                    "sameRegionJoulesPerByte": 0,
                    "crossRegionJoulesPerByte": 0,
                },
            }
        }
    )
    problem = model.build_problem(deployment, nodes, profile, 0)
    assert problem.capacity.pools[0].slots == (5, 16)
    rows = planner.capacity_rows(problem)
    assert rows[0]["freePodSlots"] == 21
    unlimited = model.build_problem(
        deployment, parsing.parse_nodes({"items": [_cpu_node("b", "x", None)]}), profile, 0
    )
    assert "freePodSlots" not in planner.capacity_rows(unlimited)[0]
