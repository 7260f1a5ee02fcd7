"""The status builders are pure: each is checked against the YAML a user would read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from greenshard import parsing, planner
from greenshard.k8s import report
from greenshard.solvers.registry import SolverConfig

ROOT = Path(__file__).resolve().parents[2]
NOW = "2026-01-02T00:00:00Z"
BEFORE = "2026-01-01T00:00:00Z"


def load(path: str) -> Any:
    return yaml.safe_load((ROOT / path).read_text())


def small_plan() -> planner.Plan:
    deployment = load("crds/samples/llama-70b.yaml")
    deployment["metadata"] = {"name": "llama", "namespace": "ml"}
    return planner.decide_inputs(
        parsing.parse_deployment(deployment),
        parsing.parse_nodes(load("examples/nodes.yaml")),
        parsing.parse_grid_profile(load("crds/samples/gridprofile.yaml")),
        12,
        SolverConfig(algorithm="exact"),
    ).plan


def test_a_failure_keeps_ready_and_says_there_is_no_rollout() -> None:
    current = yaml.safe_load(
        f"""
        - type: Ready
          status: "True"
          reason: AllShardsAvailable
          message: 8/8 shard StatefulSets Ready on their chosen nodes
          lastTransitionTime: "{BEFORE}"
          observedGeneration: 1
        - type: Degraded
          status: "False"
          reason: AsExpected
          message: no error
          lastTransitionTime: "{BEFORE}"
          observedGeneration: 1
        """
    )
    got = report.failed_status("Infeasible", "no feasible placement", current, 2, NOW)
    assert got == yaml.safe_load(
        f"""
        conditions:
        - type: Ready
          status: "True"
          reason: AllShardsAvailable
          message: 8/8 shard StatefulSets Ready on their chosen nodes
          lastTransitionTime: "{BEFORE}"
          observedGeneration: 2
        - type: Optimized
          status: "False"
          reason: Infeasible
          message: no feasible placement
          lastTransitionTime: "{NOW}"
          observedGeneration: 2
        - type: Progressing
          status: "False"
          reason: Infeasible
          message: "no placement: see the Degraded condition"
          lastTransitionTime: "{NOW}"
          observedGeneration: 2
        - type: Degraded
          status: "True"
          reason: Infeasible
          message: no feasible placement
          lastTransitionTime: "{NOW}"
          observedGeneration: 2
        observedGeneration: 2
        """
    )


def test_rollout_names_the_shards_still_waiting() -> None:
    names = [f"llama-shard-{i}" for i in range(7)]
    got = report.rollout_conditions(False, names, names[:1])
    assert [(c.type, c.status, c.reason, c.message) for c in got] == [
        (
            "Ready",
            False,
            "ShardsNotAvailable",
            "1/7 shard StatefulSets Ready; waiting for llama-shard-1, llama-shard-2, "
            "llama-shard-3, llama-shard-4, llama-shard-5 ...",
        ),
        ("Progressing", True, "RollingOut", "rolling out 6 shard StatefulSet(s)"),
    ]
    done = report.rollout_conditions(False, names[:2], names[:2])
    assert [(c.reason, c.message) for c in done] == [
        ("AllShardsAvailable", "2/2 shard StatefulSets Ready on their chosen nodes"),
        ("RolledOut", "every shard runs where the plan puts it"),
    ]


def test_a_dry_run_kept_plan_reads_as_yaml() -> None:
    plan = small_plan()
    names = [f"llama-shard-{s.index}" for s in plan.problem.shards]
    got = report.planned_status(
        plan, names, BEFORE, "kept the current placement", 3, True, [], [], 4, NOW
    )
    assert got["conditions"] == yaml.safe_load(
        f"""
        - type: Ready
          status: "True"
          reason: DryRun
          message: "planned only (spec.mode: DryRun): no workloads created"
          lastTransitionTime: "{NOW}"
          observedGeneration: 4
        - type: Optimized
          status: "True"
          reason: KeptCurrent
          message: kept the current placement
          lastTransitionTime: "{NOW}"
          observedGeneration: 4
        - type: Progressing
          status: "False"
          reason: DryRun
          message: nothing to roll out
          lastTransitionTime: "{NOW}"
          observedGeneration: 4
        - type: Degraded
          status: "False"
          reason: AsExpected
          message: no error
          lastTransitionTime: "{NOW}"
          observedGeneration: 4
        """
    )
    assert got["observedGeneration"] == 4
    assert got["lastOptimizedTime"] == BEFORE
    assert got["emissions"]["forecastHours"] == 3
    assert [row["deployment"] for row in got["placement"]] == names
    assert got["poolsSummary"].split(",")[0] == got["placement"][0]["pool"]
    assert got["solver"]["method"] == "exact-bruteforce"


def test_the_move_event_says_what_moved_and_the_saving() -> None:
    plan = small_plan()
    after = [plan.problem.pools[k].key for k in plan.solution.placement]
    before = ["somewhere/else", *after[1:]]
    message = report.moved_message(before, after, 2 * plan.emissions, plan)
    assert message.startswith(f"shard 0: somewhere/else -> {after[0]}; ")
    assert message.endswith("(50.0% saved)")
