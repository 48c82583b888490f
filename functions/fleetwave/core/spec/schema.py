"""The JSON Schema of a spec, generated from the models (``fleetwave schema``, examples/rollout-spec.schema.json).

The models carry their own schema pieces (``types.py``), so a new field needs nothing here. A test validates every
example and the README's spec against it with the ``jsonschema`` package, and checks that invalid specs are refused
by both the schema and validation.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fleetwave.core.spec.models import RolloutSpec
from fleetwave.core.spec.problems import Loc

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


@cache
def _generated() -> dict[str, Any]:
    return RolloutSpec.model_json_schema(mode="validation")


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema of a spec, for editors (YAML language server, VS Code) and tools."""
    schema = {"$schema": SCHEMA_DIALECT, "title": "fleetwave rollout spec", **_generated()}
    schema["title"] = "fleetwave rollout spec"
    return schema


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _branches(schema: dict[str, Any], node: dict[str, Any]) -> list[dict[str, Any]]:
    node = _resolve(schema, node)
    options = node.get("anyOf") or node.get("oneOf")
    return [_resolve(schema, option) for option in options] if options else [node]


def fields_at(loc: Loc) -> list[str]:
    """The field names the spec allows at ``loc`` (``()`` is the top level), for "did you mean ...?"."""
    schema = _generated()
    nodes = [schema]
    for part in loc:
        found: list[dict[str, Any]] = []
        for node in nodes:
            for branch in _branches(schema, node):
                if isinstance(part, int) and isinstance(branch.get("items"), dict):
                    found.append(branch["items"])
                elif isinstance(part, str) and part in branch.get("properties", {}):
                    found.append(branch["properties"][part])
        nodes = found
    names: list[str] = []
    for node in nodes:
        for branch in _branches(schema, node):
            names += [name for name in branch.get("properties", {}) if name not in names]
    return names
