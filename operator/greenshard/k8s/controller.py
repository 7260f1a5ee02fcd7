"""The reconcile loop: one pass per InferenceDeployment, reading cached state, writing only diffs.

A reconcile reads as a sentence: **observe** the body and the caches once
(:func:`.observe.observe`), **decide** when the inputs changed or ``reoptimizeInterval`` elapsed
(the bounded solve in :class:`.solving.SolverRunner`, then :func:`greenshard.planner.decide`),
build the **desired** shard Deployments (:func:`.workloads.desired_deployments`, pure),
**apply** the ones whose spec hash differs and delete the extra ones, and **report** the status
(:func:`.report.planned_status`, pure) when it differs. A converged cluster sees no write at all.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from greenshard import carbon, model, planner
from greenshard.errors import DeadlineExceededError, GreenShardError
from greenshard.k8s import pipeline, report, shardsets, tenancy
from greenshard.k8s.conditions import now_iso
from greenshard.k8s.errors import KubeError
from greenshard.k8s.loop import Loop, PatchGate, fingerprint, first
from greenshard.k8s.observe import (
    Caches,
    Invalid,
    Key,
    NodeSet,
    Observed,
    Shown,
    generation_of,
    observe,
    shard_facts,
)
from greenshard.k8s.observe import shown as shown_of
from greenshard.solvers.registry import SolverConfig

log = structlog.get_logger("greenshard.controller")

# The queue's safety net: every deployment is looked at this often even without an event
# (GREENSHARD_FULL_SWEEP_SECONDS); between sweeps a pass visits only the changed and due ones.
FULL_SWEEP_SECONDS = 60.0

# Transient API failures (busy, down, slow, a raced write) are retried quietly with backoff;
# this many passes in a row make the deployment Degraded, reason ApiUnavailable.
API_FAILURES_DEGRADED = 5

# A StatefulSet whose status lags its spec or its pods this long is nudged, and a pod left by a
# gone StatefulSet deleted (shardsets.stale_objects); again after twice as long each time it
# stays so, at most NUDGE_MAX_SECONDS apart.
STALE_STATUS_SECONDS = 60.0
NUDGE_MAX_SECONDS = 960.0


class Outcome(enum.StrEnum):
    """What one reconcile did (the reconcile metric's label)."""

    UPDATED = "updated"  # a status patch was sent
    UNCHANGED = "unchanged"  # nothing to write
    FAILED = "failed"  # the inputs cannot be planned: Degraded
    GONE = "gone"  # the object went away under us (404)
    ERROR = "error"  # an API error or a crash


class Api(Protocol):
    async def read_object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def patch_infd_status(
        self, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]: ...

    async def create_object(self, manifest: dict[str, Any]) -> None: ...

    async def replace_object(self, manifest: dict[str, Any], current: dict[str, Any]) -> None: ...

    async def delete_object(self, kind: str, namespace: str, name: str) -> None: ...

    async def delete_pod(self, namespace: str, name: str) -> None: ...

    async def post_event(
        self, owner: dict[str, Any], reason: str, message: str, event_type: str = "Normal"
    ) -> None: ...


class Solver(Protocol):
    """Plans under a time and memory bound (:class:`.solving.SolverRunner`)."""

    async def plan(self, problem: model.Problem, config: SolverConfig) -> planner.Plan: ...


class Metrics(Protocol):
    """What the loop reports (greenshard.k8s.metrics.Metrics)."""

    def queued(self, depth: int) -> None: ...

    def reconciled(self, result: str, seconds: float) -> None: ...

    def solved(self, seconds: float, fallback_reason: str | None = None) -> None: ...

    def planned(
        self, namespace: str, name: str, grams_per_hour: float, baseline_grams_per_hour: float
    ) -> None: ...

    def forget(self, namespace: str, name: str) -> None: ...

    def moved(self, namespace: str, name: str, shards: int) -> None: ...

    def grid(self, profile: str, intensities: dict[str, float]) -> None: ...


@dataclass
class Record:
    """What the controller remembers about one InferenceDeployment between passes."""

    fingerprint: str = ""
    planned_at: float = float("-inf")
    plan: planner.Plan | None = None
    error: str = ""  # the planning failure last posted as an Event
    warned: set[str] = field(default_factory=set)  # apply troubles (Trouble.key) posted
    api_failures: int = 0  # consecutive passes whose apply hit a transient API error
    failures: int = 0  # consecutive failed reconciles (exponential backoff)
    retry_at: float = float("-inf")
    optimized_at: str = ""
    kept_reason: str = ""
    reoptimize_seconds: float | None = None  # spec.carbon.reoptimizeInterval, once parsed
    gate: PatchGate = field(default_factory=PatchGate)
    booking: tenancy.Booking | None = None  # what this deployment's plan books, per node
    dry_run: bool = False  # spec.mode DryRun: books nothing
    holders: dict[str, dict[str, int]] = field(default_factory=dict)  # node -> who -> GPUs
    # shardsets.stale_objects: "Kind/name" -> (when to act on it next, times acted on so far)
    stale: dict[str, tuple[float, int]] = field(default_factory=dict)


class Controller(Loop):
    def __init__(
        self,
        api: Api,
        solver: Solver,
        metrics: Metrics | None = None,
        hour: Callable[[], int] = carbon.current_utc_hour,
        clock: Callable[[], float] = time.monotonic,
        max_qubits: int = 24,
        allowed_service_accounts: frozenset[str] = frozenset(),
        sweep_seconds: float = FULL_SWEEP_SECONDS,
    ) -> None:
        super().__init__(clock)
        self.api = api
        self.allowed_service_accounts = allowed_service_accounts
        self.max_qubits = max_qubits  # what this operator's memory is sized for
        self.solver = solver
        self.metrics = metrics
        self.hour = hour
        self.caches = Caches()
        self.records: dict[Key, Record] = {}
        # Deleted InferenceDeployments whose pods are still going: what they booked stays held
        # until the last of their pods is gone, so that the GPUs they free are freed at once.
        # Freed pod by pod, two waiting tenants would each re-plan into part of them and split
        # the green pool between them, neither able to take the whole.
        self.departing: dict[Key, tenancy.Booking] = {}
        self.attached = False
        # The queue: keys marked by events, when each key is next due without one, whether
        # everything must be looked at, and the periodic full sweep (a safety net).
        self.dirty: set[Key] = set()
        self.due: dict[Key, float] = {}
        self.everything = True
        self.sweep_seconds = sweep_seconds
        self.next_sweep = float("-inf")
        self.nodes_version = -1  # ParsedNodes.version last looked at
        # The parsed nodes as this pass began (a node change during the pass moves the version:
        # the next pass visits everyone), so that a pass compares the node index once, not
        # once per deployment.
        self.nodes: NodeSet | None = None
        self.gpu_pods: dict[Key, str] = {}  # GPU pods of other tenants -> the node they hold
        self.visited: list[Key] = []  # the keys the last pass reconciled (tests, benchmarks)
        self.visits = 0  # reconciles so far
        self.sweeps = 0  # passes that looked at every key

    def attach(self, caches: Caches) -> None:
        self.caches = caches
        self.attached = True
        self.mark_all()

    def ready(self) -> bool:
        return self.attached

    # ------------------------------------------------------------------------- the queue

    def mark(self, key: Key) -> None:
        """Something about ``key`` changed (its body, an object it owns, one of its pods):
        the next pass visits it."""
        self.dirty.add(key)
        self.wake.set()

    def mark_all(self) -> None:
        """Something every deployment reads changed (capacity, a GridProfile, a deletion):
        the next pass visits them all."""
        self.everything = True
        self.wake.set()

    def pod_event(self, facts: dict[str, Any], deleted: bool = False) -> None:
        """A pod event: ours mark their owner; a GPU pod of anyone else marks every deployment
        when it starts or stops holding a node (not on every status update)."""
        owner = str(facts.get("owner") or "")
        namespace = str(facts.get("namespace") or "")
        if owner and (namespace, owner) in self.caches.infds:
            self.mark((namespace, owner))
            return
        if not facts.get("gpus"):
            return
        pod = (namespace, str(facts.get("name") or ""))
        holding = "" if deleted or not tenancy.holds_capacity(facts) else str(facts["node"])
        # A pod of a deployment already deleted was never tracked here (it was ours): its going
        # frees the GPUs the others wait for.
        orphan_going = bool(owner) and not holding
        if self.gpu_pods.get(pod, "") != holding or orphan_going:
            if holding:
                self.gpu_pods[pod] = holding
            else:
                self.gpu_pods.pop(pod, None)
            self.mark_all()

    def _take(self, now: float) -> list[Key]:
        """The keys this pass visits: the dirty and the due ones, or every one when something
        everybody reads changed or the periodic sweep is due."""
        try:
            self.nodes = self.caches.parsed_nodes.current(self.caches.nodes)
            version = self.caches.parsed_nodes.version
        except Exception:  # a node that does not parse: each deployment reports it
            self.nodes, version = None, -1
        if version != self.nodes_version or version < 0:
            self.nodes_version = version
            self.everything = True
        dirty, self.dirty = self.dirty, set()
        if self.everything or now >= self.next_sweep:
            self.everything = False
            self.next_sweep = now + self.sweep_seconds
            self.sweeps += 1
            return sorted(set(self.caches.infds.keys()) | set(self.records) | dirty)
        dirty.update(key for key, at in self.due.items() if at <= now)
        return sorted(dirty)

    def _schedule(self, key: Key, record: Record, now: float) -> None:
        """When ``key`` must be visited again without any event: its retry after a failure,
        its reoptimizeInterval, and the re-check of a status patch not seen back yet."""
        times = [record.retry_at]
        if record.reoptimize_seconds is not None:
            times.append(record.planned_at + record.reoptimize_seconds)
        if record.gate.patch is not None:
            times.append(record.gate.sent_at + record.gate.window)
        times += [at for at, _ in record.stale.values()]
        future = [t for t in times if t > now]
        if future:
            self.due[key] = min(future)
        else:
            self.due.pop(key, None)

    def _forget(self, key: Key) -> None:
        gone = self.records.pop(key, None)
        if gone is not None and gone.booking is not None and not gone.dry_run:
            self.departing[key] = gone.booking
        self.due.pop(key, None)
        if self.metrics:
            self.metrics.forget(key[0], key[1])

    async def pass_all(self) -> None:
        """Reconcile the InferenceDeployments that changed or are due (every one at a sweep);
        forget the ones that are gone."""
        for key in list(self.departing):
            if key in self.caches.infds or not any(
                tenancy.holds_capacity(facts) for facts in self.caches.pods.get(key) or []
            ):
                del self.departing[key]  # its last pod has gone (or it is back): GPUs free
        keys = self._take(self.clock())
        self.visited = []
        for done, key in enumerate(keys):
            if self.metrics:
                self.metrics.queued(len(keys) - done)
            if key not in self.caches.infds:
                if key in self.records:
                    self._forget(key)
                continue
            body = first(self.caches.infds.get(key))
            if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
                continue
            start = self.heartbeat = self.clock()  # liveness sees every deployment, not passes
            record = self.records.setdefault(key, Record())
            if start < record.retry_at:
                self.due[key] = record.retry_at  # backing off after an error; others go on
                continue
            self.visited.append(key)
            self.visits += 1
            outcome = Outcome.ERROR
            try:
                outcome = await self.reconcile(key, body)
            except KubeError as err:
                log.warning("api error", deployment=f"{key[0]}/{key[1]}", error=str(err))
                if err.status == 404:
                    outcome = Outcome.GONE
            except Exception:  # one bad object must not stop the others
                log.exception("reconcile crashed", deployment=f"{key[0]}/{key[1]}")
            finally:
                if outcome == Outcome.ERROR:
                    self._back_off(record)
                else:
                    record.failures, record.retry_at = 0, float("-inf")
                self._schedule(key, record, self.clock())
                if self.metrics and outcome != Outcome.UNCHANGED:
                    self.metrics.reconciled(outcome, self.clock() - start)
        self.nodes = None  # a reconcile outside a pass looks the nodes up itself
        if self.metrics:
            self.metrics.queued(0)

    def _back_off(self, record: Record) -> None:
        """Retry a failed reconcile after 1, 2, 4 ... 300 s, planning again if it failed
        before it had a plan (its inputs would otherwise look already handled)."""
        record.failures += 1
        record.retry_at = self.clock() + min(300.0, 2.0 ** (record.failures - 1))
        if record.plan is None:
            record.fingerprint = ""

    # ---------------------------------------------------------------------- one deployment

    async def reconcile(self, key: Key, body: Any) -> Outcome:
        """Observe, decide, build the desired Deployments, apply, report."""
        record = self.records.setdefault(key, Record())
        seen = observe(
            key, body, self.caches, self.max_qubits, self.allowed_service_accounts, self.nodes
        )
        if isinstance(seen, Invalid):
            # what reporting the failure reads, parsed once
            return await self._fail(key, body, record, seen, shown_of(body), generation_of(body))
        record.dry_run = seen.settings.mode == "DryRun"
        record.reoptimize_seconds = seen.settings.reoptimize_seconds
        held, record.holders = self._held(key)
        seen = dataclasses.replace(
            seen,
            inputs=fingerprint(
                seen.inputs, sorted((n, u.gpus, u.memory_bytes) for n, u in held.items())
            ),
        )
        if self._due(seen, record):
            failed = await self._decide(seen, record, held)
            if failed is not None:
                return await self._fail(key, body, record, failed, seen.shown, seen.generation)
        plan = record.plan
        if plan is None:
            return Outcome.UNCHANGED
        existing = shard_facts(self.caches, key)
        applied: shardsets.Applied | None = None
        troubles: list[shardsets.Trouble] = []
        if seen.settings.mode == "Apply":
            p = shardsets.pipeline_of(seen.body, plan, seen.deployment.selector)
            wrong = pipeline.template_gpu_problem(seen.template, p.stages)
            if wrong:
                wrong_template = Invalid("InvalidTemplate", wrong)
                return await self._fail(
                    key, body, record, wrong_template, seen.shown, seen.generation
                )
            own = list(self.caches.pods.get(key) or [])
            spare = shardsets.surge_fits(plan, own)
            stale = shardsets.stale_objects(p, existing, own)
            nudge = self._stale(record, stale)
            applied = await shardsets.apply(self.api, p, seen.template, existing, own, spare, nudge)
            self._nudged(key, record, stale, applied.nudged)
            troubles = self._troubles(key, record, shardsets.troubles(p, applied))
            if troubles and all(t.transient for t in troubles):
                return Outcome.ERROR  # back off and retry quietly, as most of these pass
        record.error = ""  # planned and applied: a recurring error gets a new Event
        await self._warn(body, record, troubles)
        wanted = self._planned_status(seen, record, plan, applied, troubles)
        outcome = await self._write(key, record, seen.shown.status, wanted, Outcome.UPDATED)
        return Outcome.ERROR if troubles else outcome

    def _stale(self, record: Record, stale: dict[str, str]) -> frozenset[str]:
        """What of :func:`.shardsets.stale_objects` to act on now: what has been stale for
        :data:`STALE_STATUS_SECONDS` since first seen so, or since it was last acted on for
        twice as long as before. What catches up is forgotten; in steady state nothing is
        stale and nothing is written."""
        now = self.clock()
        record.stale = {
            key: record.stale.get(key, (now + STALE_STATUS_SECONDS, 0)) for key in stale
        }
        return frozenset(key for key, (at, _) in record.stale.items() if at <= now)

    def _nudged(self, key: Key, record: Record, stale: dict[str, str], done: list[str]) -> None:
        now = self.clock()
        for what in done:
            _, count = record.stale[what]
            wait = min(NUDGE_MAX_SECONDS, STALE_STATUS_SECONDS * 2.0 ** (count + 1))
            record.stale[what] = (now + wait, count + 1)
            log.warning(
                "deleted a pod left by a gone StatefulSet"
                if what.startswith("Pod/")
                else "statefulset status stale: nudged its controller",
                deployment=f"{key[0]}/{key[1]}",
                object=what,
                stale=stale[what],
                times=count + 1,
            )

    def _troubles(
        self, key: Key, record: Record, found: list[shardsets.Trouble]
    ) -> list[shardsets.Trouble]:
        """What to show of an apply's troubles: the lasting ones; a transient one only after
        :data:`API_FAILURES_DEGRADED` passes in a row had one (until then it is only logged,
        and the result is all transient: the caller backs off without writing)."""
        passing = [t for t in found if t.transient]
        lasting = [t for t in found if not t.transient]
        if not passing:
            record.api_failures = 0
            return lasting
        record.api_failures += 1
        log.warning(
            "api error",
            deployment=f"{key[0]}/{key[1]}",
            error=passing[0].message,
            attempt=record.api_failures,
        )
        if record.api_failures >= API_FAILURES_DEGRADED:
            return [*lasting, shardsets.unavailable(passing[0], API_FAILURES_DEGRADED)]
        return lasting or passing

    async def _warn(self, body: Any, record: Record, troubles: list[shardsets.Trouble]) -> None:
        """One Warning Event per distinct trouble while it lasts (one that goes away and comes
        back is posted again)."""
        keys = {t.key for t in troubles}
        for trouble in troubles:
            if trouble.key in record.warned:
                continue
            record.warned.add(trouble.key)
            log.warning(
                "apply failed",
                deployment=f"{body['metadata'].get('namespace')}/{body['metadata'].get('name')}",
                reason=trouble.reason,
                error=trouble.message,
            )
            await self._event(body, trouble.reason, trouble.message, "Warning")
        record.warned = keys

    def _held(self, key: Key) -> tuple[dict[str, Any], dict[str, dict[str, int]]]:
        """GPUs others hold per node: foreign pods, and every other InferenceDeployment's
        booking (its plan made here if any, else its status), or its pods where larger.
        A DryRun deployment books nothing; a deleted one books what it did until its last pod
        has gone."""
        bookings: dict[Key, tenancy.Booking] = {
            other: booking for other, booking in self.departing.items() if other != key
        }
        for other in self.caches.infds:
            if other == key:
                continue
            body = first(self.caches.infds.get(other)) or {}
            if (body.get("spec") or {}).get("mode") == "DryRun":
                continue  # it only reports a plan: no pods, no GPUs held
            rec = self.records.get(other)
            if rec is not None and rec.booking is not None:
                bookings[other] = rec.booking
            else:
                bookings[other] = tenancy.booking_from_status(body.get("status") or {})
        all_pods = self.caches.pods.all() if hasattr(self.caches.pods, "all") else []
        return tenancy.held_by_others(key, all_pods, bookings)

    def _due(self, seen: Observed, record: Record) -> bool:
        """Re-plan when the inputs changed or the interval elapsed (failures wait too: no busy
        retry of an infeasible deployment)."""
        due = self.clock() - record.planned_at >= seen.settings.reoptimize_seconds
        if seen.inputs == record.fingerprint and not due:
            return False
        record.fingerprint, record.planned_at = seen.inputs, self.clock()
        return True

    async def _decide(
        self, seen: Observed, record: Record, held: dict[str, Any] | None = None
    ) -> Invalid | None:
        """Build, solve under the bound, keep or move; remember the plan. None on success."""
        settings = seen.settings
        try:
            problem = model.build_problem(
                seen.deployment,
                seen.nodes,
                seen.profile,
                self.hour(),
                settings.forecast_hours,
                held=held,
            )
        except GreenShardError as err:
            return Invalid("NoCandidatePool", str(err))
        start = self.clock()
        try:
            fresh = await self.solver.plan(problem, settings.solver)
        except DeadlineExceededError as err:
            return Invalid("SolverTimeout", str(err))
        except GreenShardError as err:
            return Invalid("Infeasible", str(err))
        if self.metrics:
            self.metrics.solved(self.clock() - start, fresh.solution.details.get("fallbackReason"))
            self.metrics.grid(
                settings.grid_profile,
                {p.region: p.intensity for p in problem.pools},
            )
        decision = planner.keep_or_move(
            fresh, seen.shown.placement_in(problem), settings.min_savings_percent
        )
        chosen = decision.plan
        record.kept_reason = decision.kept_reason
        await self._announce(seen, record, chosen)
        # The same answer to the same question keeps the old plan (no status churn); a new
        # replica count or GPUs per replica is a new question even where the pools stay.
        changed = record.plan is None or (
            record.plan.solution.placement != chosen.solution.placement
            or record.plan.problem.pool_keys() != chosen.problem.pool_keys()
            or not model.is_tie(record.plan.emissions, chosen.emissions)
            or record.plan.problem.replicas != chosen.problem.replicas
            or model.gpus_per_replica(record.plan.problem, record.plan.solution.placement)
            != model.gpus_per_replica(chosen.problem, chosen.solution.placement)
        )
        if changed:
            # After a restart the status may already show this very plan: keep its time.
            shown_at = seen.shown.optimized_at
            restart = (
                record.plan is None
                and seen.shown.placement_in(problem) == chosen.solution.placement
            )
            record.optimized_at = str(shown_at) if restart and shown_at else now_iso()
            record.plan = chosen  # an unchanged answer keeps the old plan: no status churn
            booking = tenancy.booking_from_packing(
                model.packing(chosen.problem, chosen.solution.placement),
                model.gpus_per_replica(chosen.problem, chosen.solution.placement),
                model.memory_per_replica(chosen.problem, chosen.solution.placement),
            )
            before = record.booking or tenancy.booking_from_status(seen.shown.status)
            if booking != before and seen.settings.mode != "DryRun":
                self.mark_all()  # what the others see as held changed
            record.booking = booking
        record.error = ""
        if self.metrics:
            self.metrics.planned(
                seen.key[0], seen.key[1], chosen.emissions, chosen.baseline_emissions
            )
        return None

    async def _announce(self, seen: Observed, record: Record, chosen: planner.Plan) -> None:
        """One Event when the shown placement moves, or on the first plan."""
        now_keys = [chosen.problem.pools[k].key for k in chosen.solution.placement]
        shown = list(seen.shown.pools)
        if shown and shown != now_keys:
            message = report.moved_message(shown, now_keys, seen.shown.grams_per_hour, chosen)
            await self._event(seen.body, "Moved", message)
            if self.metrics:
                moved = sum(a != b for a, b in zip(shown, now_keys, strict=False))
                self.metrics.moved(
                    seen.key[0], seen.key[1], moved + abs(len(shown) - len(now_keys))
                )
        elif not shown and record.plan is None:
            await self._event(seen.body, "Planned", report.planned_message(chosen))

    async def _event(
        self, owner: Any, reason: str, message: str, event_type: str = "Normal"
    ) -> None:
        """Events are best effort: one that cannot be posted must not stop the reconcile that
        follows it (a failed Planned event once left a deployment unplanned until its
        reoptimizeInterval, since its inputs no longer looked new)."""
        try:
            await self.api.post_event(dict(owner), reason, message, event_type)
        except KubeError as err:
            log.warning(
                "event not posted",
                deployment=f"{owner['metadata'].get('namespace')}/{owner['metadata'].get('name')}",
                reason=reason,
                error=str(err),
            )

    @staticmethod
    def _planned_status(
        seen: Observed,
        record: Record,
        plan: planner.Plan,
        applied: shardsets.Applied | None,
        troubles: list[shardsets.Trouble] | None = None,
    ) -> dict[str, Any]:
        names = (
            applied.names
            if applied
            else [pipeline.stage_name(seen.name, s.index) for s in plan.problem.shards]
        )
        wanted = report.planned_status(
            plan,
            names if applied else [""] * len(names),
            record.optimized_at,
            record.kept_reason,
            seen.settings.forecast_hours,
            seen.settings.mode == "DryRun",
            applied.ready if applied else [],
            seen.shown.conditions,
            seen.generation,
            now_iso(),
            report.degraded_condition(
                [(t.reason, t.message) for t in troubles or [] if not t.transient]
            ),
        )
        held = tenancy.holders_by_pool({p.key: p.nodes for p in plan.problem.pools}, record.holders)
        for row in wanted["capacity"]:
            if row["pool"] in held:
                row["heldBy"] = held[row["pool"]]
        decision = applied.rollout if applied else None
        if decision is not None and decision.moving:
            wanted["rollout"] = {"strategy": decision.strategy, "message": decision.message}
            for cond in wanted["conditions"]:
                if cond["type"] == "Progressing" and cond["status"] == "True":
                    cond["reason"] = f"Moving{decision.strategy}"
                    cond["message"] = decision.message
        else:
            wanted["rollout"] = None
        return wanted

    async def _fail(
        self,
        key: Key,
        body: Any,
        record: Record,
        failure: Invalid,
        view: Shown,
        generation: int,
    ) -> Outcome:
        """Degraded with the error (one Event per new error, ``body`` its owner); the last good
        plan and workloads stay as they are. ``view`` and ``generation``: the status shown and
        the generation, as observe parsed them."""
        wanted = report.failed_status(
            failure.reason,
            failure.message,
            view.conditions,
            generation,
            now_iso(),
        )
        if record.error != failure.message:
            record.error = failure.message
            log.warning(
                "plan failed",
                deployment=f"{key[0]}/{key[1]}",
                reason=failure.reason,
                error=failure.message,
            )
            await self._event(body, failure.reason, failure.message, "Warning")
        return await self._write(key, record, view.status, wanted, Outcome.FAILED)

    async def _write(
        self,
        key: Key,
        record: Record,
        status: Any,
        wanted: dict[str, Any],
        outcome: Outcome,
    ) -> Outcome:
        """Patch only what differs; never resend a patch the cache has not caught up with."""

        async def send(patch: dict[str, Any]) -> None:
            await self.api.patch_infd_status(key[0], key[1], patch)

        if await record.gate.write(status, wanted, self.clock, send):
            return outcome
        return Outcome.UNCHANGED if outcome == Outcome.UPDATED else outcome
