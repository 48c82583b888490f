"""Reading spec text strictly: YAML 1.2 (JSON is YAML too), with every value's line and column kept.

Refused, each with its line and column: a key written twice (YAML would keep the last silently), a key that is not
text (``1:``, ``true:``), more than ``MAX_ALIASES`` aliases (``*name``; an alias bomb is refused while it is read,
before anything is expanded), nesting deeper than ``MAX_DEPTH``, recursive aliases, YAML tags other than text,
numbers, true/false, null, lists and mappings, and text longer than ``MAX_SPEC_BYTES``.

Scalars follow YAML 1.2's core schema, not YAML 1.1's: ``on``, ``yes``, ``no`` and ``22:00`` stay text and ``010`` is
ten; only ``true``/``false`` are booleans, and dates stay text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import BaseResolver

from fleetwave.core.spec.problems import Loc, SpecProblem, format_path

MAX_SPEC_BYTES = 8 * 1024 * 1024  # the start request a spec becomes must fit Lambda's 6 MB synchronous payload
MAX_ALIASES = 16
MAX_DEPTH = 32
# Values after aliases are expanded: far more than a spec of MAX_SPEC_BYTES holds, far less than a bomb makes.
MAX_VALUES = 2_000_000

_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_SCALAR_TAGS = frozenset({_STR, *(f"tag:yaml.org,2002:{kind}" for kind in ("int", "float", "bool", "null"))})


class SpecLoadError(Exception):
    """The text is not a spec fleetwave will read; ``problem`` says where and why."""

    def __init__(self, problem: SpecProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


@dataclass
class Marks:
    """Where each value (and each mapping key) of a spec is in its file: location -> (line, column), 1-based."""

    values: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    containers: set[Loc] = field(default_factory=set)  # mappings and lists

    def locate(self, loc: Loc, *, about_key: bool = False) -> tuple[int, int] | None:
        """The place of ``loc``: the key itself for a problem about a key, else the value; a location the file does
        not have is placed at its nearest parent: a value a validator expanded (``error_budget: "2%"``) at that
        value, a field missing from a mapping at the mapping's key."""
        if about_key and loc in self.keys:
            return self.keys[loc]
        if loc in self.values:  # a mapping or a list is placed at its key, where a reader looks for it
            return self.keys.get(loc, self.values[loc]) if loc in self.containers else self.values[loc]
        probe = loc
        while probe and probe not in self.values:
            probe = probe[:-1]
        if probe in self.containers:
            return self.keys.get(probe) or self.values.get(probe)
        return self.values.get(probe)


def _place(mark: Any) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


def _problem(mark: Any, rule: str, path: Loc = ()) -> SpecLoadError:
    line, column = _place(mark) if mark is not None else (None, None)
    return SpecLoadError(SpecProblem(format_path(path), rule, line, column))


class StrictResolver(BaseResolver):
    """YAML 1.2 core schema: null, true/false, decimal/octal (0o)/hex (0x) integers, floats; everything else text."""


StrictResolver.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
StrictResolver.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
StrictResolver.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$"),
    list("-+.0123456789"),
)
StrictResolver.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)
StrictResolver.add_implicit_resolver(_MERGE, re.compile(r"^<<$"), ["<"])


class StrictConstructor(SafeConstructor):
    def construct_yaml_int(self, node: Any) -> int:
        text = str(self.construct_scalar(node))
        if text.startswith(("0o", "0x")):
            return int(text, 0)
        return int(text, 10)  # YAML 1.2: 010 is ten, not an octal eight


StrictConstructor.add_constructor("tag:yaml.org,2002:int", StrictConstructor.construct_yaml_int)  # type: ignore[type-var]

if getattr(yaml, "__with_libyaml__", False):
    from yaml.cyaml import CParser  # type: ignore[attr-defined]

    class _Events(CParser):
        """libyaml scans and parses (tens of times faster than pure Python); Python composes the nodes, so aliases
        and depth are counted as they are read."""

else:  # pragma: no cover - PyYAML wheels ship libyaml
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Events(Reader, Scanner, Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)


class StrictLoader(Composer, _Events, StrictConstructor, StrictResolver):  # type: ignore[misc]
    """A SafeLoader with the checks above; ``load()`` returns the data and its marks."""

    def __init__(self, stream: str) -> None:
        _Events.__init__(self, stream)
        Composer.__init__(self)
        StrictConstructor.__init__(self)
        StrictResolver.__init__(self)
        self.aliases = 0
        self.depth = 0
        self.values_built = 0
        self.marks = Marks()

    # ---------------------------------------------------------------- while composing (nothing expanded yet)
    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()
        assert event is not None  # compose_node is only called with an event ahead
        if isinstance(event, AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _problem(
                    event.start_mark,
                    f"more than {MAX_ALIASES} YAML aliases (*{event.anchor}); a spec may use at most {MAX_ALIASES}",
                )
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _problem(event.start_mark, f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self.depth -= 1

    # ---------------------------------------------------------------- building plain data with its marks
    def build(self, node: Node, loc: Loc = (), ancestors: frozenset[int] = frozenset()) -> Any:
        if id(node) in ancestors:  # placed at its key: the node's own mark is the anchor's
            line, column = self.marks.keys.get(loc, _place(node.start_mark))
            rule = "a YAML alias refers to a value that contains it (recursive alias)"
            raise SpecLoadError(SpecProblem(format_path(loc), rule, line, column))
        self.values_built += 1
        if self.values_built > MAX_VALUES:
            raise _problem(node.start_mark, f"the spec expands to more than {MAX_VALUES:,} values (YAML aliases)", loc)
        self.marks.values[loc] = _place(node.start_mark)
        inside = ancestors | {id(node)}
        if isinstance(node, ScalarNode):
            if node.tag not in _SCALAR_TAGS:
                raise _problem(node.start_mark, _tag_rule(node.tag), loc)
            return self.construct_object(node, deep=True)
        self.marks.containers.add(loc)
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ:
                raise _problem(node.start_mark, _tag_rule(node.tag), loc)
            return [self.build(child, (*loc, index), inside) for index, child in enumerate(node.value)]
        if not isinstance(node, MappingNode) or node.tag != _MAP:
            raise _problem(node.start_mark, _tag_rule(node.tag), loc)
        self._check_keys(node, loc)
        self.flatten_mapping(node)  # merged keys ("<<: *defaults") first, so the mapping's own keys win
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, loc)
            self.marks.keys[(*loc, key)] = _place(key_node.start_mark)
            result[key] = self.build(value_node, (*loc, key), inside)
        return result

    def _check_keys(self, node: MappingNode, loc: Loc) -> None:
        seen: dict[str, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self._key(key_node, loc)
            if key in seen:
                line, column = _place(seen[key])
                raise _problem(
                    key_node.start_mark,
                    f"written twice (first at line {line}, column {column}); YAML would keep only the last",
                    (*loc, key),
                )
            seen[key] = key_node.start_mark

    def _key(self, key_node: Node, loc: Loc) -> str:
        if isinstance(key_node, ScalarNode) and key_node.tag == _STR:
            return str(key_node.value)
        if isinstance(key_node, ScalarNode) and key_node.tag in _SCALAR_TAGS:
            return_kind = key_node.tag.rsplit(":", 1)[-1]
            kinds = {"int": "a number", "float": "a number", "bool": "true/false", "null": "empty (null)"}
            raise _problem(
                key_node.start_mark,
                f"the key {key_node.value!r} is read as {kinds[return_kind]}; keys are text: write it in quotes",
                loc,
            )
        raise _problem(key_node.start_mark, "a key must be text, not a list or a mapping", loc)


def _tag_rule(tag: str) -> str:
    shown = tag.replace("tag:yaml.org,2002:", "!!")
    return f"the YAML tag {shown} is not allowed in a spec (only text, numbers, true/false, null, lists and mappings)"


def _place_of_offset(text: str, offset: int) -> tuple[int, int]:
    head = text[:offset]
    line = head.count("\n") + 1
    return line, offset - (head.rfind("\n") + 1) + 1


def check_size(text: str, size: int | None = None) -> None:
    """Refuse text over MAX_SPEC_BYTES, at the line and column where the limit is passed. ``size`` is the size of
    the whole file when ``text`` is only its beginning (a reader need not read a huge file to refuse it)."""
    if size is None and len(text) <= MAX_SPEC_BYTES // 4:  # fast path: at most 4 bytes a character
        return
    encoded = text.encode("utf-8")
    size = len(encoded) if size is None else size
    if size <= MAX_SPEC_BYTES:
        return
    inside = encoded[:MAX_SPEC_BYTES].decode("utf-8", errors="ignore")
    line, column = _place_of_offset(text, len(inside))
    raise SpecLoadError(
        SpecProblem(
            "",
            f"the spec is {size / (1024 * 1024):.1f} MiB; a spec may be at most "
            f"{MAX_SPEC_BYTES // (1024 * 1024)} MiB "
            "(this is where that limit is passed)",
            line,
            column,
        )
    )


def load_yaml(text: str) -> tuple[Any, Marks]:
    """The plain data of spec text (dicts, lists, text, numbers, booleans, None) and its marks."""
    check_size(text)
    loader = StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, loader.marks
        return loader.build(node), loader.marks
    except SpecLoadError:
        raise
    except ConstructorError as error:
        raise _problem(error.problem_mark, _plain_yaml(error)) from None
    except yaml.MarkedYAMLError as error:
        raise _problem(error.problem_mark, f"YAML syntax error: {_plain_yaml(error)}") from None
    except yaml.YAMLError as error:
        raise SpecLoadError(SpecProblem("", f"YAML syntax error: {error}")) from None
    finally:
        loader.dispose()


def _plain_yaml(error: yaml.MarkedYAMLError) -> str:
    problem = str(error.problem or "not YAML").rstrip(".")
    context = str(error.context or "")
    return f"{context}, {problem}" if context and not context.startswith("while") else problem
