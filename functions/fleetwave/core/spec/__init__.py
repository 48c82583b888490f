"""The rollout spec: models (``models``), value types (``types``), wave marks (``waves``), schedules
(``schedule``), the strict YAML reader (``loader``), problems in plain words (``problems``), the JSON Schema
(``schema``) and the start request (``requests``). Everything a caller needs is importable from here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from fleetwave.core.spec.loader import MAX_SPEC_BYTES, Marks, SpecLoadError, check_size, load_yaml
from fleetwave.core.spec.models import (
    BlackoutWindow,
    DocumentSpec,
    ErrorBudgetSpec,
    NotificationsSpec,
    OutputSpec,
    RequirementSpec,
    RolloutSpec,
    ScheduleSpec,
    SessionsSpec,
    TargetsSpec,
    normalize_parameters,
)
from fleetwave.core.spec.problems import (
    FieldProblem,
    SpecError,
    SpecProblem,
    format_path,
    format_validation_error,
    located_problems,
    split_problem,
)
from fleetwave.core.spec.requests import encode_request, spec_digest, start_request
from fleetwave.core.spec.schema import fields_at, spec_json_schema
from fleetwave.core.spec.types import Size, format_seconds, parse_duration
from fleetwave.core.spec.waves import WaveMarksError, resolve_wave_sizes

NOT_A_MAPPING = "a spec is a mapping of fields, e.g. name:, document:, targets:"


def parse_spec(data: Any, *, marks: Marks | None = None, source: str | None = None) -> RolloutSpec:
    """Validate a spec from parsed YAML/JSON, raising SpecError with one problem per line.

    The data is validated as JSON, strictly (``"3600"`` is text, not a number), as the JSON Schema describes it.
    With ``marks`` (from ``load_yaml``) every problem carries its line and column in ``source``.
    """

    def place(loc: tuple[int | str, ...], about_key: bool = False) -> tuple[int | None, int | None]:
        found = marks.locate(loc, about_key=about_key) if marks is not None else None
        return found if found is not None else (None, None)

    where = source if marks is not None else None
    if not isinstance(data, Mapping):
        raise SpecError([SpecProblem("", NOT_A_MAPPING, *place(()), where)])
    try:
        text = json.dumps(data, allow_nan=False)
    except (TypeError, ValueError):
        raise SpecError(
            [SpecProblem("", "the spec holds values that are not JSON (text, numbers, lists...)")]
        ) from None
    try:
        return RolloutSpec.model_validate_json(text, strict=True)
    except ValidationError as error:
        problems: list[SpecProblem] = [
            SpecProblem(format_path(p.loc), p.rule, *place(p.loc, p.about_key), where)
            for p in located_problems(error, fields_at)
        ]
        # In reading order; a spec that is not from a file keeps pydantic's (field) order.
        problems.sort(key=lambda problem: (problem.line or 0, problem.column or 0))
        raise SpecError(problems) from None


def place_problems(lines: list[str], marks: Marks, source: str) -> list[SpecProblem]:
    """Problems found after validation (start_rollout's rejections, a plan's), as text ``path: rule``, placed at
    their field's line and column in the spec they are about."""
    placed = []
    for line in lines:
        found = split_problem(line)
        if found is None:
            placed.append(SpecProblem("", line, source=source))
            continue
        loc, rule = found
        where = marks.locate(loc)
        line_number, column = where if where is not None else (None, None)
        placed.append(SpecProblem(format_path(loc), rule, line_number, column, source))
    return placed


def read_spec(text: str, *, source: str = "spec") -> tuple[RolloutSpec, Marks]:
    """Read spec text (YAML or JSON) strictly and validate it: the spec and where each of its values is written.
    Problems carry ``source:line:column``."""
    try:
        data, marks = load_yaml(text)
    except SpecLoadError as error:
        problem = error.problem
        raise SpecError([SpecProblem(problem.path, problem.rule, problem.line, problem.column, source)]) from None
    return parse_spec(data, marks=marks, source=source), marks


def load_spec_text(text: str, *, source: str = "spec") -> RolloutSpec:
    """Read spec text (YAML or JSON) strictly and validate it; problems carry ``source:line:column``."""
    return read_spec(text, source=source)[0]


__all__ = [
    "MAX_SPEC_BYTES",
    "BlackoutWindow",
    "DocumentSpec",
    "ErrorBudgetSpec",
    "FieldProblem",
    "Marks",
    "NotificationsSpec",
    "OutputSpec",
    "RequirementSpec",
    "RolloutSpec",
    "ScheduleSpec",
    "SessionsSpec",
    "Size",
    "SpecError",
    "SpecLoadError",
    "SpecProblem",
    "TargetsSpec",
    "WaveMarksError",
    "check_size",
    "encode_request",
    "format_seconds",
    "format_validation_error",
    "load_spec_text",
    "load_yaml",
    "normalize_parameters",
    "parse_duration",
    "parse_spec",
    "place_problems",
    "read_spec",
    "resolve_wave_sizes",
    "spec_digest",
    "spec_json_schema",
    "start_request",
]
