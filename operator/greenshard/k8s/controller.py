"""The reconcile loop: one pass per InferenceDeployment, reading cached state, writing only diffs.

Reads come from caches fed by kopf indexes (nodes, GridProfiles, InferenceDeployments, shard
Deployments), so a pass costs no API call. A pass re-plans when the deployment's inputs changed
(spec, candidate-node facts, GridProfile) or its ``reoptimizeInterval`` elapsed (the hour's
intensity moves), then applies: shard Deployments whose spec hash differs, removed shards, and
the status when it differs. A converged cluster therefore sees no write at all.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import structlog

from greenshard import carbon, model, planner
from greenshard.errors import DeadlineExceededError, GreenShardError
from greenshard.k8s import resources, workloads
from greenshard.k8s.errors import KubeError
from greenshard.solvers import base

log = structlog.get_logger("greenshard.controller")

Key = tuple[str, str]


class Api(Protocol):
    async def patch_infd_status(
        self, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]: ...

    async def create_deployment(self, manifest: dict[str, Any]) -> None: ...

    async def replace_deployment(self, manifest: dict[str, Any], resource_version: str) -> None: ...

    async def delete_deployment(self, namespace: str, name: str) -> None: ...

    async def post_event(
        self, owner: dict[str, Any], reason: str, message: str, event_type: str = "Normal"
    ) -> None: ...


class Planner(Protocol):
    async def plan(self, problem: model.Problem, config: Any) -> planner.Plan: ...


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
    error: str = ""
    failures: int = 0  # consecutive failed reconciles (exponential backoff)
    retry_at: float = float("-inf")
    optimized_at: str = ""
    kept_reason: str = ""
    gate: resources.PatchGate = field(default_factory=resources.PatchGate)


@dataclass
class Caches:
    """Current cluster state, keyed as the kopf indexes key it."""

    nodes: Mapping[str, Any] = field(default_factory=dict)  # name -> node body
    profiles: Mapping[str, Any] = field(default_factory=dict)  # name -> GridProfile body
    infds: Mapping[Key, Any] = field(default_factory=dict)  # (ns, name) -> body
    shards: Any = field(default_factory=dict)  # .get((ns, owner)) -> {name: facts}


def _first(value: Any) -> Any:
    """kopf indexes hold a store (an iterable of values) per key; plain dicts hold the value."""
    if isinstance(value, Mapping) or value is None:
        return value
    for item in value:
        return item
    return None


def fingerprint(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def node_facts(body: Mapping[str, Any]) -> dict[str, Any]:
    """The facts of a node that planning reads (not heartbeats)."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return {
        "metadata": {"name": meta.get("name"), "labels": dict(meta.get("labels") or {})},
        "spec": {"unschedulable": bool((body.get("spec") or {}).get("unschedulable"))},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "allocatable": {"memory": (status.get("allocatable") or {}).get("memory", "0")},
        },
    }


def deployment_facts(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "generation": meta.get("generation", 0),
        "resourceVersion": meta.get("resourceVersion", ""),
        "annotations": dict(meta.get("annotations") or {}),
        "labels": dict(meta.get("labels") or {}),
        "replicas": (body.get("spec") or {}).get("replicas", 1),
        "status": dict(body.get("status") or {}),
    }


def shard_available(facts: Mapping[str, Any], desired_hash: str) -> bool:
    status = facts.get("status") or {}
    replicas = facts.get("replicas", 1)
    return bool(
        facts.get("annotations", {}).get(workloads.HASH_ANNOTATION) == desired_hash
        and status.get("observedGeneration", 0) >= facts.get("generation", 0)
        and status.get("updatedReplicas", 0) == replicas
        and status.get("availableReplicas", 0) == replicas
        and status.get("replicas", 0) == replicas
    )


async def idle(wake: asyncio.Event, stopped: asyncio.Event, seconds: float) -> None:
    """Sleep until woken, stopped, or ``seconds`` pass; clears the wake-up first."""
    wake.clear()
    waiter = asyncio.ensure_future(wake.wait())
    stopper = asyncio.ensure_future(stopped.wait())
    await asyncio.wait({waiter, stopper}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    stopper.cancel()


class Controller:
    def __init__(
        self,
        api: Api,
        solver: Planner,
        metrics: Metrics | None = None,
        hour: Callable[[], int] = carbon.current_utc_hour,
        clock: Callable[[], float] = time.monotonic,
        max_qubits: int = 24,
        allowed_service_accounts: frozenset[str] = frozenset(),
    ) -> None:
        self.api = api
        self.allowed_service_accounts = allowed_service_accounts
        self.max_qubits = max_qubits  # what this operator's memory is sized for
        self.solver = solver
        self.metrics = metrics
        self.hour = hour
        self.clock = clock
        self.caches = Caches()
        self.records: dict[Key, Record] = {}
        self.wake = asyncio.Event()
        self.heartbeat = clock()
        self.attached = False

    def attach(self, caches: Caches) -> None:
        self.caches = caches
        self.attached = True
        self.wake.set()

    # ---------------------------------------------------------------------------- the loop

    async def run(self, stopped: asyncio.Event, idle_seconds: float = 1.0) -> None:
        """Reconcile every known InferenceDeployment on each wake-up (or each idle_seconds)."""
        while not stopped.is_set():
            self.heartbeat = self.clock()
            if self.attached:
                await self.pass_all()
            await idle(self.wake, stopped, idle_seconds)

    async def pass_all(self) -> None:
        keys = sorted(self.caches.infds.keys())
        for key in list(self.records):
            if key not in self.caches.infds:
                del self.records[key]
                if self.metrics:
                    self.metrics.forget(key[0], key[1])
        for done, key in enumerate(keys):
            if self.metrics:
                self.metrics.queued(len(keys) - done)
            body = _first(self.caches.infds.get(key))
            if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
                continue
            start = self.heartbeat = self.clock()  # liveness sees every deployment, not passes
            record = self.records.setdefault(key, Record())
            if start < record.retry_at:
                continue  # backing off after an error; others go on
            result = "error"
            try:
                result = await self.reconcile(key, body)
            except KubeError as err:
                log.warning("api error", deployment=f"{key[0]}/{key[1]}", error=str(err))
                if err.status == 404:
                    result = "gone"
            except Exception:  # one bad object must not stop the others
                log.exception("reconcile crashed", deployment=f"{key[0]}/{key[1]}")
            finally:
                if result == "error":
                    self._back_off(record)
                else:
                    record.failures, record.retry_at = 0, float("-inf")
                if self.metrics and result != "unchanged":
                    self.metrics.reconciled(result, self.clock() - start)
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

    async def reconcile(self, key: Key, body: Mapping[str, Any]) -> str:
        record = self.records.setdefault(key, Record())
        meta = body["metadata"]
        generation = int(meta.get("generation", 1))
        spec = body.get("spec") or {}
        status = body.get("status") or {}

        try:
            settings = resources.parse_settings(spec, self.max_qubits)
            resources.check_template(spec.get("template"), self.allowed_service_accounts)
            dspec = resources.deployment_spec(body)
        except GreenShardError as err:
            return await self._fail(key, body, record, "InvalidSpec", str(err))
        profile_body = _first(self.caches.profiles.get(settings.grid_profile))
        if profile_body is None:
            return await self._fail(
                key,
                body,
                record,
                "GridProfileNotFound",
                f"GridProfile {settings.grid_profile!r} not found: create it (e.g. kubectl apply "
                "-f crds/samples/gridprofile.yaml) or set spec.carbon.gridProfile",
            )
        try:
            resources.grid_profile(profile_body)  # validate now; _replan builds the problem
        except GreenShardError as err:
            return await self._fail(
                key,
                body,
                record,
                "InvalidGridProfile",
                f"GridProfile {settings.grid_profile!r}: {err}",
            )

        nodes = [_first(v) for v in self.caches.nodes.values()]
        node_infos = [resources.node_info(n) for n in nodes if n is not None]
        candidates = sorted(
            (n.name, sorted(n.labels.items()), n.memory_bytes)
            for n in node_infos
            if n.ready and not n.unschedulable and dspec.selector.matches(n.labels)
        )
        inputs = fingerprint(
            generation,
            spec,
            candidates,
            profile_body.get("spec"),
            _live_intensities(profile_body),
        )
        due = self.clock() - record.planned_at >= settings.reoptimize_seconds
        if inputs != record.fingerprint or due:
            # Failures wait for a change or the interval too: no busy retry of an infeasible
            # deployment.
            record.fingerprint, record.planned_at = inputs, self.clock()
            outcome = await self._replan(key, body, record, settings, dspec, node_infos)
            if outcome:
                return outcome
        plan = record.plan
        if plan is None:
            return "unchanged"
        record.error = ""  # inputs are good again: a recurring error gets a new Event

        shard_facts = dict(_first(self.caches.shards.get(key)) or {})
        names = [workloads.shard_name(meta["name"], s.index) for s in plan.problem.shards]
        desired = []
        if settings.mode == "Apply":
            desired = [
                workloads.shard_deployment(
                    body,
                    spec.get("template"),
                    shard,
                    len(plan.problem.shards),
                    plan.problem.pools[k],
                    dspec.replicas,
                    dspec.selector,
                )
                for shard, k in zip(plan.problem.shards, plan.solution.placement, strict=True)
            ]
            await self._apply_deployments(key, desired, shard_facts)

        wanted = self._status(body, record, plan, names, desired, shard_facts, settings, generation)
        return await self._write_status(key, record, status, wanted, "updated")

    async def _write_status(
        self,
        key: Key,
        record: Record,
        status: Mapping[str, Any],
        wanted: dict[str, Any],
        result: str,
    ) -> str:
        """Patch only what differs; never resend a patch the cache has not caught up with."""
        patch = record.gate.due(status, wanted, self.clock())
        if patch is None:
            return "unchanged" if result == "updated" else result
        await self.api.patch_infd_status(key[0], key[1], patch)
        record.gate.sent(patch, self.clock())
        return result

    async def _replan(
        self,
        key: Key,
        body: Mapping[str, Any],
        record: Record,
        settings: resources.Settings,
        dspec: model.DeploymentSpec,
        nodes: Iterable[model.NodeInfo],
    ) -> str:
        """Solve; keep the current placement within the hysteresis. '' on success."""
        try:
            problem = model.build_problem(
                dspec,
                nodes,
                resources.grid_profile(_first(self.caches.profiles[settings.grid_profile])),
                self.hour(),
                settings.forecast_hours,
            )
        except GreenShardError as err:
            return await self._fail(key, body, record, "NoCandidatePool", str(err))
        start = self.clock()
        try:
            fresh = await self.solver.plan(problem, settings.solver)
        except DeadlineExceededError as err:
            return await self._fail(key, body, record, "SolverTimeout", str(err))
        except GreenShardError as err:
            return await self._fail(key, body, record, "Infeasible", str(err))
        if self.metrics:
            self.metrics.solved(self.clock() - start, fresh.solution.details.get("fallbackReason"))
            self.metrics.grid(
                settings.grid_profile,
                {p.region: p.intensity for p in problem.pools},
            )
        previous = current_placement(body, problem)
        chosen, kept = apply_hysteresis(fresh, previous, settings.min_savings_percent)
        record.kept_reason = kept
        changed = record.plan is None or (
            record.plan.solution.placement != chosen.solution.placement
            or record.plan.problem.pool_keys() != chosen.problem.pool_keys()
            or not model.is_tie(record.plan.emissions, chosen.emissions)
        )
        shown: list[Any] = [
            row.get("pool") for row in (body.get("status") or {}).get("placement") or []
        ]
        now_keys = [problem.pools[k].key for k in chosen.solution.placement]
        if shown and shown != now_keys:
            await self._event_move(body, shown, now_keys, chosen)
            if self.metrics:
                moved = sum(a != b for a, b in zip(shown, now_keys, strict=False))
                self.metrics.moved(key[0], key[1], moved + abs(len(shown) - len(now_keys)))
        elif not shown and record.plan is None:
            await self._event(
                dict(body),
                "Planned",
                f"placed {problem.num_shards} shards on {_pools_text(chosen)}: "
                f"{chosen.emissions:.3f} gCO2e/h ({chosen.savings_percent:.1f}% below the "
                f"carbon-unaware {chosen.baseline_emissions:.3f})",
            )
        if changed:
            # After a restart the status may already show this very plan: keep its time.
            shown_at = (body.get("status") or {}).get("lastOptimizedTime")
            restart = record.plan is None and previous == chosen.solution.placement
            record.optimized_at = str(shown_at) if restart and shown_at else resources.now_iso()
            record.plan = chosen  # an unchanged answer keeps the old plan: no status churn
        record.error = ""
        if self.metrics:
            self.metrics.planned(key[0], key[1], chosen.emissions, chosen.baseline_emissions)
        return ""

    async def _event(
        self, owner: dict[str, Any], reason: str, message: str, event_type: str = "Normal"
    ) -> None:
        """Events are best effort: one that cannot be posted must not stop the reconcile that
        follows it (a failed Planned event once left a deployment unplanned until its
        reoptimizeInterval, since its inputs no longer looked new)."""
        try:
            await self.api.post_event(owner, reason, message, event_type)
        except KubeError as err:
            log.warning(
                "event not posted",
                deployment=f"{owner['metadata'].get('namespace')}/{owner['metadata'].get('name')}",
                reason=reason,
                error=str(err),
            )

    async def _event_move(
        self,
        body: Mapping[str, Any],
        before_keys: list[Any],
        after_keys: list[str],
        chosen: planner.Plan,
    ) -> None:
        """One Event per move: the shards' old and new pools and the saving."""
        before = ((body.get("status") or {}).get("emissions") or {}).get("gramsPerHour")
        moves = [
            f"shard {s}: {a} -> {b}"
            for s, (a, b) in enumerate(zip(before_keys, after_keys, strict=False))
            if a != b
        ]
        if len(before_keys) != len(after_keys):
            moves.append(f"{len(before_keys)} -> {len(after_keys)} shards")
        saving = ""
        if isinstance(before, int | float) and before > 0:
            saving = (
                f"; {before:.3f} -> {chosen.emissions:.3f} gCO2e/h "
                f"({100.0 * (before - chosen.emissions) / before:.1f}% saved)"
            )
        await self._event(dict(body), "Moved", "; ".join(moves) + saving)

    async def _apply_deployments(
        self, key: Key, desired: list[dict[str, Any]], existing: dict[str, Any]
    ) -> None:
        wanted_names = set()
        for manifest in desired:
            name = manifest["metadata"]["name"]
            wanted_names.add(name)
            facts = existing.get(name)
            want_hash = manifest["metadata"]["annotations"][workloads.HASH_ANNOTATION]
            if facts is None:
                try:
                    await self.api.create_deployment(manifest)
                except KubeError as err:
                    if err.status != 409:
                        raise
                    # Created by an earlier pass whose event has not arrived yet: next pass.
            elif facts.get("annotations", {}).get(workloads.HASH_ANNOTATION) != want_hash:
                await self.api.replace_deployment(manifest, facts.get("resourceVersion", ""))
        for name in sorted(set(existing) - wanted_names):
            await self.api.delete_deployment(key[0], name)

    def _status(
        self,
        body: Mapping[str, Any],
        record: Record,
        plan: planner.Plan,
        names: list[str],
        desired: list[dict[str, Any]],
        shard_facts: Mapping[str, Any],
        settings: resources.Settings,
        generation: int,
    ) -> dict[str, Any]:
        status = body.get("status") or {}
        wanted = resources.plan_status(plan, names, record.optimized_at)
        # g/h are the hourly average over this many hours from emissions.hour
        wanted["emissions"]["forecastHours"] = settings.forecast_hours
        conditions = [
            resources.optimized_condition(plan, record.kept_reason),
            resources.Condition("Degraded", False, "AsExpected", "no error"),
        ]
        if settings.mode == "DryRun":
            conditions += [
                resources.Condition(
                    "Ready",
                    True,
                    "DryRun",
                    "planned only (spec.mode: DryRun): no workloads created",
                ),
                resources.Condition("Progressing", False, "DryRun", "nothing to roll out"),
            ]
        else:
            ready = [
                m["metadata"]["name"]
                for m in desired
                if shard_available(
                    shard_facts.get(m["metadata"]["name"], {}),
                    m["metadata"]["annotations"][workloads.HASH_ANNOTATION],
                )
            ]
            total = len(desired)
            if len(ready) == total:
                conditions += [
                    resources.Condition(
                        "Ready",
                        True,
                        "AllShardsAvailable",
                        f"{total}/{total} shard Deployments available on their chosen pools",
                    ),
                    resources.Condition(
                        "Progressing", False, "RolledOut", "every shard runs where the plan puts it"
                    ),
                ]
            else:
                waiting = [n for n in names if n not in ready]
                conditions += [
                    resources.Condition(
                        "Ready",
                        False,
                        "ShardsNotAvailable",
                        f"{len(ready)}/{total} shard Deployments available; "
                        f"waiting for {', '.join(waiting[:5])}"
                        + (" ..." if len(waiting) > 5 else ""),
                    ),
                    resources.Condition(
                        "Progressing",
                        True,
                        "RollingOut",
                        f"rolling out {len(waiting)} shard Deployment(s)",
                    ),
                ]
        wanted["conditions"] = resources.merge_conditions(
            status.get("conditions") or [], conditions, generation, resources.now_iso()
        )
        wanted["observedGeneration"] = generation
        return wanted

    async def _fail(
        self, key: Key, body: Mapping[str, Any], record: Record, reason: str, message: str
    ) -> str:
        """Degraded with the error; the last good plan and workloads stay as they are."""
        status = body.get("status") or {}
        generation = int(body["metadata"].get("generation", 1))
        conditions = [
            resources.Condition("Degraded", True, reason, message),
            resources.Condition("Optimized", False, reason, message),
        ]
        old = {c.get("type"): c for c in status.get("conditions") or []}
        for kind in ("Ready", "Progressing"):
            if kind in old:
                prev = old[kind]
                conditions.append(
                    resources.Condition(
                        kind,
                        {"True": True, "False": False}.get(prev.get("status", "")),
                        prev.get("reason", "Unknown"),
                        prev.get("message", ""),
                    )
                )
            else:
                conditions.append(
                    resources.Condition(
                        kind, False, reason, "no placement: see the Degraded condition"
                    )
                )
        wanted = {
            "conditions": resources.merge_conditions(
                status.get("conditions") or [], conditions, generation, resources.now_iso()
            ),
            "observedGeneration": generation,
        }
        if record.error != message:
            record.error = message
            log.warning(
                "plan failed", deployment=f"{key[0]}/{key[1]}", reason=reason, error=message
            )
            await self._event(dict(body), reason, message, "Warning")
        return await self._write_status(key, record, status, wanted, "failed")


def _live_intensities(profile_body: Mapping[str, Any]) -> dict[str, Any]:
    """What planning reads from GridProfile status: the intensities (a refresh that only
    moves fetchedAt is no reason to re-plan)."""
    regions = (profile_body.get("status") or {}).get("regions") or {}
    if not isinstance(regions, Mapping):
        return {}
    return {
        str(r): e.get("intensity") if isinstance(e, Mapping) else None for r, e in regions.items()
    }


def _pools_text(plan: planner.Plan) -> str:
    seen: list[str] = []
    for k in plan.solution.placement:
        key = plan.problem.pools[k].key
        if key not in seen:
            seen.append(key)
    return ", ".join(seen)


def current_placement(body: Mapping[str, Any], problem: model.Problem) -> tuple[int, ...] | None:
    """The placement in status, as pool indices of ``problem``, if it still maps onto it."""
    rows = (body.get("status") or {}).get("placement") or []
    if len(rows) != problem.num_shards:
        return None
    keys = problem.pool_keys()
    try:
        return tuple(keys.index(row.get("pool")) for row in rows)
    except ValueError:
        return None


def apply_hysteresis(
    fresh: planner.Plan, previous: tuple[int, ...] | None, min_savings_percent: float
) -> tuple[planner.Plan, str]:
    """Keep ``previous`` unless it became infeasible or the fresh plan saves at least
    ``min_savings_percent`` of its emissions. Returns the plan to apply and why it was kept."""
    keep, current, saving = planner.hysteresis(
        fresh.problem, previous, fresh.solution.placement, fresh.emissions, min_savings_percent
    )
    if not keep or previous is None:
        return fresh, ""
    sol = fresh.solution
    kept_solution = replace(
        sol,
        placement=previous,
        emissions=current,
        gap=base.relative_gap(current, sol.optimum) if sol.optimum is not None else None,
        details={**sol.details, "keptCurrent": True},
    )
    reason = (
        f"kept the current placement ({current:.3f} gCO2e/h): the new optimum "
        f"({fresh.emissions:.3f}) would save {saving:.2f}%, below "
        f"spec.carbon.minSavingsPercent={min_savings_percent:g}"
    )
    return replace(fresh, solution=kept_solution), reason
