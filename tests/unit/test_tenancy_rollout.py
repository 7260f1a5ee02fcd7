"""Tenants sharing GPUs, and moves that never drop a pipeline stage (pure decisions)."""

from __future__ import annotations

from typing import Any

from greenshard.k8s import rollout, tenancy

A: tenancy.Key = ("ml", "a")
B: tenancy.Key = ("ml", "b")


def pod(
    name: str,
    node: str,
    gpus: int,
    owner: str = "",
    ns: str = "ml",
    phase: str = "Running",
    **labels: str,
) -> dict[str, Any]:
    meta_labels = {"greenshard.io/deployment": owner} if owner else {}
    meta_labels.update(labels)
    return tenancy.pod_facts(
        {
            "metadata": {"name": name, "namespace": ns, "labels": meta_labels},
            "spec": {
                "nodeName": node,
                "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": gpus}}}],
            },
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True"}]},
        }
    )


def test_other_deployments_book_their_plan_or_their_pods_whichever_is_larger() -> None:
    status_b = {
        "placement": [{"shard": 0, "gpusPerReplica": 2}, {"shard": 1, "gpusPerReplica": 1}],
        "packing": {"eu/H100": {"n1": [0, 0], "n2": [1]}},
    }
    bookings = {A: tenancy.Booking(), B: tenancy.booking_from_status(status_b)}
    facts = [
        pod("a-0", "n1", 2, owner="a"),  # ours: not counted
        pod("b-old", "n3", 4, owner="b"),  # b's pod still where an older plan put it
        pod("b-new", "n1", 2, owner="b"),  # b's pod where its plan puts it (booked already)
        pod("x", "n2", 3, ns="research"),  # a foreign pod
        pod("ghost", "n2", 5, owner="deleted-infd"),  # owner gone: a foreign pod like any other
        pod("done", "n2", 8, ns="research", phase="Succeeded"),
    ]
    usage, holders = tenancy.held_by_others(A, facts, bookings)
    assert usage["n1"].gpus == 4  # b books 2 x 2 there; its one pod there is within the booking
    assert usage["n2"].gpus == 1 + 3 + 5
    assert usage["n3"].gpus == 4
    assert holders["n2"] == {"InferenceDeployment ml/b": 1, "pod research/x": 3, "pod ml/ghost": 5}
    pools = tenancy.holders_by_pool({"eu/H100": ("n1", "n2")}, holders)
    assert pools["eu/H100"].startswith("InferenceDeployment ml/b: 5")
    # from b's point of view, a holds nothing yet (no plan, one pod of 2 GPUs on n1)
    usage_b, _ = tenancy.held_by_others(B, facts, {A: tenancy.Booking(), B: tenancy.Booking()})
    assert usage_b["n1"].gpus == 2 and "n3" not in usage_b


def test_booking_from_packing_counts_each_replica() -> None:
    booking = tenancy.booking_from_packing({"p": {"n1": [0, 0, 1], "n2": [1]}}, [2, 3])
    assert booking.gpus == {"n1": 7, "n2": 3}


def test_pod_slots_and_cpu_memory_are_booked_too() -> None:
    """Every replica is a pod: a plan books one pod slot per replica on its node, and on a cpu
    pool its memory (from status too, so a restarted operator sees it)."""
    status_b = {
        "placement": [
            {"shard": 0, "gpusPerReplica": 0, "memoryBytesPerReplica": 3 * 2**30},
            {"shard": 1, "gpusPerReplica": 1, "memoryBytesPerReplica": 0},
        ],
        "packing": {"eu/cpu": {"c1": [0, 0]}, "eu/H100": {"n1": [1]}},
    }
    bookings = {A: tenancy.Booking(), B: tenancy.booking_from_status(status_b)}
    facts = [
        pod("x", "c1", 0, ns="research"),
        pod("y", "c1", 0, ns="research"),
        pod("b-0", "c1", 0, owner="b"),  # within b's booking of 2 pods there
        pod("a-0", "c1", 0, owner="a"),  # ours
    ]
    usage, _ = tenancy.held_by_others(A, facts, bookings)
    assert usage["c1"].pods == 2 + 2  # two foreign pods, b's two replicas
    assert usage["c1"].memory_bytes == 2 * 3 * 2**30
    assert usage["n1"].pods == 1 and usage["n1"].gpus == 1
    planned = tenancy.booking_from_packing({"p": {"c1": [0, 0, 1]}}, [0, 0], [5, 7])
    assert planned.pods == {"c1": 3} and planned.memory == {"c1": 17}


def stages(replicas: int, rev: str = "new") -> list[rollout.StageState]:
    return [rollout.StageState(s, f"x-shard-{s}", replicas, rev, True) for s in range(2)]


def pods(
    revs: dict[int, str], ready: bool = True, deleting: bool = False
) -> list[rollout.PodState]:
    return [
        rollout.PodState(f"x-shard-{s}-{r}", s, r, rev, ready, deleting)
        for r, rev in revs.items()
        for s in range(2)
    ]


def test_nothing_moving_keeps_r_replicas() -> None:
    d = rollout.decide(stages(2), pods({0: "new", 1: "new"}), 2, surge_fits=True)
    assert (d.replicas, d.delete, d.moving) == (2, [], False)


def test_surge_starts_a_spare_then_replaces_one_pipeline_at_a_time() -> None:
    # a move: both pipelines run the old revision; a spare fits
    d = rollout.decide(stages(2), pods({0: "old", 1: "old"}), 2, surge_fits=True)
    assert d.strategy == rollout.SURGE and d.replicas == 3 and d.delete == []
    # spare (index 2) not Ready yet: nothing deleted
    not_ready = pods({0: "old", 1: "old"}) + pods({2: "new"}, ready=False)
    d = rollout.decide(stages(3), not_ready, 2, surge_fits=False)
    assert d.delete == [] and "spare" in d.message
    # spare Ready: replace pipeline 1 (the highest old one), all its stages
    d = rollout.decide(stages(3), pods({0: "old", 1: "old", 2: "new"}), 2, surge_fits=False)
    assert d.delete == ["x-shard-0-1", "x-shard-1-1"] and d.replicas == 3
    # pipeline 1 restarting: pipeline 0 waits
    state = pods({0: "old", 2: "new"}) + pods({1: "new"}, ready=False)
    d = rollout.decide(stages(3), state, 2, surge_fits=False)
    assert d.delete == [] and "waiting for pipeline replica 1" in d.message
    d = rollout.decide(stages(3), pods({0: "old", 1: "new", 2: "new"}), 2, surge_fits=False)
    assert d.delete == ["x-shard-0-0", "x-shard-1-0"]
    # all replaced: back to R (the spare goes)
    d = rollout.decide(stages(3), pods({0: "new", 1: "new", 2: "new"}), 2, surge_fits=False)
    assert d.replicas == 2 and d.delete == []


def test_without_room_one_pipeline_at_a_time() -> None:
    d = rollout.decide(stages(2), pods({0: "old", 1: "old"}), 2, surge_fits=False)
    assert d.strategy == rollout.ONE_AT_A_TIME and d.replicas == 2
    assert d.delete == ["x-shard-0-1", "x-shard-1-1"]
    assert "no GPUs for a spare" in d.message
    # never two pipelines down at once
    state = pods({0: "old"}) + pods({1: "new"}, ready=False)
    assert rollout.decide(stages(2), state, 2, surge_fits=False).delete == []


def test_waits_for_the_statefulset_controller() -> None:
    unseen = [rollout.StageState(0, "x-shard-0", 2, "", True)]
    assert rollout.decide(unseen, pods({0: "old"}), 2, surge_fits=True).delete == []


def test_fewer_replicas_and_a_move_replaces_the_leftover_spare() -> None:
    """R 2 -> 1 with a new placement: the old pipeline 1 becomes the spare; on OnDelete it would
    keep its old template forever, so it is replaced first, while pipeline 0 serves."""
    d = rollout.decide(stages(2), pods({0: "old", 1: "old"}), 1, surge_fits=True)
    assert d.strategy == rollout.SURGE and d.replicas == 2
    assert d.delete == ["x-shard-0-1", "x-shard-1-1"]
    # being replaced: wait for it, delete nothing else
    state = pods({0: "old"}) + pods({1: "old"}, deleting=True)
    d = rollout.decide(stages(2), state, 1, surge_fits=True)
    assert d.delete == [] and "spare" in d.message
    # the spare is Ready on the new template: now pipeline 0
    d = rollout.decide(stages(2), pods({0: "old", 1: "new"}), 1, surge_fits=True)
    assert d.delete == ["x-shard-0-0", "x-shard-1-0"]
