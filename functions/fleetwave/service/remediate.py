"""Alarm remediation: an alarm entered ALARM -> the allow-listed runbook of its rule, on the node that alarmed, through
the same start path as any rollout (single wave, no error budget, trigger "remediation").

Per event, in order: check it comes from this account and region; match a rule (names and prefixes, then alarm tags);
re-read the alarm (DescribeAlarms) and act only if it is in ALARM now and agrees with the event; take the node from
the alarm's own dimension or tag (never from the event), check it is a managed node ID carrying the required tags;
claim the (rule, node) cooldown with a rollout ID chosen now; admit the start in the rule's sliding storm window;
start that rollout (or, on a retry after a crash, resume it without sending twice). Every decision about a node is
recorded in the ledger (notify publishes it); an event that concerns no rule is ignored, and an event that does not
hold up is refused: one log line with the reason and a RemediationRefused metric (dimension Reason) each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from pydantic import BaseModel, ConfigDict, Field

from fleetwave.adapters.ledger import Cooldown, Locks
from fleetwave.constants import (
    REMEDIATE_TIMEOUT_SECONDS,
    REMEDIATION_ROLLOUT_PREFIX,
    TRIGGER_REMEDIATION,
    VERIFY_TIMER_PREFIX,
)
from fleetwave.core.remediation import (
    STORM_WINDOW,
    AlarmStateChange,
    Outcome,
    Refusal,
    RefusalCode,
    RemediationRule,
    StormDecision,
    admit_storm,
    alarm_arn,
    check_alarm,
    check_origin,
    decide_verification,
    match_rule,
    missing_tags,
    parse_rules,
    resolve_target,
    rules_needing_tags,
)
from fleetwave.core.times import iso
from fleetwave.errors import ConflictError, NotFoundError, RetryLaterError, SpecRejectedError
from fleetwave.observability import metrics
from fleetwave.service.deps import Deps
from fleetwave.service.rollouts import resume
from fleetwave.service.start import StartSkipped, new_rollout_id, start_rollout

logger = Logger(service="fleetwave", child=True)

# A cooldown claim older than the remediate function's timeout has no live claimer: its invocation was killed or
# crashed before starting the runbook, so a redelivery of the same event may take it over.
CLAIM_LEASE = timedelta(seconds=REMEDIATE_TIMEOUT_SECONDS)
# A run still going is checked again this many times (each after verify_minutes) before verification gives up.
MAX_VERIFY_ATTEMPTS = 12
# Rounds of "read the storm window, decide, conditional write" before a start gives up to concurrent ones.
_WINDOW_ATTEMPTS = 5


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
    outcome: Literal[
        "started", "skipped", "ignored", "refused", "duplicate", "verified", "verification_failed", "pending"
    ]
    reason: str = ""
    rule: str = ""
    instance_id: str = ""
    rollout_id: str = ""
    refusal: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v}


@dataclass(frozen=True)
class Origin:
    """This function's own partition, region and account (from its ARN): the only ones remediation acts in."""

    partition: str
    region: str
    account: str

    @classmethod
    def of(cls, function_arn: str) -> Origin:
        # arn:<partition>:lambda:<region>:<account>:function:<name>
        parts = function_arn.split(":")
        if len(parts) < 7 or parts[2] != "lambda":
            raise ValueError(f"not a Lambda function ARN: {function_arn!r}")
        return cls(parts[1], parts[3], parts[4])


@lru_cache(maxsize=4)
def _rules(text: str) -> tuple[RemediationRule, ...]:
    return parse_rules(text)


def rules_of(deps: Deps) -> tuple[RemediationRule, ...]:
    """The configured rules (REMEDIATION_RULES, validated at synth; a bad value fails the invocation loudly)."""
    return _rules(deps.settings.REMEDIATION_RULES)


def remediate(deps: Deps, request: AlarmStateChange | VerifyEvent, *, function_arn: str) -> RemediationResult:
    """Handle one message of the alarm queue: an alarm state change, or a verification timer."""
    if isinstance(request, VerifyEvent):
        return verify_remediation(deps, request.verify)
    return handle_alarm(deps, request, origin=Origin.of(function_arn))


def _ignore(metric: str, reason: str, alarm_name: str) -> RemediationResult:
    metrics.add_metric(name=metric, unit="Count", value=1)
    logger.info("alarm event ignored: %s", reason, extra={"alarm_name": alarm_name})
    return RemediationResult("ignored", reason)


def _refuse(refusal: Refusal, alarm_name: str, rule: str = "", instance_id: str = "") -> RemediationResult:
    """Not acting on an event that does not hold up: one log line with the reason, one metric per reason."""
    with single_metric(
        name="RemediationRefused", unit=MetricUnit.Count, value=1, namespace=metrics.namespace
    ) as metric:
        metric.add_dimension(name="Reason", value=refusal.code.value)
    logger.warning(
        "remediation refused: %s",
        refusal.reason,
        extra={"alarm_name": alarm_name, "refusal": refusal.code.value, "rule": rule, "instance_id": instance_id},
    )
    return RemediationResult("refused", refusal.reason, rule, instance_id, refusal=refusal.code.value)


def handle_alarm(deps: Deps, event: AlarmStateChange, *, origin: Origin) -> RemediationResult:
    now = deps.now()
    alarm_name = event.alarm_name
    if event.detail.state.value != "ALARM":
        return _ignore("AlarmEventsIgnored", f"state {event.detail.state.value}, not ALARM", alarm_name)
    refusal = check_origin(event, partition=origin.partition, account=origin.account, region=origin.region)
    if refusal is not None:
        return _refuse(refusal, alarm_name)
    own_arn = alarm_arn(origin.partition, origin.region, origin.account, alarm_name)
    rules = rules_of(deps)
    tags: dict[str, str] | None = None
    rule = match_rule(rules, alarm_name)
    if rule is None and rules_needing_tags(rules):
        tags = deps.gates.alarm_tags(own_arn)
        rule = match_rule(rules, alarm_name, tags)
    if rule is None:
        return _ignore("UnknownAlarmsIgnored", "no remediation rule matches the alarm", alarm_name)

    # From here on, only what CloudWatch says about the alarm counts.
    alarm = deps.gates.describe_alarm(alarm_name)
    refusal = check_alarm(event, alarm)
    if refusal is not None:
        return _refuse(refusal, alarm_name, rule.name)
    assert alarm is not None
    if rule.target_kind == "tag" and tags is None:
        tags = deps.gates.alarm_tags(own_arn)
    target = resolve_target(rule, alarm, tags)
    if target.instance_id is None:
        return _refuse(Refusal(target.code, f"rule {rule.name}: {target.problem}"), alarm_name, rule.name)
    instance_id = target.instance_id
    required = {**deps.settings.MANAGED_NODE_TAG, **rule.target_tag}
    if required:
        missing = missing_tags(required, deps.ssm.node_tags(instance_id))
        if missing:
            reason = f"rule {rule.name}: node {instance_id} does not carry {', '.join(missing)}"
            return _refuse(Refusal(RefusalCode.NODE_TAG_MISMATCH, reason), alarm_name, rule.name, instance_id)
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
    rollout_id = claim.planned_rollout_id

    storm = _admit(locks, rule, event.id, now)
    if not storm.admitted:
        # Not remediated: the node's cooldown must not start either.
        locks.release_cooldown(rule.name, instance_id, event.id)
        metrics.add_metric(name="StormBreakerTripped", unit="Count", value=1)
        reason = (
            f"storm breaker: rule {rule.name} already started {storm.count} remediation(s) in the last hour; "
            f"the next may start after {iso(storm.free_at or now)}"
        )
        return _skip(deps, rule, instance_id, alarm_name, reason, now)

    started = _start_or_resume(deps, rule, instance_id, alarm_name, alarm.arn or own_arn, rollout_id, now)
    if isinstance(started, RemediationResult):
        return started
    reason = f"rule {rule.name} runs {rule.document} on {instance_id} (remediation {storm.count} in the last hour)"
    # Written once per rollout: a retry that resumed the rollout finds it written.
    deps.ledger.records.put_remediation(
        rule.name,
        instance_id,
        Outcome.STARTED.value,
        reason,
        started,
        alarm_name=alarm_name,
        rollout_id=rollout_id,
        extra={"document": rule.document},
        once=True,
    )
    locks.record_cooldown_rollout(rule.name, instance_id, event.id, rollout_id)
    metrics.add_metric(name="RemediationsStarted", unit="Count", value=1)
    logger.info("remediation started", extra={"rollout_id": rollout_id})
    if rule.verify_minutes:
        request = VerifyRequest(rule=rule.name, alarm_name=alarm_name, instance_id=instance_id, rollout_id=rollout_id)
        _verify_later(deps, request, now + timedelta(minutes=rule.verify_minutes))
    return RemediationResult("started", reason, rule.name, instance_id, rollout_id)


def _start_or_resume(
    deps: Deps,
    rule: RemediationRule,
    instance_id: str,
    alarm_name: str,
    alarm: str,
    rollout_id: str,
    now: datetime,
) -> datetime | RemediationResult:
    """Start the claimed rollout, or resume it when an earlier attempt at this event got as far as recording it
    (a crash anywhere after that, even between SendCommand and its record, never sends twice: resume finds the
    command by its Comment first). Returns the rollout's start time, or the skip that replaced it."""
    try:
        existing = deps.ledger.rollouts.get(rollout_id)
    except NotFoundError:
        existing = None
    if existing is not None:
        logger.info("resuming a remediation whose first attempt stopped after recording its rollout")
        resume(deps, rollout_id)
        return existing.started_at
    try:
        result = start_rollout(
            deps,
            rule.rollout_spec(instance_id),
            trigger=TRIGGER_REMEDIATION,
            started_by=alarm,
            extra={"remediation_rule": rule.name, "alarm_name": alarm_name, "remediated_instance": instance_id},
            exclusive=False,
            rollout_id=rollout_id,
        )
    except SpecRejectedError as error:
        # The cooldown stays: a node that cannot be remediated is not retried at every alarm.
        return _skip(deps, rule, instance_id, alarm_name, f"rejected: {'; '.join(error.problems)}", now)
    except ConflictError as error:
        # Another delivery of this event recorded the same rollout first: it carries it out.
        raise RetryLaterError(f"rollout {rollout_id} is being started by another delivery") from error
    if isinstance(result, StartSkipped):
        return _skip(deps, rule, instance_id, alarm_name, result.reason, now)
    return deps.ledger.rollouts.get(rollout_id).started_at


@dataclass(frozen=True)
class _Claimed:
    planned_rollout_id: str


def _claim_cooldown(
    locks: Locks, rule: RemediationRule, instance_id: str, event_id: str, now: datetime
) -> Literal["duplicate"] | Cooldown | _Claimed:
    """Claim the (rule, node) cooldown for this event, with the rollout ID it will start. Returns the cooldown that
    holds it when another event claimed it, or "duplicate" when this very event did and is done or being done
    (EventBridge and SQS deliver at least once, and may deliver twice at once). A claim of this event older than the
    lease whose rollout was never confirmed is taken over, keeping its planned rollout ID."""
    until = now + rule.cooldown
    planned = new_rollout_id(now, REMEDIATION_ROLLOUT_PREFIX)
    for _ in range(2):
        try:
            locks.claim_cooldown(
                rule.name, instance_id, event_id=event_id, now=now, until=until, planned_rollout_id=planned
            )
            return _Claimed(planned)
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
            logger.info("resuming a remediation whose first attempt did not finish")
            return _Claimed(held.planned_rollout_id or planned)
        except ConflictError:
            return "duplicate"
    return "duplicate"


def _admit(locks: Locks, rule: RemediationRule, event_id: str, now: datetime) -> StormDecision:
    """Count this start in the rule's sliding window (race-safe: a conditional write on the window as read)."""
    for _ in range(_WINDOW_ATTEMPTS):
        window = locks.storm_window(rule.name)
        decision = admit_storm(window.starts, event_id=event_id, now=now, limit=rule.max_per_hour)
        if not decision.admitted or decision.starts == window.starts:
            return decision
        try:
            locks.save_storm_window(rule.name, decision.starts, read=window, expires=now + 2 * STORM_WINDOW)
            return decision
        except ConflictError:
            continue  # another start of this rule wrote the window between our read and our write
    raise RetryLaterError(f"the storm window of rule {rule.name} kept changing; retry")


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
def _verify_later(deps: Deps, request: VerifyRequest, at: datetime) -> None:
    """A one-time Scheduler timer that puts ``{"verify": ...}`` on the alarm queue (deleted after it runs). Its role
    may send to that queue and do nothing else."""
    settings = deps.settings
    timers = deps.timers.for_target(role_arn=settings.VERIFY_SCHEDULER_ROLE_ARN, target_arn=settings.ALARM_QUEUE_ARN)
    name = f"{VERIFY_TIMER_PREFIX}{request.rollout_id}-{request.attempt}"[:64]
    timers.fire_at(name, at, {"verify": request.model_dump()})


def verify_remediation(deps: Deps, request: VerifyRequest) -> RemediationResult:
    """After a successful run, the alarm must be back to OK within the rule's verify_minutes."""
    now = deps.now()
    logger.append_keys(rule=request.rule, instance_id=request.instance_id, rollout_id=request.rollout_id)
    rule = next((r for r in rules_of(deps) if r.name == request.rule), None)
    if rule is None or not rule.verify_minutes:
        return RemediationResult("ignored", f"rule {request.rule} no longer asks for verification", request.rule)
    try:
        rollout, recorded_as = deps.ledger.rollouts.get_with_extras(
            request.rollout_id, ("remediation_rule", "remediated_instance", "alarm_name")
        )
    except NotFoundError:
        return RemediationResult("ignored", f"no rollout {request.rollout_id}", request.rule)
    recorded = (recorded_as["remediation_rule"], recorded_as["remediated_instance"], recorded_as["alarm_name"])
    if recorded != (request.rule, request.instance_id, request.alarm_name):
        # Only fleetwave writes verification requests; one that disagrees with its rollout is not acted on.
        refusal = Refusal(RefusalCode.EVENT_CONTRADICTS_ALARM, "the verification request does not match its rollout")
        return _refuse(refusal, request.alarm_name, request.rule, request.instance_id)
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
        _verify_later(deps, request.model_copy(update={"attempt": request.attempt + 1}), decision.recheck_at)
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
