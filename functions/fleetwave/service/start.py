"""Starting a rollout: check that the spec may start now, validate the document, resolve and plan the targets,
take the spec's lock, write the ledger, start wave 0.

A start that may not happen now (a blackout window, a CLOSED change calendar, an unmet requirement, a rollout of the
same spec still running) is skipped, not failed: a notice goes to the ledger, which notify turns into a message, and
the caller gets ``{"skipped": True, "reason": ...}``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from fleetwave.adapters.ssm import DocumentInfo
from fleetwave.constants import (
    NOTICE_KIND_START_SKIPPED,
    SCHEDULER_PRINCIPAL,
    SPEC_LOCK_GRACE_SECONDS,
    TRIGGER_SCHEDULE,
)
from fleetwave.core.model import Rollout, RolloutState
from fleetwave.core.planner import NodeInfo, Plan, PlanError, plan_rollout
from fleetwave.core.spec import RolloutSpec, spec_digest
from fleetwave.core.windows import (
    BlockKind,
    StartBlocked,
    blackout_block,
    calendar_block,
    requirement_block,
    running_reason,
    spec_lock_is_free,
)
from fleetwave.errors import ConflictError, NotFoundError, RetryLaterError, SpecRejectedError
from fleetwave.observability import metrics
from fleetwave.service.deps import Deps
from fleetwave.service.rollouts import advance

logger = Logger(service="fleetwave", child=True)


@dataclass(frozen=True)
class StartResult:
    rollout_id: str
    state: str
    target_count: int
    waves: list[int]
    skipped: list[dict[str, str]] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    budget_allowed: int = 0
    document_version: str = ""
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "rollout_id": self.rollout_id,
            "state": self.state,
            "target_count": self.target_count,
            "waves": self.waves,
            "skipped": self.skipped,
            "deferred": self.deferred,
            "budget_allowed": self.budget_allowed,
            "document_version": self.document_version,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class StartSkipped:
    """The spec may not start now; a notice was recorded instead."""

    spec_name: str
    kind: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"skipped": True, "spec_name": self.spec_name, "kind": self.kind, "reason": self.reason}


# How many of the required spec's latest rollouts are read to find its latest ended one.
_REQUIREMENT_LOOKBACK = 20
# Rounds of "read the lock, decide, conditional write" before a start gives up to a concurrent one.
_LOCK_ATTEMPTS = 3


def new_rollout_id(now: datetime, prefix: str = "") -> str:
    """Sortable and short enough for SendCommand's 100-character Comment: ``20261123T004000-a1b2c3`` (remediation
    rollouts carry the prefix ``rem-``, so IAM can tell their ledger items apart)."""
    return f"{prefix}{now:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def check_document(spec: RolloutSpec, document: DocumentInfo, allowed: tuple[str, ...]) -> list[str]:
    """Problems that stop the rollout before any dispatch: wrong type, unknown or missing parameters."""
    problems = []
    if allowed and spec.document.name not in allowed:
        problems.append(f"document.name: {spec.document.name!r} is not on the allow-list ({', '.join(allowed)})")
    if document.document_type != "Command":
        problems.append(
            f"document.name: {document.name!r} is a {document.document_type or 'non-Command'} document; "
            "Run Command needs a Command document"
        )
    if document.status not in ("Active", ""):
        problems.append(f"document.name: {document.name!r} is {document.status}, not Active")
    accepted = document.parameters
    for name in spec.document.parameters:
        if name not in accepted:
            choices = ", ".join(sorted(accepted)) or "none"
            problems.append(
                f"document.parameters.{name}: {document.name} does not accept this parameter (it accepts: {choices})"
            )
    for name, parameter in accepted.items():
        if parameter.required and name not in spec.document.parameters:
            problems.append(f"document.parameters.{name}: required by {document.name} and missing")
    return problems


def resolve_nodes(deps: Deps, spec: RolloutSpec) -> list[NodeInfo]:
    """Every candidate target with SSM's view of it (online, managed, in a session)."""
    candidates = list(dict.fromkeys(spec.targets.instance_ids))
    if spec.targets.tags:
        candidates.extend(i for i in deps.ssm.instances_by_tags(spec.targets.tags) if i not in candidates)
    if not candidates:
        return []
    nodes = deps.ssm.describe_nodes(candidates)
    busy: set[str] = set()
    if spec.sessions.mode == "defer":
        busy = deps.ssm.active_session_targets(candidates)
    return [
        NodeInfo(
            instance_id=n.instance_id,
            managed=n.managed,
            ping_status=n.ping_status,
            platform=n.platform,
            has_active_session=n.instance_id in busy,
        )
        for n in nodes.values()
    ]


def plan_for(deps: Deps, spec: RolloutSpec) -> Plan:
    try:
        return plan_rollout(spec, resolve_nodes(deps, spec))
    except PlanError as error:
        raise SpecRejectedError([str(error)]) from None


def start_blocker(deps: Deps, spec: RolloutSpec, now: datetime) -> StartBlocked | None:
    """Why ``spec`` may not start now, cheapest check first: blackout windows (no call), change calendars (one
    GetCalendarState per calendar), the dev-before-prod requirement (one query of the by-spec index)."""
    blocked = blackout_block(spec, now)
    if blocked is None and spec.calendars:
        blocked = calendar_block(spec, deps.gates.calendar_states(spec.calendars))
    if blocked is None and spec.requires is not None:
        required = deps.ledger.rollouts.find(spec=spec.requires.spec, limit=_REQUIREMENT_LOOKBACK)
        blocked = requirement_block(spec, required, now)
    return blocked


def _rollout_or_none(deps: Deps, rollout_id: str) -> Rollout | None:
    try:
        return deps.ledger.rollouts.get(rollout_id)
    except NotFoundError:
        return None


def claim_spec(deps: Deps, spec_name: str, rollout_id: str, now: datetime) -> StartBlocked | None:
    """Make ``rollout_id`` the one running rollout of ``spec_name``, or say which rollout still holds it.

    Race-safe: the lock item changes only by a conditional write from the state that was read, so of two starts at
    once exactly one wins; the other re-reads and finds the winner holding the lock. Crash-safe: the lock is never
    released explicitly; it is free once its holder ended (read here), or after a grace period when its holder was
    never recorded (the start crashed in between).
    """
    locks = deps.ledger.locks
    grace = timedelta(seconds=SPEC_LOCK_GRACE_SECONDS)
    for _ in range(_LOCK_ATTEMPTS):
        lock = locks.spec_lock(spec_name)
        if lock is not None:
            holder = _rollout_or_none(deps, lock.rollout_id)
            if not spec_lock_is_free(
                holder, holder_id=lock.rollout_id, acquired_at=lock.acquired_at, now=now, grace=grace
            ):
                return StartBlocked(BlockKind.RUNNING, running_reason(spec_name, holder, lock.rollout_id))
        try:
            locks.claim_spec_lock(spec_name, rollout_id, now, replacing=lock)
            return None
        except ConflictError:
            continue  # another start changed the lock between our read and our write: read it again
    return StartBlocked(BlockKind.RUNNING, f"another start of {spec_name!r} is in progress")


def skip_start(
    deps: Deps, spec: RolloutSpec, blocked: StartBlocked, *, trigger: str, started_by: str, now: datetime
) -> StartSkipped:
    """Notify instead of starting: a notice item in the ledger (notify publishes it)."""
    deps.ledger.records.put_notice(
        spec.name,
        NOTICE_KIND_START_SKIPPED,
        blocked.reason,
        now,
        extra={"blocked_by": blocked.kind.value, "trigger": trigger, "started_by": started_by or None},
    )
    metrics.add_metric(name="RolloutStartsSkipped", unit="Count", value=1)
    logger.warning("start of %s skipped: %s", spec.name, blocked.reason, extra={"blocked_by": blocked.kind.value})
    return StartSkipped(spec_name=spec.name, kind=blocked.kind.value, reason=blocked.reason)


def start_rollout(
    deps: Deps,
    spec: RolloutSpec,
    *,
    trigger: str,
    started_by: str,
    extra: Mapping[str, Any] | None = None,
    exclusive: bool = True,
    rollout_id: str | None = None,
) -> StartResult | StartSkipped:
    """Check, validate, plan, record and start a rollout. Raises SpecRejectedError before anything is dispatched;
    returns StartSkipped (and records a notice) when the spec may not start now.

    ``trigger`` and ``started_by`` come from the path the request came by (operator entry point, Scheduler,
    remediation) and the identity AWS authenticated, never from the request itself.

    ``exclusive=False`` skips the one-rollout-per-spec lock: remediation uses it, because its rollouts of one rule
    on different nodes must run side by side, and its (rule, node) cooldown already keeps one node's apart.
    ``rollout_id``: an ID chosen (and recorded) by the caller beforehand, so that a retry cannot start a second one.
    """
    now = deps.now()
    blocked = start_blocker(deps, spec, now)
    if blocked is not None:
        return skip_start(deps, spec, blocked, trigger=trigger, started_by=started_by, now=now)
    rollout_id = rollout_id or new_rollout_id(now)
    if exclusive:
        blocked = claim_spec(deps, spec.name, rollout_id, now)
        if blocked is not None:
            return skip_start(deps, spec, blocked, trigger=trigger, started_by=started_by, now=now)
    recorded = False
    try:
        rollout, plan = _record(deps, spec, rollout_id, now, trigger=trigger, started_by=started_by, extra=extra)
        recorded = True
    finally:
        if exclusive and not recorded:
            # Rejected (or failed) before the rollout existed: let the next start have the spec at once.
            deps.ledger.locks.release_spec_lock(spec.name, rollout_id)
    logger.set_correlation_id(rollout.rollout_id)
    logger.info(
        "rollout planned",
        extra={
            "targets": plan.target_count,
            "waves": [w.size for w in plan.waves],
            "skipped": len(plan.skipped),
            "document_version": rollout.document_version,
        },
    )
    try:
        latest = advance(deps, rollout.rollout_id, 0)
    except RetryLaterError as error:
        # The rollout is recorded and its first chunk's intent too: the reconciler finishes the dispatch.
        logger.warning("wave 0 dispatch deferred to the reconciler: %s", error)
        latest = deps.ledger.rollouts.get(rollout.rollout_id)
    # Wave 0's start may have deferred or skipped nodes (sessions, connection status): report what the ledger holds.
    changed = latest.wave_count != len(plan.waves) or latest.target_count != plan.target_count
    waves = deps.ledger.plans.waves(rollout.rollout_id) if changed else None
    skipped = (
        deps.ledger.plans.skipped(rollout.rollout_id) if latest.skipped_count != len(plan.skipped) else plan.skipped
    )
    return StartResult(
        rollout_id=rollout.rollout_id,
        state=latest.state.value,
        target_count=latest.target_count,
        waves=[w.size for w in waves] if waves is not None else [w.size for w in plan.waves],
        skipped=[{"instance_id": s.instance_id, "reason": s.reason} for s in skipped],
        deferred=list(plan.deferred),
        budget_allowed=plan.budget_allowed,
        document_version=rollout.document_version,
        reason=latest.reason,
    )


def start_scheduled(deps: Deps, spec: RolloutSpec) -> StartResult | StartSkipped:
    """A start by EventBridge Scheduler (the start function's only caller): only a spec the stack schedules, exactly
    as deployed (its SHA-256 is in SCHEDULED_SPECS), may start this way, so invoking the function directly cannot
    run anything else. Everything else starts through the operator entry point, with the caller's identity."""
    expected = deps.settings.SCHEDULED_SPECS.get(spec.name)
    if expected is None or expected != spec_digest(spec):
        raise SpecRejectedError(
            [
                f"name: {spec.name!r} is not a spec this stack schedules (or differs from the deployed one): "
                "start rollouts through the operator entry point"
            ]
        )
    return start_rollout(deps, spec, trigger=TRIGGER_SCHEDULE, started_by=SCHEDULER_PRINCIPAL)


def _record(
    deps: Deps,
    spec: RolloutSpec,
    rollout_id: str,
    now: datetime,
    *,
    trigger: str,
    started_by: str,
    extra: Mapping[str, Any] | None,
) -> tuple[Rollout, Plan]:
    """Validate the document, plan, and write the rollout (PENDING). Raises SpecRejectedError."""
    document = deps.ssm.describe_document(spec.document.name, spec.document.version)
    problems = check_document(spec, document, deps.settings.ALLOWED_DOCUMENTS)
    if spec.sessions.mode == "terminate_older_than" and not deps.settings.SESSION_TERMINATION:
        problems.append(
            "sessions.mode: terminate_older_than ends other people's Session Manager sessions, and this deployment "
            "does not allow it (fleetwave:sessionTermination)"
        )
    if problems:
        raise SpecRejectedError(problems)
    plan = plan_for(deps, spec)
    rollout = Rollout(
        rollout_id=rollout_id,
        spec_name=spec.name,
        state=RolloutState.PENDING,
        current_wave=0,
        wave_count=len(plan.waves),
        target_count=plan.target_count,
        skipped_count=len(plan.skipped),
        budget_allowed=plan.budget_allowed,
        budget_statuses=frozenset(spec.error_budget.counts),
        # Invariant 7: every wave runs the version (and hash) validated now.
        document_name=document.name,
        document_version=document.version,
        document_hash=document.hash,
        started_at=now,
        bake_time=spec.bake_time,
        alarm_gates=tuple(spec.alarm_gates),
        trigger=trigger,
        started_by=started_by,
    )
    spec_json = json.dumps(spec.model_dump(mode="json"), sort_keys=True)
    deps.ledger.rollouts.create(rollout, spec_json=spec_json, plan=plan, extra=extra)
    return rollout, plan
