"""API errors during reconcile: bounded retries with backoff per object, never a wedged object,
never one object holding up the others."""

from __future__ import annotations

from typing import Any

import pytest
from test_controller import KEY, Clock, FakeApi, InlineSolver, condition, infd, load, run

from greenshard import model, planner
from greenshard.k8s import controller as ctl
from greenshard.k8s import observe
from greenshard.k8s.errors import KubeError
from greenshard.solvers.registry import SolverConfig


@pytest.fixture
def world() -> tuple[ctl.Controller, FakeApi, Clock]:
    nodes = {
        n["metadata"]["name"]: observe.node_facts(n) for n in load("examples/nodes.yaml")["items"]
    }
    caches = observe.Caches(
        nodes=nodes,
        profiles={"default": load("crds/samples/gridprofile.yaml")},
        infds={KEY: infd()},
        shards={},
    )
    api = FakeApi(caches)
    controller = ctl.Controller(api, InlineSolver(), hour=lambda: 12, clock=Clock())
    controller.attach(caches)
    return controller, api, controller.clock


class FlakyApi(FakeApi):
    """FakeApi whose named calls fail while ``failing`` holds them."""

    def __init__(self, caches: observe.Caches) -> None:
        super().__init__(caches)
        self.failing: dict[str, int] = {}  # call -> HTTP status
        self.attempts: dict[str, int] = {}

    def _maybe_fail(self, call: str) -> None:
        self.attempts[call] = self.attempts.get(call, 0) + 1
        if call in self.failing:
            raise KubeError(self.failing[call], "Injected", f"injected {call} failure")

    async def create_object(self, manifest: dict[str, Any]) -> None:
        self._maybe_fail("create")
        await super().create_object(manifest)

    async def post_event(
        self, owner: dict[str, Any], reason: str, message: str, event_type: str = "Normal"
    ) -> None:
        self._maybe_fail("event")
        await super().post_event(owner, reason, message, event_type)


def flaky_world(world: Any) -> tuple[ctl.Controller, FlakyApi, Any]:
    controller, api, clock = world
    flaky = FlakyApi(api.caches)
    controller.api = flaky
    return controller, flaky, clock


def test_an_event_that_cannot_be_posted_does_not_stop_the_plan(world: Any) -> None:
    controller, api, _ = flaky_world(world)
    api.failing["event"] = 500
    run(controller)
    created = [w[1] for w in api.writes if w[0] == "create" and w[1].startswith("StatefulSet/")]
    assert created == [f"StatefulSet/llama-shard-{i}" for i in range(8)]
    body = api.caches.infds[KEY]
    assert condition(body, "Optimized")["reason"] == "ExactOptimum"
    assert api.attempts["event"] == 1


def test_a_failing_write_backs_off_exponentially_then_converges(world: Any) -> None:
    controller, api, clock = flaky_world(world)
    api.failing["create"] = 500
    for _ in range(60):  # 30 s of passes every 0.5 s
        run(controller)
        clock.now += 0.5
    # 1, 2, 4, 8, 16 s apart: 5 or 6 attempts in 30 s, not 60
    assert 4 <= api.attempts["create"] <= 6, api.attempts
    del api.failing["create"]
    clock.now += 32
    run(controller)
    created = [w[1] for w in api.writes if w[0] == "create" and w[1].startswith("StatefulSet/")]
    assert created == [f"StatefulSet/llama-shard-{i}" for i in range(8)]
    assert controller.records[KEY].failures == 0


class CrashOnce:
    def __init__(self) -> None:
        self.calls = 0

    async def plan(self, problem: model.Problem, config: SolverConfig) -> planner.Plan:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("solver process crashed")
        return planner.plan(problem, config)


def test_a_crash_before_the_first_plan_is_retried_not_forgotten(world: Any) -> None:
    controller, api, clock = world
    controller.solver = CrashOnce()
    run(controller)
    assert "status" not in api.caches.infds[KEY]
    run(controller)  # backing off: nothing yet
    assert controller.solver.calls == 1
    clock.now += 1.5
    run(controller)
    assert controller.solver.calls == 2
    assert condition(api.caches.infds[KEY], "Optimized")["reason"] == "ExactOptimum"


def test_one_failing_deployment_does_not_hold_up_another(world: Any) -> None:
    controller, api, clock = flaky_world(world)
    other = infd()
    other["metadata"] = {**other["metadata"], "name": "other", "uid": "u-2"}
    # llama books 16 of the 18 H100s of eu-north-1 and us-east-1: other goes to Sydney
    other["spec"]["sharding"]["replicas"] = 1
    other["spec"]["placement"] = {
        "nodeSelector": {
            "matchLabels": {
                "topology.kubernetes.io/region": "ap-southeast-2",
                "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
            }
        }
    }
    api.caches.infds[("ml", "other")] = other
    original = api.create_object

    async def create(manifest: dict[str, Any]) -> None:
        if manifest["metadata"]["name"].startswith("llama"):
            raise KubeError(403, "Forbidden", "quota exceeded")
        await original(manifest)

    api.create_object = create  # type: ignore[method-assign]
    for _ in range(4):
        run(controller)
        clock.now += 1
    created = [w[1] for w in api.writes if w[0] == "create"]
    assert created[-16:-8] == [f"StatefulSet/other-shard-{i}" for i in range(8)]
    assert not [c for c in created if "/llama" in c]
    assert controller.records[("ml", "llama")].failures >= 2
    assert controller.records[("ml", "other")].failures == 0


def test_a_foreign_service_account_in_the_template_is_refused(world: Any) -> None:
    controller, api, _ = world
    body = api.caches.infds[KEY]
    body["spec"]["template"]["spec"]["serviceAccountName"] = "cluster-admin-sa"
    run(controller)
    degraded = condition(body, "Degraded")
    assert degraded["status"] == "True"
    assert degraded["reason"] == "InvalidSpec"
    assert (
        "spec.template.spec.serviceAccountName: 'cluster-admin-sa' is not allowed"
        in (degraded["message"])
    )
    assert "workloads.allowedServiceAccounts" in degraded["message"]
    assert not [w for w in api.writes if w[0] == "create"]
    assert api.events[-1][0] == "InvalidSpec"
    # the chart allows it: planned and applied
    controller.allowed_service_accounts = frozenset({"cluster-admin-sa"})
    body["metadata"]["generation"] = 2
    run(controller)
    assert condition(body, "Degraded")["status"] == "False"
    # the front door, 8 headless Services, 8 StatefulSets, their 8 PodDisruptionBudgets
    assert len([w for w in api.writes if w[0] == "create"]) == 25


# ------------------------------------------------------- failures are loud and bounded (#17)


class RefusingApi(FlakyApi):
    """FlakyApi whose replace and delete can fail too, with the API's own message."""

    def __init__(self, caches: observe.Caches) -> None:
        super().__init__(caches)
        self.messages: dict[str, str] = {}

    def _maybe_fail(self, call: str) -> None:
        self.attempts[call] = self.attempts.get(call, 0) + 1
        if call in self.failing:
            status = self.failing[call]
            raise KubeError(status, "Refused", self.messages.get(call, f"injected {status}"))

    async def replace_object(self, manifest: dict[str, Any], current: dict[str, Any]) -> None:
        self._maybe_fail("replace")
        await super().replace_object(manifest, current)


def refusing_world(world: Any) -> tuple[ctl.Controller, RefusingApi, Any]:
    controller, api, clock = world
    refusing = RefusingApi(api.caches)
    controller.api = refusing
    return controller, refusing, clock


def retry(controller: ctl.Controller, clock: Any, times: int = 1) -> None:
    """Passes after the backoff each time (it never waits more than 300 s)."""
    for _ in range(times):
        clock.now += 301
        run(controller)


def warnings(api: FakeApi) -> list[str]:
    return [reason for reason, _ in api.events if reason != "Planned"]


def test_forbidden_is_degraded_naming_the_verb_and_resource_once(world: Any) -> None:
    controller, api, clock = refusing_world(world)
    api.failing["create"] = 403
    api.messages["create"] = (
        'services is forbidden: User "system:serviceaccount:greenshard-system:greenshard" '
        'cannot create resource "services" in API group "" in the namespace "ml"'
    )
    run(controller)
    body = api.caches.infds[KEY]
    degraded = condition(body, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "Forbidden")
    message = degraded["message"]
    assert message.startswith(
        "create Service ml/llama was refused (403 Refused: services is forbidden: User "
    )
    assert "may not create services in namespace ml" in message
    assert "RBAC" in message and "ResourceQuota" in message
    assert condition(body, "Optimized")["status"] == "True"
    assert api.attempts["create"] == 1  # the first refusal stops the writes
    retry(controller, clock, 4)
    assert api.attempts["create"] == 5
    assert warnings(api) == ["Forbidden"]  # one Event for the whole time it lasts
    del api.failing["create"]
    retry(controller, clock)
    assert condition(body, "Degraded")["status"] == "False"
    assert controller.records[KEY].failures == 0
    # the same refusal later is a new failure: a new Event
    api.failing["create"] = 403
    body["spec"]["sharding"]["shards"] = 9
    body["metadata"]["generation"] = 2
    run(controller)
    assert [w for w in warnings(api) if w != "Moved"] == ["Forbidden", "Forbidden"]


def test_an_invalid_object_is_apply_failed_with_the_api_message(world: Any) -> None:
    controller, api, clock = refusing_world(world)
    run(controller)
    api.failing["replace"] = 422
    api.messages["replace"] = (
        'StatefulSet.apps "llama-shard-0" is invalid: spec.template.spec.containers[0].image: '
        "Required value"
    )
    body = api.caches.infds[KEY]
    body["spec"]["template"]["spec"]["containers"][0]["image"] = "pause:2"
    body["metadata"]["generation"] = 2
    run(controller)
    degraded = condition(body, "Degraded")
    assert degraded["reason"] == "ApplyFailed"
    assert degraded["message"] == (
        "update StatefulSet ml/llama-shard-0 was rejected (422 Refused: StatefulSet.apps "
        '"llama-shard-0" is invalid: spec.template.spec.containers[0].image: Required value)'
    )
    assert warnings(api) == ["ApplyFailed"]
    assert api.attempts["replace"] == 1
    retry(controller, clock, 3)
    assert warnings(api) == ["ApplyFailed"]
    del api.failing["replace"]
    retry(controller, clock)
    assert condition(body, "Degraded")["status"] == "False"


@pytest.mark.parametrize(("call", "status"), [("create", 500), ("create", 429), ("create", 0)])
def test_transient_errors_are_quiet_then_api_unavailable_after_five(
    world: Any, call: str, status: int
) -> None:
    controller, api, clock = refusing_world(world)
    api.failing[call] = status
    run(controller)
    retry(controller, clock, ctl.API_FAILURES_DEGRADED - 2)
    # four passes in a row failed: logged and retried, nothing shown yet
    assert api.attempts[call] == ctl.API_FAILURES_DEGRADED - 1
    assert "status" not in api.caches.infds[KEY]
    assert warnings(api) == []
    retry(controller, clock)
    body = api.caches.infds[KEY]
    degraded = condition(body, "Degraded")
    assert degraded["reason"] == "ApiUnavailable"
    assert degraded["message"].startswith(
        "the Kubernetes API failed 5 or more attempts in a row, the last: create Service ml/llama "
        f"failed ({status} Refused: "
    )
    retry(controller, clock, 3)
    assert warnings(api) == ["ApiUnavailable"]
    del api.failing[call]
    retry(controller, clock)
    assert condition(body, "Degraded")["status"] == "False"
    assert controller.records[KEY].api_failures == 0


def test_a_replace_that_raced_another_write_is_retried_not_degraded(world: Any) -> None:
    controller, api, clock = refusing_world(world)
    run(controller)
    api.make_available()
    run(controller)
    body = api.caches.infds[KEY]
    api.failing["replace"] = 409  # stale resourceVersion
    body["spec"]["template"]["spec"]["containers"][0]["image"] = "pause:2"
    body["metadata"]["generation"] = 2
    run(controller)
    assert condition(body, "Degraded")["status"] == "False"
    assert controller.records[KEY].failures == 1
    del api.failing["replace"]
    retry(controller, clock)
    assert api.attempts["replace"] == 1 + 8  # the refused one, then every StatefulSet
    assert condition(body, "Degraded")["status"] == "False"
    assert body["status"]["observedGeneration"] == 2
    assert warnings(api) == []


def test_an_invalid_template_posts_one_event_not_one_per_pass(world: Any) -> None:
    controller, api, _ = world
    body = api.caches.infds[KEY]
    body["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "limits": {"nvidia.com/gpu": "4"}
    }
    for _ in range(5):
        run(controller)
    assert condition(body, "Degraded")["reason"] == "InvalidTemplate"
    assert warnings(api) == ["InvalidTemplate"]


def test_the_readme_documents_every_degraded_reason() -> None:
    """The reasons the controller sets (planning, template, applying) are each in "Reading
    status" and the apply ones in Troubleshooting."""
    import re

    from test_controller import ROOT

    source = "".join(
        (ROOT / "operator/greenshard/k8s" / f).read_text()
        for f in ("controller.py", "observe.py", "shardsets.py")
    )
    reasons = set(re.findall(r'(?:Invalid|Trouble)\(\s*"([A-Z]\w+)"', source))
    assert {"Conflict", "Forbidden", "ApplyFailed", "ApiUnavailable", "InvalidTemplate"} <= reasons
    readme = (ROOT / "README.md").read_text()
    status = readme[readme.index("### Reading status") : readme.index("### When it re-plans")]
    assert sorted(r for r in reasons if f"`{r}`" not in status) == []
    trouble = readme[readme.index("## Troubleshooting") :]
    for reason in ("Conflict", "Forbidden", "ApplyFailed", "ApiUnavailable"):
        assert f"reason `{reason}`" in trouble


def test_a_refused_budget_stops_no_shard_and_says_which_right_is_missing(world: Any) -> None:
    """A chart whose ClusterRole predates the PodDisruptionBudgets: the StatefulSets run,
    Degraded Forbidden names poddisruptionbudgets.policy."""
    controller, api, _ = world
    original = api.create_object

    async def create(manifest: dict[str, Any]) -> None:
        if manifest["kind"] == "PodDisruptionBudget":
            raise KubeError(403, "Forbidden", "poddisruptionbudgets.policy is forbidden")
        await original(manifest)

    api.create_object = create  # type: ignore[method-assign]
    run(controller)
    created = [w for v, w in api.writes if v == "create"]
    assert created[-8:] == [f"StatefulSet/llama-shard-{i}" for i in range(8)]
    api.make_available()
    controller.records[KEY].retry_at = float("-inf")
    run(controller)
    body = api.caches.infds[KEY]
    degraded = condition(body, "Degraded")
    assert degraded["reason"] == "Forbidden"
    assert "may not create poddisruptionbudgets.policy in namespace ml" in degraded["message"]
    assert condition(body, "Ready")["status"] == "True"  # the shards themselves run


def test_a_namespace_being_deleted_is_not_an_rbac_problem() -> None:
    """403 "being terminated" comes from a namespace on its way out: retried quietly, never
    Degraded Forbidden with advice about the chart's RBAC."""
    from greenshard.k8s import shardsets

    gone = KubeError(
        403,
        "Forbidden",
        'statefulsets.apps "x-shard-0" is forbidden: unable to create new content in namespace '
        "ml because it is being terminated",
    )
    refused = shardsets.Refused("create", "StatefulSet", "ml", "x-shard-0", gone)
    assert shardsets.transient(refused)
    assert shardsets.refusal(refused).reason == "ApiUnavailable"
    denied = KubeError(403, "Forbidden", 'statefulsets.apps "x-shard-0" is forbidden: User ...')
    refused = shardsets.Refused("create", "StatefulSet", "ml", "x-shard-0", denied)
    assert shardsets.refusal(refused).reason == "Forbidden"
