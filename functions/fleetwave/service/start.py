"""Starting a rollout: validate the document, resolve and plan the targets, write the ledger, start wave 0."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger

from fleetwave.adapters.ssm import DocumentInfo
from fleetwave.core.model import Rollout, RolloutState
from fleetwave.core.planner import NodeInfo, Plan, PlanError, plan_rollout
from fleetwave.core.spec import RolloutSpec
from fleetwave.errors import SpecRejectedError
from fleetwave.service.deps import Deps
from fleetwave.service.rollouts import advance

logger = Logger(child=True)


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


def new_rollout_id(now: datetime) -> str:
    """Sortable and short enough for SendCommand's 100-character Comment: ``20261123T004000-a1b2c3``."""
    return f"{now:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


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


def start_rollout(
    deps: Deps, spec: RolloutSpec, *, trigger: str = "cli", extra: Mapping[str, Any] | None = None
) -> StartResult:
    """Validate, plan, record and start a rollout. Raises SpecRejectedError before anything is dispatched."""
    document = deps.ssm.describe_document(spec.document.name, spec.document.version)
    problems = check_document(spec, document, deps.settings.ALLOWED_DOCUMENTS)
    if problems:
        raise SpecRejectedError(problems)
    plan = plan_for(deps, spec)
    now = deps.now()
    rollout = Rollout(
        rollout_id=new_rollout_id(now),
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
    )
    spec_json = json.dumps(spec.model_dump(mode="json"), sort_keys=True)
    deps.ledger.create_rollout(rollout, spec_json=spec_json, plan=plan, extra=extra)
    logger.append_keys(rollout_id=rollout.rollout_id)
    logger.info(
        "rollout planned",
        extra={
            "targets": plan.target_count,
            "waves": [w.size for w in plan.waves],
            "skipped": len(plan.skipped),
            "document_version": document.version,
        },
    )
    latest = advance(deps, rollout.rollout_id, 0)
    return StartResult(
        rollout_id=rollout.rollout_id,
        state=latest.state.value,
        target_count=plan.target_count,
        waves=[w.size for w in plan.waves],
        skipped=[{"instance_id": s.instance_id, "reason": s.reason} for s in plan.skipped],
        deferred=list(plan.deferred),
        budget_allowed=plan.budget_allowed,
        document_version=document.version,
        reason=latest.reason,
    )
