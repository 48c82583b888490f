"""The rollout spec: what runs, on what, how, when and who hears. Validated with pydantic v2.

Sizes (waves, max_concurrency, error budget) are a count (``5``) or a percentage (``"10%"``). Wave sizes are
cumulative marks: ``[1, "10%", "50%", "100%"]`` means a one-node canary, then up to 10% of the targets, then up to
50%, then the rest. The last wave always takes every target left, so no target is ever dropped.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from datetime import time
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from fleetwave.constants import MAX_COMMENT_LENGTH, MAX_TIMEOUT_SECONDS, MIN_TIMEOUT_SECONDS
from fleetwave.core.status import BUDGETABLE_STATUSES, DEFAULT_BUDGET_STATUSES, InvocationStatus

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_INSTANCE_ID = re.compile(r"^(i-(\w{8}|\w{17})|mi-\w{17})\Z")
_DOCUMENT_NAME = re.compile(r"^[a-zA-Z0-9_\-.:/]{3,128}\Z")
_DOCUMENT_VERSION = re.compile(r"^([$]LATEST|[$]DEFAULT|[1-9][0-9]*)\Z")
_SPEC_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}\Z")


class SpecError(ValueError):
    """A spec that cannot run. ``problems`` holds one ``field.path: rule`` line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Size(BaseModel):
    """A count of targets or a percentage of a whole."""

    model_config = ConfigDict(frozen=True)

    count: int | None = None
    percent: float | None = None

    def resolve(self, whole: int, *, rounding: Literal["up", "down"] = "up") -> int:
        if self.count is not None:
            return self.count
        assert self.percent is not None
        exact = self.percent * whole / 100
        # Round away float noise first (e.g. 7% of 100 = 7.000000000000001).
        exact = round(exact, 9)
        return math.ceil(exact) if rounding == "up" else math.floor(exact)

    def __str__(self) -> str:
        if self.count is not None:
            return str(self.count)
        return f"{self.percent:g}%"


def _parse_size(value: Any, *, allow_zero: bool) -> Size:
    if isinstance(value, Size):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a valid size (use a count like 5 or a percentage like '10%')")
    if isinstance(value, int):
        if value < 0 or (value == 0 and not allow_zero):
            raise ValueError(
                f"{value!r} is not a valid size (a count must be {'0 or more' if allow_zero else '1 or more'})"
            )
        return Size(count=value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return _parse_size(int(text), allow_zero=allow_zero)
        match = _PERCENT.match(text)
        if match:
            percent = float(match.group(1))
            if percent > 100 or percent < 0 or (percent == 0 and not allow_zero):
                lowest = "from 0%" if allow_zero else "more than 0%"
                raise ValueError(f"{value!r} is not a valid size (a percentage must be {lowest} up to 100%)")
            return Size(percent=percent)
    raise ValueError(f"{value!r} is not a valid size (use a count like 5 or a percentage like '10%')")


def _size(value: Any) -> Size:
    return _parse_size(value, allow_zero=False)


def _size_or_zero(value: Any) -> Size:
    return _parse_size(value, allow_zero=True)


def _size_json(size: Size) -> int | str:
    return size.count if size.count is not None else str(size)


_SIZE_SCHEMA = {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": r"^\d+(\.\d+)?%$"}]}
_SIZE0_SCHEMA = {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": r"^\d+(\.\d+)?%$"}]}

WaveSize = Annotated[
    Size,
    BeforeValidator(_size),
    PlainSerializer(_size_json),
    Field(json_schema_extra=_SIZE_SCHEMA),
]
BudgetSize = Annotated[
    Size,
    BeforeValidator(_size_or_zero),
    PlainSerializer(_size_json),
    Field(json_schema_extra=_SIZE0_SCHEMA),
]


def parse_duration(value: Any) -> int:
    """Seconds from ``90``, ``"90s"``, ``"30m"``, ``"2h"`` or ``"1d"``."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value!r} is not a duration (must be 0 or more)")
        return value
    if isinstance(value, str):
        match = _DURATION.match(value.lower())
        if match:
            return int(match.group(1)) * _DURATION_UNITS[match.group(2)]
    raise ValueError(f"{value!r} is not a duration (use seconds, or a number with s, m, h or d, like '30m')")


Duration = Annotated[
    int,
    BeforeValidator(parse_duration),
    Field(json_schema_extra={"anyOf": [{"type": "integer"}, {"type": "string", "pattern": r"^\d+[smhd]?$"}]}),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DocumentSpec(_Model):
    """The SSM Command document to run, pinned at start to the version and hash validated then."""

    name: str = Field(description="Document name or ARN, e.g. AWS-RunPatchBaseline")
    version: str = Field("$DEFAULT", description="$DEFAULT, $LATEST or a version number")
    parameters: dict[str, list[str]] = Field(default_factory=dict, description="Document parameters")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _DOCUMENT_NAME.match(value):
            raise ValueError(f"{value!r} is not a valid document name")
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> str:
        text = str(value)
        if not _DOCUMENT_VERSION.match(text):
            raise ValueError(f"{value!r} is not a valid document version ($DEFAULT, $LATEST or a number)")
        return text

    @field_validator("parameters", mode="before")
    @classmethod
    def _parameters(cls, value: Any) -> Any:
        return normalize_parameters(value) if isinstance(value, Mapping) else value


def normalize_parameters(value: Mapping[Any, Any]) -> dict[str, list[str]]:
    """Document parameters as SSM takes them: every value a list of strings (mappings and lists as JSON)."""
    normalized: dict[str, list[str]] = {}
    for key, raw in value.items():
        items = raw if isinstance(raw, list) else [raw]
        normalized[str(key)] = [json.dumps(item) if isinstance(item, dict | list) else str(item) for item in items]
    return normalized


class TargetsSpec(_Model):
    """Managed nodes by ID, by EC2 tag, or both (the union)."""

    instance_ids: list[str] = Field(default_factory=list)
    tags: dict[str, list[str]] = Field(default_factory=dict, description="Tag key -> accepted values")

    @field_validator("instance_ids")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        for instance_id in value:
            if not _INSTANCE_ID.match(instance_id):
                raise ValueError(f"{instance_id!r} is not a managed node ID (i-... or mi-...)")
        return value

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): (v if isinstance(v, list) else [v]) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> TargetsSpec:
        if not self.instance_ids and not self.tags:
            raise ValueError("name instance_ids, tags, or both")
        return self


class ErrorBudgetSpec(_Model):
    """How many errors the whole rollout tolerates; one more halts it (like SSM's MaxErrors)."""

    allowed: BudgetSize = Field(default_factory=lambda: Size(count=0))
    counts: list[InvocationStatus] = Field(
        default_factory=lambda: sorted(DEFAULT_BUDGET_STATUSES),
        description="Statuses that spend the budget (default Failed and ExecutionTimedOut)",
    )

    @field_validator("counts")
    @classmethod
    def _counts(cls, value: list[InvocationStatus]) -> list[InvocationStatus]:
        for status in value:
            if status not in BUDGETABLE_STATUSES:
                allowed = ", ".join(sorted(BUDGETABLE_STATUSES))
                raise ValueError(f"{status.value!r} cannot spend the budget (choose from {allowed})")
        return value


class OutputSpec(_Model):
    s3_bucket: str | None = Field(default=None, min_length=3, max_length=63)
    s3_prefix: str | None = Field(default=None, max_length=500)
    cloudwatch_log_group: str | None = None
    cloudwatch_enabled: bool = False


class ScheduleSpec(_Model):
    cron: str = Field(description="EventBridge Scheduler cron body, e.g. '0 3 ? * TUE#2 *'")
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        body = value.strip()
        if body.startswith("cron(") and body.endswith(")"):
            body = body[5:-1]
        if len(body.split()) != 6:
            raise ValueError(
                f"{value!r} is not a cron expression (6 fields: minutes hours day-of-month month day-of-week year)"
            )
        return body

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"{value!r} is not a time zone") from error
        return value


class BlackoutWindow(_Model):
    """A daily window (in the schedule's time zone) during which no rollout starts."""

    start: time
    end: time
    days: list[Literal["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]] = Field(default_factory=list)


class RequirementSpec(_Model):
    """Start only if another spec's last rollout SUCCEEDED within the last ``within_days`` days."""

    spec: str
    within_days: int = Field(7, ge=1)


class SessionsSpec(_Model):
    """What to do with nodes that have an active Session Manager session."""

    mode: Literal["defer", "terminate_older_than", "ignore"] = "defer"
    older_than: Duration = 3600


class NotificationsSpec(_Model):
    slack: bool = True
    email: bool = True


class RolloutSpec(_Model):
    """A declarative rollout definition."""

    name: str = Field(description="Spec name: letters, digits, '.', '_' and '-'")
    description: str | None = None
    document: DocumentSpec
    targets: TargetsSpec
    waves: list[WaveSize] = Field(default_factory=lambda: [Size(percent=100)], min_length=1, max_length=50)
    max_concurrency: WaveSize = Field(default_factory=lambda: Size(count=50), description="Per wave, fleet-wide")
    error_budget: ErrorBudgetSpec = Field(default_factory=ErrorBudgetSpec)
    bake_time: Duration = 0
    alarm_gates: list[str] = Field(default_factory=list, max_length=20)
    timeout_seconds: int = Field(3600, ge=MIN_TIMEOUT_SECONDS, le=MAX_TIMEOUT_SECONDS)
    output: OutputSpec = Field(default_factory=OutputSpec)
    comment: str | None = Field(None, max_length=MAX_COMMENT_LENGTH)
    schedule: ScheduleSpec | None = None
    calendars: list[str] = Field(default_factory=list, description="SSM Change Calendar names or ARNs")
    blackout_windows: list[BlackoutWindow] = Field(default_factory=list)
    requires: RequirementSpec | None = None
    sessions: SessionsSpec = Field(default_factory=SessionsSpec)
    notifications: NotificationsSpec = Field(default_factory=NotificationsSpec)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _SPEC_NAME.match(value):
            raise ValueError(f"{value!r} is not a valid name (letters, digits, '.', '_', '-'; at most 64)")
        return value

    @field_validator("error_budget", mode="before")
    @classmethod
    def _budget_shorthand(cls, value: Any) -> Any:
        # `error_budget: "2%"` is short for `error_budget: {allowed: "2%"}`.
        if isinstance(value, int | str) and not isinstance(value, bool):
            return {"allowed": value}
        return value

    @model_validator(mode="after")
    def _waves_grow(self) -> RolloutSpec:
        # Marks of one kind must grow; a count after a percentage (or the reverse) is checked at plan time.
        previous: Size | None = None
        for index, mark in enumerate(self.waves):
            if previous is not None and _same_kind(previous, mark) and _value(mark) <= _value(previous):
                raise ValueError(
                    f"waves[{index}]: {mark} does not grow past waves[{index - 1}] ({previous}); "
                    "wave sizes are cumulative"
                )
            previous = mark
        return self


def _same_kind(a: Size, b: Size) -> bool:
    return (a.count is None) == (b.count is None)


def _value(size: Size) -> float:
    return float(size.count if size.count is not None else size.percent or 0)


def _loc(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith("function-") or part in {"constrained-str", "lax-or-strict", "json-or-python"}:
            continue
        else:
            path += f".{part}" if path else part
    return path or "(spec)"


def format_validation_error(error: ValidationError) -> list[str]:
    """One ``path: rule`` line per problem, e.g. ``waves[2]: '120%' is not a valid size``."""
    problems = []
    for item in error.errors():
        message = str(item["msg"])
        message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        elif item["type"] == "missing":
            message = "required field is missing"
        path = _loc(tuple(item["loc"]))
        if message.startswith("waves[") and path == "(spec)":
            problems.append(message)
        else:
            problems.append(f"{path}: {message}")
    return problems


def parse_spec(data: Any) -> RolloutSpec:
    """Validate a spec from parsed YAML/JSON, raising SpecError with one line per problem."""
    if not isinstance(data, Mapping):
        raise SpecError(["(spec): a spec is a mapping of fields, e.g. name:, document:, targets:"])
    try:
        return RolloutSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(format_validation_error(error)) from None


def spec_digest(spec: RolloutSpec) -> str:
    """SHA-256 of the spec's canonical JSON: what a scheduled start must match to be started (see start_scheduled)."""
    canonical = json.dumps(spec.model_dump(mode="json", exclude_none=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def load_spec_text(text: str, *, source: str = "spec") -> RolloutSpec:
    """Parse YAML (JSON is YAML too) and validate it."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SpecError([f"{source}: YAML syntax error{where}: {problem}"]) from None
    return parse_spec(data)


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema of a spec, for editors (YAML language server, VS Code)."""
    schema = RolloutSpec.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "fleetwave rollout spec"
    return schema
