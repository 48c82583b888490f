"""Value types of a spec and the annotations that give each its JSON Schema and its plain-worded errors.

A new field gets a correct schema and clear errors by using these: ``WaveSize``/``BudgetSize`` (a count or a
percentage), ``DurationLimit(maximum=..., limit=...)`` (seconds or ``"30m"``, always with an upper bound that the
error names), ``Range(minimum, maximum, limit)``, ``Matching(regex, rule)`` (a string of a given form),
``AlsoAccepts(schema)`` (a shorthand a before-validator expands). Validators raise ``ValueError`` with a message for
a person, or ``FieldProblem`` for a part of the value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

# The forms a size may take, shared by the parser and the JSON Schema so both accept exactly the same text.
COUNT_TEXT = r"[0-9]+"
_PERCENT_ANY = r"[0-9]+(?:\.[0-9]+)?%"
# More than 0% up to 100% (and, for a budget, 0% too), written with at most two digits before the point.
PERCENT_TEXT = r"(?!0+(?:\.0+)?%$)(?:100(?:\.0+)?|[0-9]{1,2}(?:\.[0-9]+)?)%"
PERCENT_OR_ZERO_TEXT = r"(?:100(?:\.0+)?|[0-9]{1,2}(?:\.[0-9]+)?)%"

_SIZE_HELP = "use a count like 5 or a percentage like '10%'"


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

    @property
    def is_count(self) -> bool:
        return self.count is not None

    @property
    def value(self) -> float:
        """The number as written: the count, or the percentage."""
        return float(self.count if self.count is not None else self.percent or 0)

    def __str__(self) -> str:
        if self.count is not None:
            return str(self.count)
        return f"{self.percent:g}%"


def shown(value: Any) -> str:
    """A value as the spec's author wrote it: ``true``, ``null``, ``'10 %'``, ``5``."""
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_size(value: Any, *, allow_zero: bool) -> Size:
    if isinstance(value, Size):
        return value
    lowest_count = "0 or more" if allow_zero else "1 or more"
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{shown(value)} is not a valid size ({_SIZE_HELP})")
    if isinstance(value, int):
        if value < 0 or (value == 0 and not allow_zero):
            raise ValueError(f"{shown(value)} is not a valid size (a count must be {lowest_count})")
        return Size(count=value)
    if re.fullmatch(COUNT_TEXT, value):
        return parse_size(int(value), allow_zero=allow_zero)
    if re.fullmatch(PERCENT_OR_ZERO_TEXT if allow_zero else PERCENT_TEXT, value):
        return Size(percent=float(value[:-1]))
    if re.fullmatch(_PERCENT_ANY, value):
        lowest = "from 0%" if allow_zero else "more than 0%"
        raise ValueError(f"{shown(value)} is not a valid size (a percentage must be {lowest} up to 100%)")
    raise ValueError(f"{shown(value)} is not a valid size ({_SIZE_HELP})")


def _size_json(size: Size) -> int | str:
    return size.count if size.count is not None else str(size)


def size_schema(*, allow_zero: bool) -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "integer", "minimum": 0 if allow_zero else 1},
            {"type": "string", "pattern": f"^{COUNT_TEXT}$" if allow_zero else "^0*[1-9][0-9]*$"},
            {"type": "string", "pattern": f"^{PERCENT_OR_ZERO_TEXT if allow_zero else PERCENT_TEXT}$"},
        ],
        "description": "A count (5) or a percentage ('10%')",
    }


WaveSize = Annotated[
    Size,
    BeforeValidator(lambda value: parse_size(value, allow_zero=False)),
    PlainSerializer(_size_json),
    WithJsonSchema(size_schema(allow_zero=False)),
]
BudgetSize = Annotated[
    Size,
    BeforeValidator(lambda value: parse_size(value, allow_zero=True)),
    PlainSerializer(_size_json),
    WithJsonSchema(size_schema(allow_zero=True)),
]


# ---------------------------------------------------------------------------------------------------- durations
_DURATION = re.compile(r"([0-9]+)([smhd]?)")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def format_seconds(seconds: int) -> str:
    """``604800`` -> ``7d``, ``5400`` -> ``90m``, ``45`` -> ``45s``: the largest unit that divides it."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_duration(value: Any) -> int:
    """Seconds from ``90``, ``"90s"``, ``"30m"``, ``"2h"`` or ``"1d"``."""
    if isinstance(value, bool):
        raise ValueError(f"{shown(value)} is not a duration (use seconds, or a number with s, m, h or d, like '30m')")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{shown(value)} is not a duration (must be 0 or more)")
        return value
    if isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if match:
            return int(match.group(1)) * _DURATION_UNITS[match.group(2)]
    raise ValueError(f"{shown(value)} is not a duration (use seconds, or a number with s, m, h or d, like '30m')")


@dataclass(frozen=True)
class DurationLimit:
    """``Annotated[int, DurationLimit(maximum=..., limit=...)]``: a duration field (seconds as an integer, or
    ``"30m"``) of at most ``maximum`` seconds. ``limit`` names whose limit that is, for the error (e.g.
    "fleetwave's longest bake"). Every duration field has one: nothing waits forever by mistake."""

    maximum: int
    limit: str
    minimum: int = 0

    def check(self, value: Any) -> int:
        seconds = parse_duration(value)
        if seconds > self.maximum:
            raise ValueError(
                f"{shown(value)} is {format_seconds(seconds)}: at most {format_seconds(self.maximum)} ({self.limit})"
            )
        if seconds < self.minimum:
            raise ValueError(f"{shown(value)} is {format_seconds(seconds)}: at least {format_seconds(self.minimum)}")
        return seconds

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "anyOf": [
                {"type": "integer", "minimum": self.minimum, "maximum": self.maximum},
                {"type": "string", "pattern": r"^[0-9]+[smhd]?$"},
            ],
            "description": f"Seconds, or a number with s, m, h or d ('30m'); at most {format_seconds(self.maximum)}",
        }


@dataclass(frozen=True)
class Range:
    """``Annotated[int, Range(minimum, maximum, limit)]``: a whole number in a range; ``limit`` names whose range
    it is, for the error (e.g. "SSM's TimeoutSeconds")."""

    minimum: int
    maximum: int
    limit: str

    def check(self, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and not self.minimum <= value <= self.maximum:
            raise ValueError(f"{value} is out of range: {self.minimum:,} to {self.maximum:,} ({self.limit})")
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.update(minimum=self.minimum, maximum=self.maximum)
        return json_schema


# ------------------------------------------------------------------------------------------------- annotations
@dataclass(frozen=True)
class Matching:
    """A string that must match ``regex`` (the whole of it); ``rule`` says in words what is expected. The JSON
    Schema gets the same pattern."""

    regex: str
    rule: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        compiled = re.compile(self.regex)
        rule = self.rule

        def check(value: str) -> str:
            if not compiled.fullmatch(value):
                raise ValueError(f"{shown(value)} is not {rule}")
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = f"^(?:{self.regex})$"
        return json_schema


@dataclass(frozen=True)
class AlsoAccepts:
    """The field also accepts a shorthand (which a before-validator expands): its JSON Schema is ``anyOf`` the
    shorthand's schema and the full form's."""

    schema: dict[str, Any]

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"anyOf": [self.schema, handler(schema)]}
