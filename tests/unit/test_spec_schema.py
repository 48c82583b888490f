"""The JSON Schema editors use (examples/rollout-spec.schema.json) accepts what validation accepts and refuses what
it refuses: checked with the jsonschema package on every example, the README's spec, and sets of valid and invalid
specs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fleetwave.core.spec import SpecError, load_yaml, parse_spec, spec_json_schema

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "examples" / "rollout-spec.schema.json"


def schema_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(COMMITTED.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


VALIDATOR = schema_validator()


def schema_errors(data: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(data)]


def readme_specs() -> list[tuple[str, str]]:
    """Every YAML block of the README and docs that is a spec (it has a document)."""
    found = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for index, block in enumerate(re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)):
            if re.search(r"^document:", block, re.MULTILINE):
                found.append((f"{page.name}#{index}", block))
    return found


SPEC_FILES = sorted([*REPO.glob("examples/*.yaml"), *REPO.glob("specs/*.yaml")])
DOCUMENTED = [
    (path.relative_to(REPO).as_posix(), path.read_text(encoding="utf-8")) for path in SPEC_FILES
] + readme_specs()


def test_the_committed_schema_is_the_generated_one() -> None:
    assert json.loads(COMMITTED.read_text(encoding="utf-8")) == spec_json_schema(), (
        "regenerate: fleetwave schema > examples/rollout-spec.schema.json"
    )


def test_the_readme_has_a_spec_to_check() -> None:
    assert any(name.startswith("README.md") for name, _ in DOCUMENTED)


@pytest.mark.parametrize(("name", "text"), DOCUMENTED, ids=[name for name, _ in DOCUMENTED])
def test_every_shipped_and_documented_spec_passes_the_schema_and_validation(name: str, text: str) -> None:
    data, _ = load_yaml(text)
    assert schema_errors(data) == []
    parse_spec(data)


BASE: dict[str, Any] = {
    "name": "patch-prod",
    "document": {"name": "AWS-RunPatchBaseline", "parameters": {"Operation": "Install"}},
    "targets": {"tags": {"Patch Group": ["prod"]}},
}


def spec(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


VALID = {
    "a count and percentages": spec(waves=[1, "10%", "50%", "100%"]),
    "sizes as text": spec(waves=["2", "50.5%"], max_concurrency="10"),
    "budget shorthand count": spec(error_budget=0),
    "budget shorthand percent": spec(error_budget="2.5%"),
    "budget in full": spec(error_budget={"allowed": "1%", "counts": ["Failed", "Undeliverable"]}),
    "durations": spec(bake_time="30m", sessions={"mode": "terminate_older_than", "older_than": 7200}),
    "bake at the limit": spec(bake_time=604800),
    "a number as version": spec(document={"name": "AWS-RunShellScript", "version": 3}),
    "parameters of every kind": spec(
        document={
            "name": "AWS-RunShellScript",
            "parameters": {"commands": ["a", "b"], "n": 3, "on": True, "m": {"k": 1}},
        }
    ),
    "a tag as one value": spec(targets={"tags": {"Role": "web"}}),
    "ids only": spec(targets={"instance_ids": ["i-0123456789abcdef0", "mi-0123456789abcdef0"]}),
    "cron schedule": spec(schedule={"cron": "cron(0 3 ? * TUE#2 *)", "timezone": "Europe/Paris"}),
    "rate schedule": spec(schedule={"rate": "rate(7 days)"}),
    "blackouts": spec(blackout_windows=[{"start": "22:00", "end": "02:00:30", "days": ["FRI"]}]),
    "everything optional": spec(
        description="d",
        alarm_gates=["a"],
        timeout_seconds=30,
        output={"s3_bucket": "my-bucket", "s3_prefix": "p/", "cloudwatch_log_group": "/fw", "cloudwatch_enabled": True},
        comment="c",
        calendars=["cal"],
        requires={"spec": "dev", "within_days": 365},
        notifications={"slack": False, "email": True},
    ),
    "nulls for optional fields": spec(description=None, schedule=None, requires=None, comment=None),
}


@pytest.mark.parametrize("case", VALID)
def test_valid_specs_pass_both(case: str) -> None:
    assert schema_errors(VALID[case]) == []
    parse_spec(VALID[case])


INVALID = {
    "no name": {k: v for k, v in BASE.items() if k != "name"},
    "a bad name": spec(name="bad name!"),
    "unknown field": spec(wave_sizes=[1]),
    "unknown nested field": spec(document={"name": "AWS-RunShellScript", "paramters": {}}),
    "wave above 100%": spec(waves=[1, "120%"]),
    "wave of 0": spec(waves=[0]),
    "wave of 0%": spec(waves=["0%"]),
    "wave with a space": spec(waves=["10 %"]),
    "wave as true": spec(waves=[True]),
    "no waves": spec(waves=[]),
    "waves not a list": spec(waves="50%"),
    "51 waves": spec(waves=list(range(1, 52))),
    "concurrency 0": spec(max_concurrency=0),
    "budget above 100%": spec(error_budget="150%"),
    "negative budget": spec(error_budget=-1),
    "success spends the budget": spec(error_budget={"allowed": 1, "counts": ["Success"]}),
    "budget unknown field": spec(error_budget={"allow": 1}),
    "bake in words": spec(bake_time="30 minutes"),
    "negative bake": spec(bake_time=-5),
    "bake above the limit": spec(bake_time=604801),
    "timeout below SSM's": spec(timeout_seconds=10),
    "timeout above SSM's": spec(timeout_seconds=2_592_001),
    "timeout as text": spec(timeout_seconds="3600"),
    "comment too long": spec(comment="x" * 101),
    "no targets named": spec(targets={}),
    "empty id list": spec(targets={"instance_ids": []}),
    "not a node id": spec(targets={"instance_ids": ["web-1"]}),
    "a tag value as a number": spec(targets={"tags": {"Year": 2024}}),
    "document name too short": spec(document={"name": "x"}),
    "document version in words": spec(document={"name": "AWS-RunShellScript", "version": "v3"}),
    "document version 0": spec(document={"name": "AWS-RunShellScript", "version": 0}),
    "a null parameter": spec(document={"name": "AWS-RunShellScript", "parameters": {"x": None}}),
    "schedule with neither": spec(schedule={"timezone": "UTC"}),
    "schedule with both": spec(schedule={"cron": "0 3 ? * TUE *", "rate": "1 day"}),
    "blackout at 25:00": spec(blackout_windows=[{"start": "25:00", "end": "02:00"}]),
    "blackout as a number": spec(blackout_windows=[{"start": 1320, "end": "02:00"}]),
    "blackout on a funday": spec(blackout_windows=[{"start": "22:00", "end": "02:00", "days": ["FUNDAY"]}]),
    "unknown session mode": spec(sessions={"mode": "never"}),
    "slack as text": spec(notifications={"slack": "yes"}),
    "requirement of no days": spec(requires={"spec": "dev", "within_days": 0}),
    "requirement above a year": spec(requires={"spec": "dev", "within_days": 400}),
    "21 alarm gates": spec(alarm_gates=[f"a{n}" for n in range(21)]),
    "a bucket in capitals": spec(output={"s3_bucket": "My-Bucket"}),
    "targets as text": spec(targets="web"),
}


@pytest.mark.parametrize("case", INVALID)
def test_invalid_specs_are_refused_by_both(case: str) -> None:
    assert schema_errors(INVALID[case]), "the schema accepts it"
    with pytest.raises(SpecError):
        parse_spec(INVALID[case])


# What a JSON Schema cannot say (fields of a cron, marks that must grow, a duration's value written as text, the
# size of the start request): the editor accepts these, `fleetwave validate` refuses them.
VALIDATION_ONLY = {
    "a cron out of range": spec(schedule={"cron": "99 99 ? * TUE#9 *"}),
    "an unknown time zone": spec(schedule={"cron": "0 3 ? * TUE *", "timezone": "Mars/Olympus"}),
    "marks that shrink": spec(waves=["50%", "10%"]),
    "mixed marks that shrink on a known fleet": spec(
        targets={"instance_ids": [f"i-{n:017x}" for n in range(60)]}, waves=["50%", 10]
    ),
    "a bake far above the limit, as text": spec(bake_time="1000000d"),
}


@pytest.mark.parametrize("case", VALIDATION_ONLY)
def test_what_only_validation_can_check_is_refused_by_validation(case: str) -> None:
    with pytest.raises(SpecError):
        parse_spec(VALIDATION_ONLY[case])


def _properties(node: Any, schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every (path, schema) of a property, through $ref, anyOf and items."""
    found: list[tuple[str, dict[str, Any]]] = []
    if "$ref" in node:
        return _properties(schema["$defs"][node["$ref"].rsplit("/", 1)[-1]], schema, path)
    for option in node.get("anyOf", []) + node.get("oneOf", []):
        found += _properties(option, schema, path)
    if isinstance(node.get("items"), dict):
        found += _properties(node["items"], schema, path + "[]")
    for name, child in node.get("properties", {}).items():
        found.append((f"{path}.{name}".lstrip("."), child))
        found += _properties(child, schema, f"{path}.{name}".lstrip("."))
    return found


def _maximum(node: dict[str, Any], schema: dict[str, Any]) -> int | None:
    if "$ref" in node:
        return _maximum(schema["$defs"][node["$ref"].rsplit("/", 1)[-1]], schema)
    if "maximum" in node:
        return int(node["maximum"])
    maxima = [_maximum(option, schema) for option in node.get("anyOf", []) if option.get("type") == "integer"]
    return min((m for m in maxima if m is not None), default=None)


def test_every_duration_and_wait_has_an_upper_bound() -> None:
    """A field that waits (a bake, a timeout, a session age, a future approval wait) takes DurationLimit or Range:
    nothing waits forever by mistake, and the limit is named in the error."""
    schema = spec_json_schema()
    waits = [
        (path, node)
        for path, node in _properties(schema, schema)
        if re.search(r"(_time|_seconds|timeout|_wait|older_than|_days|_minutes)$", path)
    ]
    assert {path for path, _ in waits} >= {
        "bake_time",
        "timeout_seconds",
        "sessions.older_than",
        "requires.within_days",
    }
    assert [path for path, node in waits if _maximum(node, schema) is None] == []


def test_an_unknown_field_in_a_list_item_gets_a_suggestion() -> None:
    with pytest.raises(SpecError) as error:
        parse_spec(spec(blackout_windows=[{"strat": "22:00", "end": "02:00"}]))
    assert "blackout_windows[0].strat: unknown field (did you mean 'start'?)" in error.value.problems
