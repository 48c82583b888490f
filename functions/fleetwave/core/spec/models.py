"""The rollout spec: what runs, on what, how, when and who hears. Validated with pydantic v2.

Sizes (waves, max_concurrency, error budget) are a count (``5``) or a percentage (``"10%"``). Wave sizes are
cumulative marks: ``[1, "10%", "50%", "100%"]`` means a one-node canary, then up to 10% of the targets, then up to
50%, then the rest (``waves.py``). Every duration has an upper bound and every limit a name (``types.py``).

A spec is validated as JSON (strict: ``"3600"`` is not a number), so the JSON Schema generated from these models
(``schema.py``) accepts what validation accepts, up to the rules a schema cannot say (cron fields, growing waves).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime, time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from fleetwave.constants import (
    MANAGED_NODE_ID_PATTERN,
    MAX_COMMENT_LENGTH,
    MAX_TIMEOUT_SECONDS,
    MIN_TIMEOUT_SECONDS,
)
from fleetwave.core.spec.problems import FieldProblem
from fleetwave.core.spec.schedule import (
    Cron,
    Rate,
    ScheduleError,
    next_cron_runs,
    next_rate_runs,
    parse_cron,
    parse_rate,
)
from fleetwave.core.spec.types import (
    AlsoAccepts,
    BudgetSize,
    DurationLimit,
    Matching,
    Range,
    Size,
    WaveSize,
    shown,
    size_schema,
)
from fleetwave.core.spec.waves import WaveMarksError, check_marks_grow, resolve_wave_sizes
from fleetwave.core.status import BUDGETABLE_STATUSES, DEFAULT_BUDGET_STATUSES, InvocationStatus

INSTANCE_ID = MANAGED_NODE_ID_PATTERN.removeprefix("^").removesuffix(r"\Z")
DOCUMENT_NAME = r"[a-zA-Z0-9_\-.:/]{3,128}"
DOCUMENT_VERSION = r"\$LATEST|\$DEFAULT|[1-9][0-9]*"
SPEC_NAME = r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}"
S3_BUCKET = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"
LOG_GROUP = r"[.\-_/#A-Za-z0-9]{1,512}"
TIME_OF_DAY = r"(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9])?"

# Upper bounds of durations: nothing waits forever because of a typo.
MAX_BAKE_SECONDS = 7 * 86400
MAX_SESSION_AGE_SECONDS = 30 * 86400


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _version(value: Any) -> Any:
    # `version: 3` (a number in YAML) means version "3".
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def normalize_parameters(value: Any) -> Any:
    """Document parameters as SSM takes them: every value a list of strings (mappings and lists as JSON)."""
    if not isinstance(value, Mapping):
        return value
    normalized: dict[str, list[str]] = {}
    for key, raw in value.items():
        items = raw if isinstance(raw, list) else [raw]
        for index, item in enumerate(items):
            if item is None:
                where = (str(key), index) if isinstance(raw, list) else (str(key),)
                raise FieldProblem(where, "a parameter value cannot be empty (null): write '' for an empty text")
        normalized[str(key)] = [json.dumps(item) if isinstance(item, dict | list) else _text(item) for item in items]
    return normalized


def _text(item: Any) -> str:
    return str(item).lower() if isinstance(item, bool) else str(item)


_PARAMETER_VALUE = {"type": ["string", "number", "boolean", "object"]}
_PARAMETER_ITEM = {"type": ["string", "number", "boolean", "object", "array"]}
Parameters = Annotated[
    dict[str, list[str]],
    BeforeValidator(normalize_parameters),
    WithJsonSchema(
        {
            "type": "object",
            "additionalProperties": {"anyOf": [_PARAMETER_VALUE, {"type": "array", "items": _PARAMETER_ITEM}]},
            "description": "Document parameters: a value or a list of values each",
        }
    ),
]


class DocumentSpec(_Model):
    """The SSM Command document to run, pinned at start to the version and hash validated then."""

    name: Annotated[str, Matching(DOCUMENT_NAME, "a document name (3 to 128 letters, digits, _-.:/) or ARN")] = Field(
        description="Document name or ARN, e.g. AWS-RunPatchBaseline"
    )
    version: Annotated[
        str,
        BeforeValidator(_version),
        Matching(DOCUMENT_VERSION, "a document version ($DEFAULT, $LATEST or a number)"),
        AlsoAccepts({"type": "integer", "minimum": 1}),
    ] = Field("$DEFAULT", description="$DEFAULT, $LATEST or a version number")
    parameters: Parameters = Field(default_factory=dict)


def _as_list(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


TagValues = Annotated[list[str], BeforeValidator(_as_list), AlsoAccepts({"type": "string"})]
InstanceId = Annotated[str, Matching(INSTANCE_ID, "a managed node ID (i-... or mi-...)")]


class TargetsSpec(_Model):
    """Managed nodes by ID, by EC2 tag, or both (the union)."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["instance_ids"], "properties": {"instance_ids": {"minItems": 1}}},
                {"required": ["tags"], "properties": {"tags": {"minProperties": 1}}},
            ]
        }
    )

    instance_ids: list[InstanceId] = Field(default_factory=list)
    tags: dict[str, TagValues] = Field(default_factory=dict, description="Tag key -> accepted values")

    @model_validator(mode="after")
    def _not_empty(self) -> TargetsSpec:
        if not self.instance_ids and not self.tags:
            raise ValueError("name instance_ids, tags, or both")
        return self

    @property
    def known_count(self) -> int | None:
        """How many targets the spec names when it names them only by ID; None when tags decide."""
        return None if self.tags else len(set(self.instance_ids))


BudgetStatus = Annotated[InvocationStatus, WithJsonSchema({"enum": sorted(s.value for s in BUDGETABLE_STATUSES)})]


class ErrorBudgetSpec(_Model):
    """How many errors the whole rollout tolerates; one more halts it (like SSM's MaxErrors)."""

    allowed: BudgetSize = Field(default_factory=lambda: Size(count=0))
    counts: list[BudgetStatus] = Field(
        default_factory=lambda: sorted(DEFAULT_BUDGET_STATUSES),
        description="Statuses that spend the budget (default Failed and ExecutionTimedOut)",
    )

    @field_validator("counts")
    @classmethod
    def _counts(cls, value: list[InvocationStatus]) -> list[InvocationStatus]:
        for index, status in enumerate(value):
            if status not in BUDGETABLE_STATUSES:
                allowed = ", ".join(sorted(BUDGETABLE_STATUSES))
                raise FieldProblem((index,), f"{status.value!r} cannot spend the budget (choose from {allowed})")
        return value


class OutputSpec(_Model):
    """Where SSM writes each invocation's output (the report links to it)."""

    s3_bucket: (
        Annotated[str, Matching(S3_BUCKET, "an S3 bucket name (3 to 63 lowercase letters, digits, . and -)")] | None
    ) = None
    s3_prefix: Annotated[str, Field(max_length=500)] | None = None
    cloudwatch_log_group: Annotated[str, Matching(LOG_GROUP, "a CloudWatch Logs group name")] | None = None
    cloudwatch_enabled: bool = False


class ScheduleSpec(_Model):
    """When EventBridge Scheduler starts the spec: a ``cron`` or a ``rate``, in a time zone."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["cron"]}, {"required": ["rate"]}]})

    cron: str | None = Field(None, description="Scheduler cron: '0 3 ? * TUE#2 *' or 'cron(0 3 ? * TUE#2 *)'")
    rate: str | None = Field(None, description="Scheduler rate: 'rate(7 days)' or '7 days'")
    timezone: str = Field("UTC", description="IANA time zone the cron is read in, e.g. Europe/Paris")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return parse_cron(value).body
        except ScheduleError as error:
            raise ValueError(str(error)) from None

    @field_validator("rate")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return parse_rate(value).expression
        except ScheduleError as error:
            raise ValueError(str(error)) from None

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone (an IANA name like Europe/Paris, or UTC)") from None
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> ScheduleSpec:
        if (self.cron is None) == (self.rate is None):
            raise ValueError("give a cron or a rate (exactly one)")
        return self

    @property
    def parsed(self) -> Cron | Rate:
        return parse_cron(self.cron) if self.cron is not None else parse_rate(self.rate or "")

    @property
    def expression(self) -> str:
        """The ScheduleExpression Scheduler takes: ``cron(...)`` or ``rate(...)``."""
        return self.parsed.expression

    def next_runs(self, now: datetime, count: int = 3) -> list[datetime]:
        """The next ``count`` start times after ``now``, in the schedule's time zone (a rate: if deployed now)."""
        parsed = self.parsed
        if isinstance(parsed, Cron):
            return next_cron_runs(parsed, self.timezone, now, count)
        return next_rate_runs(parsed, self.timezone, now, count)


def _time_of_day(value: Any) -> Any:
    if isinstance(value, time):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{shown(value)} is not a time of day (HH:MM in quotes, e.g. '22:00')")
    if not re.fullmatch(TIME_OF_DAY, value):
        raise ValueError(f"{value!r} is not a time of day (HH:MM, 00:00 to 23:59)")
    return time.fromisoformat(value)


TimeOfDay = Annotated[
    time, BeforeValidator(_time_of_day), WithJsonSchema({"type": "string", "pattern": f"^{TIME_OF_DAY}$"})
]


class BlackoutWindow(_Model):
    """A daily window (in the schedule's time zone) during which no rollout starts."""

    start: TimeOfDay
    end: TimeOfDay
    days: list[Literal["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]] = Field(default_factory=list)


class RequirementSpec(_Model):
    """Start only if another spec's last rollout SUCCEEDED within the last ``within_days`` days."""

    spec: Annotated[str, Matching(SPEC_NAME, "a spec name")]
    within_days: Annotated[int, Range(1, 365, "a year at most")] = 7


class SessionsSpec(_Model):
    """What to do with nodes that have an active Session Manager session."""

    mode: Literal["defer", "terminate_older_than", "ignore"] = "defer"
    older_than: Annotated[int, DurationLimit(maximum=MAX_SESSION_AGE_SECONDS, limit="fleetwave's longest")] = 3600


class NotificationsSpec(_Model):
    slack: bool = True
    email: bool = True


ErrorBudget = Annotated[ErrorBudgetSpec, AlsoAccepts(size_schema(allow_zero=True))]


class RolloutSpec(_Model):
    """A declarative rollout definition."""

    name: Annotated[str, Matching(SPEC_NAME, "a valid name (letters, digits, '.', '_', '-'; at most 64)")] = Field(
        description="Spec name: letters, digits, '.', '_' and '-'"
    )
    description: str | None = None
    document: DocumentSpec
    targets: TargetsSpec
    waves: list[WaveSize] = Field(default_factory=lambda: [Size(percent=100)], min_length=1, max_length=50)
    max_concurrency: WaveSize = Field(default_factory=lambda: Size(count=50), description="Per wave, fleet-wide")
    error_budget: ErrorBudget = Field(default_factory=ErrorBudgetSpec)
    bake_time: Annotated[int, DurationLimit(maximum=MAX_BAKE_SECONDS, limit="fleetwave's longest bake")] = 0
    alarm_gates: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(default_factory=list, max_length=20)
    timeout_seconds: Annotated[
        int, Range(MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS, "SSM's TimeoutSeconds, 30 seconds to 30 days")
    ] = 3600
    output: OutputSpec = Field(default_factory=OutputSpec)
    comment: Annotated[str, Field(max_length=MAX_COMMENT_LENGTH)] | None = None
    schedule: ScheduleSpec | None = None
    calendars: list[str] = Field(default_factory=list, description="SSM Change Calendar names or ARNs")
    blackout_windows: list[BlackoutWindow] = Field(default_factory=list)
    requires: RequirementSpec | None = None
    sessions: SessionsSpec = Field(default_factory=SessionsSpec)
    notifications: NotificationsSpec = Field(default_factory=NotificationsSpec)

    @field_validator("error_budget", mode="before")
    @classmethod
    def _budget_shorthand(cls, value: Any) -> Any:
        # `error_budget: "2%"` is short for `error_budget: {allowed: "2%"}`.
        if isinstance(value, int | str) and not isinstance(value, bool):
            return {"allowed": value}
        return value

    @model_validator(mode="after")
    def _waves_grow(self) -> RolloutSpec:
        try:
            check_marks_grow(self.waves)
            # A spec that names its targets only by ID knows how many there are: mixed marks are checked now.
            if self.targets.known_count:
                resolve_wave_sizes(self.waves, self.targets.known_count)
        except WaveMarksError as error:
            raise FieldProblem(("waves", error.index), error.message) from None
        return self

    @model_validator(mode="after")
    def _fits_the_start_path(self) -> RolloutSpec:
        from fleetwave.core.spec.requests import start_request_problem

        problem = start_request_problem(self)
        if problem is not None:
            raise FieldProblem(*problem)
        return self


__all__ = [
    "BlackoutWindow",
    "DocumentSpec",
    "ErrorBudgetSpec",
    "NotificationsSpec",
    "OutputSpec",
    "RequirementSpec",
    "RolloutSpec",
    "ScheduleSpec",
    "SessionsSpec",
    "TargetsSpec",
]
