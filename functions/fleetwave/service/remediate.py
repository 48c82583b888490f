"""Alarm remediation: an alarm entered ALARM -> the allow-listed runbook of its rule, on the node that alarmed, through
the same start path as any rollout (single wave, no error budget, trigger "remediation").

Per event, in order: match a rule (names and prefixes, then alarm tags), find the node (metric dimension or alarm
tag, checked against the managed-node ID pattern), claim the (rule, node) cooldown, count the rule's hour against
its storm limit, start. Every decision about a node is recorded in the ledger (notify publishes it); an event that
concerns no rule or no node is ignored with one log line and a metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict, Field

from fleetwave.adapters.ledger import Cooldown, Locks
from fleetwave.adapters.scheduler import Timers
from fleetwave.constants import REMEDIATE_TIMEOUT_SECONDS
from fleetwave.core.remediation import (
    AlarmStateChange,
    Outcome,
    RemediationRule,
    decide_verification,
    hour_bucket,
    hour_bucket_end,
    match_rule,
    parse_rules,
    resolve_target,
    rules_needing_tags,
)
from fleetwave.core.times import iso
from fleetwave.errors import ConflictError, NotFoundError, SpecRejectedError
from fleetwave.observability import metrics
from fleetwave.service.deps import Deps
from fleetwave.service.start import StartSkipped, start_rollout

logger = Logger(service="fleetwave", child=True)

# A cooldown claim older than the remediate function's timeout has no live claimer: its invocation was killed or
# crashed before starting the runbook, so a redelivery of the same event may take it over.
CLAIM_LEASE = timedelta(seconds=REMEDIATE_TIMEOUT_SECONDS)
# A run still going is checked again this many times (each after verify_minutes) before verification gives up.
MAX_VERIFY_ATTEMPTS = 12


class VerifyRequest(BaseModel):
    """What a verification timer carries (fleetwave wrote it; nothing in it comes from an alarm event but the name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: str
    alarm_name: str
    instance_id: str
    rollout_id: str
    attempt: int = Field(default=0, ge=0)


class VerifyEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    verify: VerifyRequest


@dataclass(frozen=True)
class RemediationResult:
    outcome: Literal["started", "skipped", "ignored", "duplicate", "verified", "verification_failed", "pending"]
    reason: str = ""
    rule: str = ""
    instance_id: str = ""
    rollout_id: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v}


@lru_cache(maxsize=4)
def _rules(text: str) -> tuple[RemediationRule, ...]:
    return parse_rules(text)


def rules_of(deps: Deps) -> tuple[RemediationRule, ...]:
    """The configured rules (REMEDIATION_RULES, validated at synth; a bad value fails the invocation loudly)."""
    return _rules(deps.settings.REMEDIATION_RULES)


def remediate(deps: Deps, request: AlarmStateChange | VerifyEvent, *, function_arn: str) -> RemediationResult:
    """Handle one event of the remediate function: an alarm state change, or a verification timer."""
    if isinstance(request, VerifyEvent):
        return verify_remediation(deps, request.verify, function_arn=function_arn)
    return handle_alarm(deps, request, function_arn=function_arn)


def _ignore(metric: str, reason: str, alarm_name: str) -> RemediationResult:
    metrics.add_metric(name=metric, unit="Count", value=1)
    logger.info("alarm event ignored: %s", reason, extra={"alarm_name": alarm_name})
    return RemediationResult("ignored", reason)


def handle_alarm(deps: Deps, event: AlarmStateChange, *, function_arn: str) -> RemediationResult:
    now = deps.now()
    alarm_name = event.alarm_name
    if event.detail.state.value != "ALARM":
        return _ignore("AlarmEventsIgnored", f"state {event.detail.state.value}, not ALARM", alarm_name)
    rules = rules_of(deps)
    tags: dict[str, str] | None = None
    rule = match_rule(rules, alarm_name)
    if rule is None and rules_needing_tags(rules):
        tags = deps.gates.alarm_tags(event.alarm_arn)
        rule = match_rule(rules, alarm_name, tags)
    if rule is None:
        return _ignore("UnknownAlarmsIgnored", "no remediation rule matches the alarm", alarm_name)
    if rule.target_kind == "tag" and tags is None:
        tags = deps.gates.alarm_tags(event.alarm_arn)
    target = resolve_target(rule, event, tags)
    if target.instance_id is None:
        return _ignore("RemediationTargetsMissing", f"rule {rule.name}: {target.problem}", alarm_name)
    instance_id = target.instance_id
    logger.append_keys(rule=rule.name, instance_id=instance_id, alarm_name=alarm_name, event_id=event.id)

    locks = deps.ledger.locks
    claim = _claim_cooldown(locks, rule, instance_id, event.id, now)
    if claim == "duplicate":
        metrics.add_metric(name="RemediationDuplicates", unit="Count", value=1)
        logger.info("event already handled (redelivered)")
        return RemediationResult("duplicate", "this event was already handled", rule.name, instance_id)
    if isinstance(claim, Cooldown):
        until = iso(datetime.fromtimestamp(claim.expires_at, tz=UTC))
        reason = f"cooldown: rule {rule.name} acted on {instance_id} at {iso(claim.claimed_at)}; next after {until}"
        return _skip(deps, rule, instance_id, alarm_name, reason, now)

    try:
        started = locks.count_remediation(
            rule.name, hour_bucket(now), limit=rule.max_per_hour, expires=hour_bucket_end(now)
        )
    except ConflictError:
        # Not remediated: the node's cooldown must not start either.
        locks.release_cooldown(rule.name, instance_id, event.id)
        metrics.add_metric(name="StormBreakerTripped", unit="Count", value=1)
        reason = f"storm breaker: rule {rule.name} already started {rule.max_per_hour} remediation(s) this hour"
        return _skip(deps, rule, instance_id, alarm_name, reason, now)

    spec = rule.rollout_spec(instance_id)
    try:
        result = start_rollout(
            deps,
            spec,
            trigger="remediation",
            extra={"remediation_rule": rule.name, "alarm_name": alarm_name, "remediated_instance": instance_id},
            exclusive=False,
        )
    except SpecRejectedError as error:
        # The cooldown stays: a node that cannot be remediated is not retried at every alarm.
        return _skip(deps, rule, instance_id, alarm_name, f"rejected: {'; '.join(error.problems)}", now)
    if isinstance(result, StartSkipped):
        return _skip(deps, rule, instance_id, alarm_name, result.reason, now)

    locks.record_cooldown_rollout(rule.name, instance_id, event.id, result.rollout_id)
    reason = f"rule {rule.name} runs {rule.document} on {instance_id} (remediation {started} of this hour)"
    deps.ledger.records.put_remediation(
        rule.name,
        instance_id,
        Outcome.STARTED.value,
        reason,
        now,
        alarm_name=alarm_name,
        rollout_id=result.rollout_id,
        extra={"document": rule.document},
    )
    metrics.add_metric(name="RemediationsStarted", unit="Count", value=1)
    logger.info("remediation started", extra={"rollout_id": result.rollout_id})
    if rule.verify_minutes:
        request = VerifyRequest(
            rule=rule.name, alarm_name=alarm_name, instance_id=instance_id, rollout_id=result.rollout_id
        )
        _verify_later(deps, request, now + timedelta(minutes=rule.verify_minutes), function_arn)
    return RemediationResult("started", reason, rule.name, instance_id, result.rollout_id)


def _claim_cooldown(
    locks: Locks, rule: RemediationRule, instance_id: str, event_id: str, now: datetime
) -> Literal["claimed", "duplicate"] | Cooldown:
    """Claim the (rule, node) cooldown for this event. Returns the cooldown that holds it when another event claimed
    it, or "duplicate" when this very event did (EventBridge delivers at least once, and may deliver twice at once)."""
    until = now + rule.cooldown
    for _ in range(2):
        try:
            locks.claim_cooldown(rule.name, instance_id, event_id=event_id, now=now, until=until)
            return "claimed"
        except ConflictError:
            held = locks.cooldown(rule.name, instance_id)
        if held is None:
            continue  # expired and deleted between the two calls: claim again
        if held.event_id != event_id:
            return held
        if held.rollout_id or now - held.claimed_at < CLAIM_LEASE:
            return "duplicate"  # done, or being done right now by another delivery
        try:
            locks.take_over_cooldown(held, now)
            logger.info("resuming a remediation whose first attempt never started its runbook")
            return "claimed"
        except ConflictError:
            return "duplicate"
    return "duplicate"


def _skip(
    deps: Deps, rule: RemediationRule, instance_id: str, alarm_name: str, reason: str, now: datetime
) -> RemediationResult:
    """Notify instead of acting."""
    deps.ledger.records.put_remediation(
        rule.name,
        instance_id,
        Outcome.SKIPPED.value,
        reason,
        now,
        alarm_name=alarm_name,
        extra={"document": rule.document},
    )
    metrics.add_metric(name="RemediationsSkipped", unit="Count", value=1)
    logger.warning("remediation skipped: %s", reason)
    return RemediationResult("skipped", reason, rule.name, instance_id)


# ---------------------------------------------------------------------------------------- verification
def _verify_later(deps: Deps, request: VerifyRequest, at: datetime, function_arn: str) -> None:
    """A one-time Scheduler timer that invokes this function with ``{"verify": ...}`` (deleted after it runs)."""
    timers = Timers(
        deps.timers.scheduler, group=deps.timers.group, role_arn=deps.timers.role_arn, target_arn=function_arn
    )
    name = f"fw-verify-{request.rollout_id}-{request.attempt}"[:64]
    timers.fire_at(name, at, {"verify": request.model_dump()})


def verify_remediation(deps: Deps, request: VerifyRequest, *, function_arn: str) -> RemediationResult:
    """After a successful run, the alarm must be back to OK within the rule's verify_minutes."""
    now = deps.now()
    logger.append_keys(rule=request.rule, instance_id=request.instance_id, rollout_id=request.rollout_id)
    rule = next((r for r in rules_of(deps) if r.name == request.rule), None)
    if rule is None or not rule.verify_minutes:
        return RemediationResult("ignored", f"rule {request.rule} no longer asks for verification", request.rule)
    try:
        rollout = deps.ledger.rollouts.get(request.rollout_id)
    except NotFoundError:
        return RemediationResult("ignored", f"no rollout {request.rollout_id}", request.rule)
    window = timedelta(minutes=rule.verify_minutes)
    decision = decide_verification(rollout.state.value, rollout.ended_at, now, window)
    result = RemediationResult("pending", decision.reason, rule.name, request.instance_id, request.rollout_id)
    if decision.action == "done":
        metrics.add_metric(name="RemediationsNotVerified", unit="Count", value=1)
        logger.info("not verified: %s", decision.reason)
        return RemediationResult("ignored", decision.reason, rule.name, request.instance_id, request.rollout_id)
    if decision.action == "recheck":
        assert decision.recheck_at is not None
        if request.attempt + 1 >= MAX_VERIFY_ATTEMPTS:
            reason = f"the runbook was still {rollout.state.value} after {request.attempt + 1} checks"
            return _verification_failed(deps, request, rule, reason, now)
        _verify_later(
            deps, request.model_copy(update={"attempt": request.attempt + 1}), decision.recheck_at, function_arn
        )
        metrics.add_metric(name="RemediationVerificationsPending", unit="Count", value=1)
        return result
    state = deps.gates.alarm_states([request.alarm_name]).get(request.alarm_name)
    if state == "OK":
        metrics.add_metric(name="RemediationsVerified", unit="Count", value=1)
        logger.info("remediation verified: the alarm is OK")
        return RemediationResult(
            "verified", "the alarm is back to OK", rule.name, request.instance_id, request.rollout_id
        )
    reason = (
        f"alarm {request.alarm_name} is {state or 'gone'} {rule.verify_minutes} min after the runbook succeeded "
        f"(rollout {request.rollout_id})"
    )
    return _verification_failed(deps, request, rule, reason, now)


def _verification_failed(
    deps: Deps, request: VerifyRequest, rule: RemediationRule, reason: str, now: datetime
) -> RemediationResult:
    deps.ledger.records.put_remediation(
        request.rule,
        request.instance_id,
        Outcome.VERIFICATION_FAILED.value,
        reason,
        now,
        alarm_name=request.alarm_name,
        rollout_id=request.rollout_id,
        extra={"document": rule.document},
    )
    metrics.add_metric(name="RemediationVerificationsFailed", unit="Count", value=1)
    logger.warning("remediation failed verification: %s", reason)
    return RemediationResult("verification_failed", reason, request.rule, request.instance_id, request.rollout_id)
