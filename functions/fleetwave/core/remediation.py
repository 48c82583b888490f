"""Alarm remediation rules and decisions. Pure: the one definition of a rule (the stack validates cdk.json with it,
the remediate function reads REMEDIATION_RULES with it) and every rule of "which runbook, on which node".

Safety: what runs (document, version, parameters) comes from the rule, never from the alarm event. The event only
names an alarm; fleetwave then re-reads that alarm in its own account and region (DescribeAlarms) and trusts only what
the alarm itself says: its state now, and the node in its own metric dimension or tag (``AlarmDescription``). An event
that contradicts the alarm it names is refused. The node ID must look like a managed node ID, and may have to carry
the rule's ``target_tag``. No alarm text (name, description, reason) ever goes into a command, not even its Comment.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fleetwave.constants import CLOUDWATCH_EVENT_SOURCE, DETAIL_TYPE_ALARM, MANAGED_NODE_ID_PATTERN
from fleetwave.core.spec import RolloutSpec, format_validation_error, normalize_parameters, parse_spec

# `remediate-<rule>` is the spec name of a remediation rollout, and spec names have at most 64 characters.
SPEC_NAME_PREFIX: Final = "remediate-"
RULE_NAME_MAX: Final = 64 - len(SPEC_NAME_PREFIX)
_RULE_NAME = re.compile(rf"^[a-zA-Z0-9][a-zA-Z0-9_.\-]{{0,{RULE_NAME_MAX - 1}}}\Z")
_TARGET = re.compile(r"^(dimension:[A-Za-z0-9_.:/\-]{1,255}|tag:[\w.:/=+\-@ ]{1,128})\Z")
_DOCUMENT_NAME = re.compile(r"^[a-zA-Z0-9_.\-]{3,128}\Z")
_DOCUMENT_VERSION = re.compile(r"^([$]LATEST|[$]DEFAULT|[1-9][0-9]*)\Z")
_MANAGED_NODE_ID = re.compile(MANAGED_NODE_ID_PATTERN)
_TAG_KEY = re.compile(r"^[\w.:/=+\-@ ]{1,128}\Z")
_TAG_VALUE = re.compile(r"^[\w.:/=+\-@ ]{0,256}\Z")
# Remediation runbooks are short: a command that runs longer than this is timed out by SSM.
REMEDIATION_TIMEOUT_SECONDS: Final = 600


class RuleError(ValueError):
    """Rules that cannot be used. ``located`` holds (field path, problem) pairs; the path is "" for the whole rule."""

    def __init__(self, located: list[tuple[str, str]]) -> None:
        self.located = located
        self.problems = [f"{path}: {problem}" if path else problem for path, problem in located]
        super().__init__("; ".join(self.problems))


def _positive(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{value!r} is not a positive whole number")
    return value


class RemediationRule(BaseModel):
    """One alarm-to-runbook rule. Select alarms by exact names, a name prefix or alarm tags (exactly one); find the
    node by a metric dimension of the alarm (``dimension:InstanceId``) or a tag of the alarm (``tag:<Key>``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    alarm_names: tuple[str, ...] = ()
    alarm_prefix: str | None = None
    alarm_tags: dict[str, str] = Field(default_factory=dict)
    document: str
    document_version: str = "$DEFAULT"
    parameters: dict[str, list[str]] = Field(default_factory=dict)
    target: str
    cooldown_minutes: int
    max_per_hour: int
    # After a successful run, the alarm must be back to OK within this many minutes, or the remediation is reported
    # as failed. None: no verification.
    verify_minutes: int | None = None
    # The node must carry every one of these tags (checked in code before acting, and in IAM on SendCommand).
    target_tag: dict[str, str] = Field(default_factory=dict)

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> Any:
        if not isinstance(value, str) or not _RULE_NAME.match(value):
            raise ValueError(f"{value!r} is not a rule name (letters, digits, '.', '_', '-'; at most {RULE_NAME_MAX})")
        return value

    @field_validator("alarm_names", mode="before")
    @classmethod
    def _alarm_names(cls, value: Any) -> Any:
        if value is None:
            return ()
        if not isinstance(value, list | tuple) or not all(isinstance(n, str) and n for n in value):
            raise ValueError(f"{value!r} is not a list of alarm names")
        return tuple(value)

    @field_validator("alarm_prefix", mode="before")
    @classmethod
    def _alarm_prefix(cls, value: Any) -> Any:
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"{value!r} is not an alarm name prefix")
        return value

    @field_validator("alarm_tags", mode="before")
    @classmethod
    def _alarm_tags(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ValueError(f"{value!r} is not a mapping of tag key to tag value")
        return dict(value)

    @field_validator("target_tag", mode="before")
    @classmethod
    def _target_tag(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str)
            and _TAG_KEY.match(k)
            and not k.lower().startswith("aws:")
            and isinstance(v, str)
            and _TAG_VALUE.match(v)
            for k, v in value.items()
        ):
            raise ValueError(f"{value!r} is not a mapping of node tag key to tag value")
        return dict(value)

    @field_validator("document", mode="before")
    @classmethod
    def _document(cls, value: Any) -> Any:
        # A name, not an ARN: the stack builds the ARN that IAM allows, and the allow-list holds names.
        if not isinstance(value, str) or not _DOCUMENT_NAME.match(value):
            raise ValueError(f"{value!r} is not a document name")
        return value

    @field_validator("document_version", mode="before")
    @classmethod
    def _document_version(cls, value: Any) -> Any:
        text = str(value)
        if isinstance(value, bool) or not _DOCUMENT_VERSION.match(text):
            raise ValueError(f"{value!r} is not a document version ($DEFAULT, $LATEST or a number)")
        return text

    @field_validator("parameters", mode="before")
    @classmethod
    def _parameters(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValueError(f"{value!r} is not a mapping of parameter name to value(s)")
        # The same normalization as a spec's document parameters (values become lists of strings).
        return normalize_parameters(value)

    @field_validator("target", mode="before")
    @classmethod
    def _target(cls, value: Any) -> Any:
        if not isinstance(value, str) or not _TARGET.match(value):
            raise ValueError(f"{value!r} is not 'dimension:<Name>' (e.g. dimension:InstanceId) or 'tag:<Key>'")
        return value

    @field_validator("cooldown_minutes", "max_per_hour", mode="before")
    @classmethod
    def _positive_counts(cls, value: Any) -> Any:
        return _positive(value)

    @field_validator("verify_minutes", mode="before")
    @classmethod
    def _verify(cls, value: Any) -> Any:
        return None if value is None else _positive(value)

    @model_validator(mode="after")
    def _one_selector(self) -> RemediationRule:
        selectors = [bool(self.alarm_names), self.alarm_prefix is not None, bool(self.alarm_tags)]
        if sum(selectors) != 1:
            raise ValueError("give exactly one of alarm_names, alarm_prefix, alarm_tags")
        return self

    # ------------------------------------------------------------------ selection and targets
    @property
    def selects_by_tags(self) -> bool:
        return bool(self.alarm_tags)

    @property
    def target_kind(self) -> Literal["dimension", "tag"]:
        return "dimension" if self.target.startswith("dimension:") else "tag"

    @property
    def target_key(self) -> str:
        return self.target.split(":", 1)[1]

    @property
    def needs_alarm_tags(self) -> bool:
        return self.selects_by_tags or self.target_kind == "tag"

    def matches_name(self, alarm_name: str) -> bool:
        if self.alarm_names:
            return alarm_name in self.alarm_names
        return self.alarm_prefix is not None and alarm_name.startswith(self.alarm_prefix)

    def matches_tags(self, tags: Mapping[str, str]) -> bool:
        return bool(self.alarm_tags) and all(tags.get(key) == value for key, value in self.alarm_tags.items())

    # ------------------------------------------------------------------ what runs
    @property
    def spec_name(self) -> str:
        return f"{SPEC_NAME_PREFIX}{self.name}"

    @property
    def cooldown(self) -> timedelta:
        return timedelta(minutes=self.cooldown_minutes)

    def rollout_spec(self, instance_id: str) -> RolloutSpec:
        """The single-wave, zero-budget rollout that remediates ``instance_id``: everything else from the rule."""
        if not is_managed_node_id(instance_id):
            raise ValueError(f"{instance_id!r} is not a managed node ID")
        return parse_spec(
            {
                "name": self.spec_name,
                "description": f"fleetwave remediation rule {self.name}",
                "document": {"name": self.document, "version": self.document_version, "parameters": self.parameters},
                "targets": {"instance_ids": [instance_id]},
                "waves": ["100%"],
                "max_concurrency": 1,
                "error_budget": 0,
                "timeout_seconds": REMEDIATION_TIMEOUT_SECONDS,
                # The node is unhealthy now: a Session Manager session on it does not postpone its repair.
                "sessions": {"mode": "ignore"},
            }
        )

    def to_json(self) -> dict[str, Any]:
        """The rule as REMEDIATION_RULES carries it (defaults left out: Lambda's environment holds 4 KB)."""
        return self.model_dump(mode="json", exclude_defaults=True)


def _located(error: ValidationError) -> list[tuple[str, str]]:
    located = []
    for problem in format_validation_error(error):
        if problem.startswith("(spec): "):
            located.append(("", problem.removeprefix("(spec): ")))
        else:
            path, _, message = problem.partition(": ")  # a field path never holds ": "
            located.append((path, message))
    return located


def parse_rule(raw: Any) -> RemediationRule:
    if not isinstance(raw, Mapping):
        raise RuleError([("", "a rule is a mapping of name, alarm_names|alarm_prefix|alarm_tags, document, ...")])
    try:
        return RemediationRule.model_validate(raw)
    except ValidationError as error:
        raise RuleError(_located(error)) from None


def parse_rules(text: str) -> tuple[RemediationRule, ...]:
    """REMEDIATION_RULES (a JSON list) -> rules; RuleError names each bad rule by its index."""
    try:
        data = json.loads(text or "[]")
    except json.JSONDecodeError as error:
        raise RuleError([("", f"REMEDIATION_RULES is not JSON ({error.msg})")]) from None
    if not isinstance(data, list):
        raise RuleError([("", "REMEDIATION_RULES is not a JSON list")])
    rules: list[RemediationRule] = []
    located: list[tuple[str, str]] = []
    for index, raw in enumerate(data):
        try:
            rules.append(parse_rule(raw))
        except RuleError as error:
            located.extend((f"[{index}]{'.' + path if path else ''}", problem) for path, problem in error.located)
    if located:
        raise RuleError(located)
    return tuple(rules)


# ---------------------------------------------------------------------------------------- the alarm event
class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class AlarmState(_Loose):
    value: str


class _Metric(_Loose):
    dimensions: dict[str, str] = Field(default_factory=dict)


class _MetricStat(_Loose):
    metric: _Metric


class _AlarmMetric(_Loose):
    metric_stat: _MetricStat | None = Field(None, alias="metricStat")


class _AlarmConfiguration(_Loose):
    # Composite alarms have no metrics; metric math alarms have several.
    metrics: list[_AlarmMetric] = Field(default_factory=list)


class AlarmDetail(_Loose):
    alarm_name: str = Field(alias="alarmName", min_length=1, max_length=255)
    state: AlarmState
    previous_state: AlarmState | None = Field(None, alias="previousState")
    configuration: _AlarmConfiguration = Field(default_factory=_AlarmConfiguration)


class AlarmStateChange(_Loose):
    """An EventBridge ``CloudWatch Alarm State Change`` event, as AWS documents it (only what fleetwave reads)."""

    id: str = Field(min_length=1)
    source: str
    detail_type: str = Field(alias="detail-type")
    account: str = ""
    region: str = ""
    time: str = ""
    resources: list[str] = Field(default_factory=list)
    detail: AlarmDetail

    @model_validator(mode="after")
    def _is_alarm_state_change(self) -> AlarmStateChange:
        if self.source != CLOUDWATCH_EVENT_SOURCE or self.detail_type != DETAIL_TYPE_ALARM:
            raise ValueError(f"not a {DETAIL_TYPE_ALARM!r} event from {CLOUDWATCH_EVENT_SOURCE}")
        return self

    @property
    def alarm_name(self) -> str:
        return self.detail.alarm_name

    def dimension_values(self, name: str) -> list[str]:
        """Distinct values of dimension ``name`` across the metrics the event carries (what it *claims*)."""
        return sorted({value for key, value in self.dimension_pairs() if key == name})

    def dimension_pairs(self) -> set[tuple[str, str]]:
        """Every (dimension name, value) the event's metrics carry."""
        pairs: set[tuple[str, str]] = set()
        for metric in self.detail.configuration.metrics:
            if metric.metric_stat is not None:
                pairs.update(metric.metric_stat.metric.dimensions.items())
        return pairs


# ---------------------------------------------------------------------------------------- the alarm as it is
AlarmKind = Literal["metric", "composite"]


@dataclass(frozen=True)
class AlarmDescription:
    """What DescribeAlarms says about an alarm of this account and region now: the only source of the node."""

    name: str
    arn: str
    kind: AlarmKind
    state: str
    # Dimension name -> its distinct values across the alarm's metric (or metric math) definition.
    dimensions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def dimension_pairs(self) -> set[tuple[str, str]]:
        return {(name, value) for name, values in self.dimensions.items() for value in values}


def alarm_arn(partition: str, region: str, account: str, alarm_name: str) -> str:
    return f"arn:{partition}:cloudwatch:{region}:{account}:alarm:{alarm_name}"


# ---------------------------------------------------------------------------------------- decisions
class Outcome(StrEnum):
    STARTED = "started"
    SKIPPED = "skipped"
    VERIFICATION_FAILED = "verification_failed"


class RefusalCode(StrEnum):
    """Why remediation refused to act on an event (the ``Reason`` dimension of the RemediationRefused metric)."""

    FOREIGN_ACCOUNT = "foreign_account"
    FOREIGN_REGION = "foreign_region"
    FOREIGN_ALARM_ARN = "foreign_alarm_arn"
    ALARM_NOT_FOUND = "alarm_not_found"
    ALARM_NOT_IN_ALARM = "alarm_not_in_alarm"
    EVENT_CONTRADICTS_ALARM = "event_contradicts_alarm"
    NO_NODE = "no_node"
    NOT_A_NODE_ID = "not_a_node_id"
    NODE_TAG_MISMATCH = "node_tag_mismatch"


@dataclass(frozen=True)
class Refusal:
    code: RefusalCode
    reason: str


def is_managed_node_id(value: str) -> bool:
    return bool(_MANAGED_NODE_ID.match(value))


def rules_needing_tags(rules: Iterable[RemediationRule]) -> bool:
    return any(rule.selects_by_tags for rule in rules)


def match_rule(
    rules: Sequence[RemediationRule], alarm_name: str, alarm_tags: Mapping[str, str] | None = None
) -> RemediationRule | None:
    """The rule for an alarm: rules selecting by name (exact or prefix) first, in configuration order, then rules
    selecting by alarm tags (only when ``alarm_tags`` were looked up). The name rules go first so that the tag lookup
    (one ListTagsForResource call) is made only for alarms no name rule claims."""
    for rule in rules:
        if not rule.selects_by_tags and rule.matches_name(alarm_name):
            return rule
    if alarm_tags is None:
        return None
    return next((rule for rule in rules if rule.matches_tags(alarm_tags)), None)


def check_origin(event: AlarmStateChange, *, partition: str, account: str, region: str) -> Refusal | None:
    """An event may only concern an alarm of this account and region (the rule's pattern says so too; the queue
    could still be written to by anyone IAM lets). Its resources, when given, must be exactly that alarm's ARN."""
    if event.account != account:
        return Refusal(RefusalCode.FOREIGN_ACCOUNT, f"the event comes from account {event.account or '(none)'}")
    if event.region != region:
        return Refusal(RefusalCode.FOREIGN_REGION, f"the event comes from region {event.region or '(none)'}")
    own = alarm_arn(partition, region, account, event.alarm_name)
    foreign = [resource for resource in event.resources if resource != own]
    if foreign:
        return Refusal(RefusalCode.FOREIGN_ALARM_ARN, "the event names an alarm ARN of another account or region")
    return None


def check_alarm(event: AlarmStateChange, alarm: AlarmDescription | None) -> Refusal | None:
    """The alarm the event names must exist here, be in ALARM now, and agree with what the event says about it."""
    if alarm is None:
        return Refusal(RefusalCode.ALARM_NOT_FOUND, "no such alarm in this account and region")
    if alarm.state != "ALARM":
        return Refusal(RefusalCode.ALARM_NOT_IN_ALARM, f"the alarm is {alarm.state} now (a stale or forged event)")
    claimed = event.dimension_pairs()
    if alarm.kind == "composite" and event.detail.configuration.metrics:
        return Refusal(RefusalCode.EVENT_CONTRADICTS_ALARM, "the event carries metrics; the alarm is composite")
    if claimed - alarm.dimension_pairs():
        return Refusal(RefusalCode.EVENT_CONTRADICTS_ALARM, "the event names dimensions the alarm does not have")
    return None


@dataclass(frozen=True)
class Target:
    """The node a rule remediates, or why there is none."""

    instance_id: str | None
    problem: str = ""
    code: RefusalCode = RefusalCode.NO_NODE


def resolve_target(
    rule: RemediationRule, alarm: AlarmDescription, alarm_tags: Mapping[str, str] | None = None
) -> Target:
    """The node named by the rule's target, as the alarm itself holds it: one value of its metric's dimension, or
    its tag. Never from the event."""
    if rule.target_kind == "dimension":
        if alarm.kind == "composite":
            return Target(None, f"no {rule.target_key} dimension (a composite alarm)")
        values = alarm.dimensions.get(rule.target_key, ())
        if not values:
            return Target(None, f"no {rule.target_key} dimension (its metrics)")
        if len(values) > 1:
            return Target(None, f"{len(values)} different {rule.target_key} dimensions: ambiguous")
        candidate = values[0]
    else:
        candidate = (alarm_tags or {}).get(rule.target_key, "")
        if not candidate:
            return Target(None, f"no tag {rule.target_key} on the alarm")
    if not is_managed_node_id(candidate):
        # Never echo the value: it is alarm configuration, not something to put in logs or notices unchecked.
        return Target(None, f"the {rule.target} value is not a managed node ID", RefusalCode.NOT_A_NODE_ID)
    return Target(candidate)


def missing_tags(required: Mapping[str, str], node_tags: Mapping[str, str]) -> list[str]:
    """``key=value`` of each required tag the node does not carry with that value."""
    return [f"{key}={value}" for key, value in sorted(required.items()) if node_tags.get(key) != value]


# ---------------------------------------------------------------------------------------- storm breaker
STORM_WINDOW: Final = timedelta(hours=1)


@dataclass(frozen=True)
class StormStart:
    """One remediation a rule started: when, and for which event (so a redelivery is not counted twice)."""

    at: datetime
    event_id: str


@dataclass(frozen=True)
class StormDecision:
    admitted: bool
    # The starts to keep (those inside the window, plus this one when admitted).
    starts: tuple[StormStart, ...]
    # This start's position in the window (admitted), or how many the window holds (refused).
    count: int
    # Refused: when the oldest start leaves the window.
    free_at: datetime | None = None


def admit_storm(
    starts: Sequence[StormStart], *, event_id: str, now: datetime, limit: int, window: timedelta = STORM_WINDOW
) -> StormDecision:
    """At most ``limit`` starts per rule in any ``window`` (a sliding window, not a clock hour: two starts at 10:59
    and two at 11:00 are four in one minute). A start already counted for ``event_id`` is admitted again as is."""
    recent = tuple(sorted((s for s in starts if s.at > now - window), key=lambda s: s.at))
    for position, start in enumerate(recent, 1):
        if start.event_id == event_id:
            return StormDecision(True, recent, position)
    if len(recent) >= limit:
        return StormDecision(False, recent, len(recent), recent[0].at + window)
    return StormDecision(True, (*recent, StormStart(now, event_id)), len(recent) + 1)


@dataclass(frozen=True)
class VerifyDecision:
    """What a verification timer finds: check the alarm now, check again at ``recheck_at``, or nothing to verify."""

    action: Literal["check_alarm", "recheck", "done"]
    recheck_at: datetime | None = None
    reason: str = ""


def decide_verification(
    rollout_state: str, ended_at: datetime | None, now: datetime, verify_after: timedelta
) -> VerifyDecision:
    """After a successful run the alarm has ``verify_after`` to get back to OK. A run still going is waited for; a run
    that did not succeed is not verified (its own rollout summary reports the failure)."""
    if rollout_state in ("PENDING", "RUNNING", "BAKING"):
        return VerifyDecision("recheck", now + verify_after, "the runbook is still running")
    if rollout_state != "SUCCEEDED" or ended_at is None:
        return VerifyDecision("done", reason=f"the runbook ended {rollout_state}: nothing to verify")
    due = ended_at + verify_after
    if now < due:
        return VerifyDecision("recheck", due, "the alarm still has time to recover")
    return VerifyDecision("check_alarm")
