"""What is wrong with a spec, in plain words: one ``SpecProblem`` per problem, with its field path, the rule it
breaks and, when the spec came from a file, its line and column.

Validators say what is wrong in their own words (``ValueError`` or, for a problem deeper than the field they
check, ``FieldProblem``); pydantic's own error types are turned into plain wording here, in one table, so no
Python or pydantic text (``int()``, class names, "Value error,") reaches a user.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from fleetwave.core.spec.types import shown

Loc = tuple[int | str, ...]

ROOT = "(spec)"


@dataclass(frozen=True)
class SpecProblem:
    """One problem: ``path`` (``waves[1]``, ``targets.tags["Patch Group"]``; empty for the spec as a whole), the
    ``rule`` it breaks, and where it is in the file (1-based; None when the spec did not come from a file)."""

    path: str
    rule: str
    line: int | None = None
    column: int | None = None
    source: str | None = None

    def __str__(self) -> str:
        where = [part for part in (self.source, self.line, self.column) if part is not None]
        prefix = ":".join(str(part) for part in where)
        # The spec as a whole (no path) needs no "(spec)" when its place is given.
        subject = self.path or ("" if prefix else ROOT)
        text = f"{subject}: {self.rule}" if subject else self.rule
        return f"{prefix}: {text}" if prefix else text

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "column": self.column, "rule": self.rule}


class SpecError(ValueError):
    """A spec that cannot run. ``problems`` holds one line per problem (``file:line:column: path: rule``, or
    ``path: rule`` for a spec that did not come from a file); ``details`` the same as ``SpecProblem`` objects."""

    def __init__(self, problems: Sequence[SpecProblem | str]) -> None:
        self.details = [p if isinstance(p, SpecProblem) else SpecProblem("", p) for p in problems]
        self.problems = [str(p) for p in self.details]
        super().__init__("; ".join(self.problems))


class FieldProblem(ValueError):
    """Raised by a validator about a part of the value it checks: ``path`` is relative to that value (e.g. a
    model validator of the spec raising about ``("waves", 2)``), so the problem is reported at the right field
    and line."""

    def __init__(self, path: Loc, message: str) -> None:
        super().__init__(message)
        self.path = tuple(path)
        self.message = message


def format_path(loc: Iterable[int | str]) -> str:
    """``("targets", "tags", "Patch Group")`` -> ``targets.tags["Patch Group"]``; ``("waves", 2)`` -> ``waves[2]``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.isidentifier():
            path += f".{part}" if path else part
        else:
            escaped = part.replace("\\", "\\\\").replace('"', '\\"')
            path += f'["{escaped}"]'
    return path


_PATH_PART = re.compile(r'(?:^|\.)([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]')


def parse_path(path: str) -> Loc | None:
    """The location a path names (``format_path``'s inverse): ``waves[1]`` -> ``("waves", 1)``; None if ``path``
    is not a field path."""
    loc: list[int | str] = []
    position = 0
    for match in _PATH_PART.finditer(path):
        if match.start() != position:
            return None
        name, index, quoted = match.groups()
        if name is not None:
            loc.append(name)
        elif index is not None:
            loc.append(int(index))
        else:
            loc.append(re.sub(r"\\(.)", r"\1", quoted))
        position = match.end()
    return tuple(loc) if loc and position == len(path) else None


def split_problem(line: str) -> tuple[Loc, str] | None:
    """``"document.parameters.x: rule"`` -> (location, rule), for problems that arrive as text (a rejection by
    start_rollout, a plan); None when the line does not start with a field path."""
    path, separator, rule = line.partition(": ")
    loc = parse_path(path) if separator else None
    return (loc, rule) if loc is not None else None


# Parts of pydantic's error locations that name its own machinery, not a field.
_INTERNAL_LOC = frozenset({"constrained-str", "lax-or-strict", "json-or-python", "[key]", "function-after"})


def _clean_loc(loc: Loc) -> tuple[Loc, bool]:
    """The field path of a pydantic location, and whether the error is about a mapping's key."""
    cleaned: list[int | str] = []
    about_key = False
    for part in loc:
        if part == "[key]":
            about_key = True
            continue
        if isinstance(part, str) and (part in _INTERNAL_LOC or part.startswith(("function-", "tagged-union["))):
            continue
        cleaned.append(part)
    return tuple(cleaned), about_key


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {shown(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return "something else"


def plain_message(item: Mapping[str, Any]) -> str:
    """One pydantic error in plain words."""
    kind = str(item["type"])
    ctx: Mapping[str, Any] = item.get("ctx") or {}
    value = item.get("input")
    if kind in {"value_error", "assertion_error"}:
        error = ctx.get("error")
        return error.message if isinstance(error, FieldProblem) else str(error)
    got = f", not {_kind(value)}"
    simple = {
        "missing": "required field is missing",
        "extra_forbidden": "unknown field",
        "model_type": f"must be a mapping of fields (key: value){got}",
        "model_attributes_type": f"must be a mapping of fields (key: value){got}",
        "dict_type": f"must be a mapping (key: value){got}",
        "list_type": f"must be a list{got}",
        "int_type": f"must be a whole number{got}",
        "int_parsing": f"must be a whole number{got}",
        "int_from_float": f"must be a whole number{got}",
        "float_type": f"must be a number{got}",
        "float_parsing": f"must be a number{got}",
        "bool_type": f"must be true or false{got}",
        "bool_parsing": f"must be true or false{got}",
    }
    if kind in simple:
        return simple[kind]
    if kind == "string_type":
        hint = f" (write it in quotes: '{value}')" if isinstance(value, int | float) else ""
        return f"must be text{got}{hint}"
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("more than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"{shown(value)} is out of range: must be {words} {ctx.get(key)}"
    if kind in {"string_too_short", "string_too_long"}:
        words = "at least" if kind == "string_too_short" else "at most"
        limit = ctx.get("min_length" if kind == "string_too_short" else "max_length")
        return f"{shown(value)} is too {'short' if words == 'at least' else 'long'}: {words} {limit} characters"
    if kind in {"too_short", "too_long"}:
        words = "at least" if kind == "too_short" else "at most"
        limit = ctx.get("min_length" if kind == "too_short" else "max_length")
        count = len(value) if isinstance(value, Sequence) else "?"
        return f"has {count} items; must have {words} {limit}"
    if kind in {"literal_error", "enum"}:
        return f"{shown(value)} is not one of {ctx.get('expected', 'the allowed values')}"
    # A type this table does not know yet: say what was given, without pydantic's wording.
    return f"{shown(value)} is not valid here"


def _suggestion(unknown: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(unknown, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class Located:
    """A problem before it is placed in a file: the field's location and whether it is about a mapping key."""

    loc: Loc
    rule: str
    about_key: bool = False


def located_problems(error: ValidationError, known_fields: Any = None) -> list[Located]:
    """Every error of a validation, as (location, plain rule). ``known_fields(loc)`` lists the fields allowed at a
    location, to suggest one for an unknown field."""
    found: list[Located] = []
    for item in error.errors(include_url=False):
        loc, about_key = _clean_loc(tuple(item["loc"]))
        ctx = item.get("ctx") or {}
        problem = ctx.get("error")
        if isinstance(problem, FieldProblem):
            loc = loc + problem.path
        rule = plain_message(item)
        if item["type"] == "extra_forbidden":
            about_key = True
            if known_fields is not None and loc and isinstance(loc[-1], str):
                rule += _suggestion(loc[-1], known_fields(loc[:-1]))
        found.append(Located(loc, rule, about_key))
    return found


def format_validation_error(error: ValidationError) -> list[str]:
    """One ``path: rule`` line per problem, e.g. ``waves[2]: '120%' is not a valid size``."""
    return [f"{format_path(p.loc) or ROOT}: {p.rule}" for p in located_problems(error)]
