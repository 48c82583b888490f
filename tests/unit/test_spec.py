"""Spec validation: every problem is reported with its field path, the rule it breaks in plain words, and (for a
spec read from text) its line and column."""

from __future__ import annotations

import json
import re

import pytest
from fleetwave.constants import MAX_SCHEDULE_INPUT_BYTES, MAX_SYNC_INVOKE_BYTES
from fleetwave.core.spec import (
    Size,
    SpecError,
    encode_request,
    load_spec_text,
    parse_duration,
    parse_spec,
    spec_json_schema,
    start_request,
)
from fleetwave.core.status import InvocationStatus

BASE = {
    "name": "patch-prod",
    "document": {"name": "AWS-RunPatchBaseline", "parameters": {"Operation": "Install"}},
    "targets": {"tags": {"Patch Group": "prod"}},
}


def spec_with(**changes):
    return {**BASE, **changes}


def problems_of(data) -> list[str]:
    with pytest.raises(SpecError) as error:
        parse_spec(data)
    return error.value.problems


def text_problems(text: str, source: str = "spec.yaml") -> list[str]:
    with pytest.raises(SpecError) as error:
        load_spec_text(text, source=source)
    return error.value.problems


def test_a_minimal_spec_gets_safe_defaults():
    spec = parse_spec(BASE)
    assert spec.waves == [Size(percent=100)]
    assert spec.error_budget.allowed == Size(count=0)
    assert set(spec.error_budget.counts) == {InvocationStatus.FAILED, InvocationStatus.EXECUTION_TIMED_OUT}
    assert spec.document.version == "$DEFAULT"
    assert spec.document.parameters == {"Operation": ["Install"]}
    assert spec.timeout_seconds == 3600


# ------------------------------------------------------------------------------------------------ sizes, waves
def test_wave_size_above_100_percent_names_the_wave():
    assert "waves[2]: '120%' is not a valid size (a percentage must be more than 0% up to 100%)" in problems_of(
        spec_with(waves=[1, "10%", "120%"])
    )


@pytest.mark.parametrize("bad", [0, -1, "0%", "abc", True, "10 %", "5.5", "010%", None])
def test_impossible_wave_sizes_are_rejected(bad):
    problems = problems_of(spec_with(waves=[bad]))
    assert problems and problems[0].startswith("waves[0]:")


def test_wave_marks_of_one_kind_must_grow():
    assert problems_of(spec_with(waves=["50%", "10%"])) == [
        "waves[1]: 10% does not grow past waves[0] (50%); wave sizes are cumulative"
    ]
    assert problems_of(spec_with(waves=[10, 10])) == [
        "waves[1]: 10 does not grow past waves[0] (10); wave sizes are cumulative"
    ]


def test_mixed_marks_are_checked_with_the_resolved_sizes_when_the_spec_lists_its_targets():
    ids = [f"i-{n:017x}" for n in range(60)]
    problems = problems_of(spec_with(targets={"instance_ids": ids}, waves=["50%", 10]))
    assert problems == [
        "waves[1]: 10 does not grow past waves[0] (50%): on 60 targets the marks resolve to 50%=30, 10=10 "
        "(wave sizes are cumulative)"
    ]
    # With tags the fleet size is unknown until plan time: the same marks pass validation.
    assert parse_spec(spec_with(waves=["50%", 10])).waves == [Size(percent=50), Size(count=10)]
    assert parse_spec(spec_with(targets={"instance_ids": ids[:12]}, waves=["50%", 10])).waves[1] == Size(count=10)


def test_budget_above_100_percent_is_rejected():
    assert problems_of(spec_with(error_budget="150%"))[0].startswith("error_budget.allowed: '150%' is not a valid size")


def test_budget_shorthand_and_zero_budget():
    assert parse_spec(spec_with(error_budget="2%")).error_budget.allowed == Size(percent=2)
    assert parse_spec(spec_with(error_budget=0)).error_budget.allowed == Size(count=0)


def test_success_cannot_spend_the_budget():
    problems = problems_of(spec_with(error_budget={"allowed": 1, "counts": ["Success"]}))
    assert problems[0].startswith("error_budget.counts[0]: 'Success' cannot spend the budget (choose from")


# ------------------------------------------------------------------------------------------------ fields
def test_unknown_fields_and_missing_fields_are_named_with_a_suggestion():
    problems = problems_of({"name": "x", "document": {"name": "AWS-RunShellScript"}, "targtes": {}})
    assert "targtes: unknown field (did you mean 'targets'?)" in problems
    assert "targets: required field is missing" in problems
    assert problems_of(spec_with(document={"name": "AWS-RunShellScript", "paramters": {}})) == [
        "document.paramters: unknown field (did you mean 'parameters'?)"
    ]


def test_targets_need_ids_or_tags_and_ids_must_look_like_nodes():
    assert problems_of(spec_with(targets={}))[0] == "targets: name instance_ids, tags, or both"
    assert problems_of(spec_with(targets={"instance_ids": ["i-0123456789abcdef0", "web-1"]})) == [
        "targets.instance_ids[1]: 'web-1' is not a managed node ID (i-... or mi-...)"
    ]


def test_tag_keys_that_are_not_identifiers_are_quoted_in_the_path():
    assert problems_of(spec_with(targets={"tags": {"Patch Group": [2024]}})) == [
        "targets.tags[\"Patch Group\"][0]: must be text, not the number 2024 (write it in quotes: '2024')"
    ]


def test_timeout_follows_the_ssm_limits_and_names_them():
    assert problems_of(spec_with(timeout_seconds=10)) == [
        "timeout_seconds: 10 is out of range: 30 to 2,592,000 (SSM's TimeoutSeconds, 30 seconds to 30 days)"
    ]
    assert problems_of(spec_with(timeout_seconds=2_592_001))[0].startswith("timeout_seconds: 2592001 is out of range")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"bake_time": "1000000d"}, "bake_time: '1000000d' is 1000000d: at most 7d (fleetwave's longest bake)"),
        ({"bake_time": 604801}, "bake_time: 604801 is 604801s: at most 7d (fleetwave's longest bake)"),
        (
            {"sessions": {"mode": "terminate_older_than", "older_than": "31d"}},
            "sessions.older_than: '31d' is 31d: at most 30d (fleetwave's longest)",
        ),
        ({"requires": {"spec": "dev", "within_days": 400}}, "requires.within_days: 400 is out of range: 1 to 365"),
    ],
)
def test_durations_and_waits_have_upper_bounds_that_are_named(changes, expected):
    problems = problems_of(spec_with(**changes))
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_a_bake_of_exactly_the_limit_is_accepted():
    assert parse_spec(spec_with(bake_time="7d")).bake_time == 7 * 86400


def test_comment_is_limited_to_100_characters():
    (problem,) = problems_of(spec_with(comment="x" * 101))
    assert problem.startswith("comment: 'xxx") and problem.endswith("... is too long: at most 100 characters")


@pytest.mark.parametrize(
    ("text", "seconds"), [(90, 90), ("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # Validated as JSON, strictly: what the JSON Schema says is what validation does.
        ({"timeout_seconds": "3600"}, "timeout_seconds: must be a whole number, not the text '3600'"),
        ({"targets": "web"}, "targets: must be a mapping of fields (key: value), not the text 'web'"),
        ({"notifications": {"slack": "yes"}}, "notifications.slack: must be true or false, not the text 'yes'"),
        ({"sessions": {"mode": "never"}}, "sessions.mode: 'never' is not one of 'defer', 'terminate_older_than' or 'ignore'"),
        ({"waves": "50%"}, "waves: must be a list, not the text '50%'"),
        ({"waves": []}, "waves: has 0 items; must have at least 1"),
        ({"document": {"name": "AWS-RunShellScript", "parameters": {"x": None}}},
         "document.parameters.x: a parameter value cannot be empty (null): write '' for an empty text"),
        ({"blackout_windows": [{"start": 1320, "end": "06:00"}]},
         "blackout_windows[0].start: 1320 is not a time of day (HH:MM in quotes, e.g. '22:00')"),
    ],
)  # fmt: skip
def test_messages_are_plain_words_without_python_or_pydantic_text(changes, expected):
    problems = problems_of(spec_with(**changes))
    assert problems == [expected]
    for problem in problems:
        assert not re.search(r"int\(\)|Value error|Input should|[A-Z][a-z]+Spec\b|pydantic|errors\.pydantic", problem)


def test_a_number_as_document_version_means_that_version():
    assert parse_spec(spec_with(document={"name": "AWS-RunShellScript", "version": 3})).document.version == "3"
    assert problems_of(spec_with(document={"name": "AWS-RunShellScript", "version": "v3"})) == [
        "document.version: 'v3' is not a document version ($DEFAULT, $LATEST or a number)"
    ]


# ------------------------------------------------------------------------------------------------ schedules
def test_schedule_cron_and_timezone_are_checked():
    ok = parse_spec(spec_with(schedule={"cron": "cron(0 3 ? * TUE#2 *)", "timezone": "Europe/Berlin"}))
    assert ok.schedule is not None and ok.schedule.cron == "0 3 ? * TUE#2 *"
    assert ok.schedule.expression == "cron(0 3 ? * TUE#2 *)"
    assert problems_of(spec_with(schedule={"cron": "0 3 * *"}))[0].startswith("schedule.cron: '0 3 * *' has 4 fields")
    assert problems_of(spec_with(schedule={"cron": "0 3 ? * TUE *", "timezone": "Mars/Olympus"})) == [
        "schedule.timezone: 'Mars/Olympus' is not a time zone (an IANA name like Europe/Paris, or UTC)"
    ]


def test_the_cron_of_the_issue_is_refused_with_its_field():
    problems = problems_of(spec_with(schedule={"cron": "99 99 ? * TUE#9 *"}))
    assert problems == [
        "schedule.cron: minutes '99': 99 is out of range 0-59; hours '99': 99 is out of range 0-23; "
        "day-of-week 'TUE#9': the week after '#' must be 1 to 5"
    ]


def test_a_schedule_is_a_cron_or_a_rate():
    assert parse_spec(spec_with(schedule={"rate": "7 days"})).schedule.expression == "rate(7 days)"  # type: ignore[union-attr]
    assert problems_of(spec_with(schedule={"timezone": "UTC"})) == ["schedule: give a cron or a rate (exactly one)"]
    assert problems_of(spec_with(schedule={"cron": "0 3 ? * TUE *", "rate": "rate(1 day)"})) == [
        "schedule: give a cron or a rate (exactly one)"
    ]


# ------------------------------------------------------------------------------------------------ start request
def test_a_start_request_larger_than_the_synchronous_invoke_is_refused():
    ids = [f"i-{n:017x}" for n in range(300_000)]
    data = spec_with(targets={"instance_ids": ids})
    problems = problems_of(data)
    assert len(problems) == 1
    assert re.fullmatch(
        r"targets: the start request would be 6\.\d MiB; fleetwave start's synchronous Lambda invoke takes at most "
        r"6\.0 MiB: name fewer targets \(tags instead of IDs\) or split the spec",
        problems[0],
    ), problems[0]
    smaller = parse_spec(spec_with(targets={"instance_ids": ids[:200_000]}))
    assert len(encode_request(start_request(smaller, "cli"))) < MAX_SYNC_INVOKE_BYTES


def test_a_scheduled_spec_must_fit_the_schedule_input():
    ids = [f"i-{n:017x}" for n in range(12_000)]  # ~270 KB of IDs
    problems = problems_of(spec_with(targets={"instance_ids": ids}, schedule={"cron": "0 3 ? * TUE *"}))
    assert len(problems) == 1 and problems[0].startswith("targets: the start request would be")
    assert "the EventBridge Scheduler schedule's input takes at most 256 KiB" in problems[0]
    assert MAX_SCHEDULE_INPUT_BYTES == 256 * 1024
    parse_spec(spec_with(targets={"instance_ids": ids}))  # the same spec, started from the CLI, fits


# ------------------------------------------------------------------------------------------------ from text
SPEC_TEXT = """\
name: demo
document:
  name: AWS-RunShellScript
  parameters:
    commands: [uptime]
targets:
  tags:
    Role: [web]
waves: [1, "50%", "150%"]
bake_time: 30m
colour: blue
"""


def test_every_problem_of_a_file_carries_its_line_and_column():
    assert text_problems(SPEC_TEXT) == [
        "spec.yaml:9:19: waves[2]: '150%' is not a valid size (a percentage must be more than 0% up to 100%)",
        "spec.yaml:11:1: colour: unknown field",
    ]


def test_a_missing_field_is_placed_at_its_parent():
    text = "name: demo\ndocument:\n  version: $LATEST\ntargets: {tags: {Role: web}}\n"
    assert text_problems(text) == ["spec.yaml:2:1: document.name: required field is missing"]


def test_a_spec_that_is_not_a_mapping_is_rejected():
    assert text_problems("- just\n- a list\n") == [
        "spec.yaml:1:1: a spec is a mapping of fields, e.g. name:, document:, targets:"
    ]
    assert text_problems("") == ["spec.yaml: a spec is a mapping of fields, e.g. name:, document:, targets:"]
    assert problems_of([]) == ["(spec): a spec is a mapping of fields, e.g. name:, document:, targets:"]


def test_json_schema_is_exported_for_editors():
    schema = spec_json_schema()
    assert schema["title"] == "fleetwave rollout spec"
    assert {"name", "document", "targets", "waves", "error_budget"} <= set(schema["properties"])
    json.dumps(schema)


def test_problems_found_later_are_placed_at_their_field():
    from fleetwave.core.spec import place_problems, read_spec
    from fleetwave.core.spec.problems import parse_path

    assert parse_path('targets.tags["Patch Group"][0]') == ("targets", "tags", "Patch Group", 0)
    assert parse_path("waves[1]") == ("waves", 1) and parse_path("not a path") is None
    _, marks = read_spec(SPEC_TEXT.replace('"150%"', '"100%"').replace("colour: blue\n", ""), source="s.yaml")
    placed = place_problems(
        ["document.parameters.commands: not a parameter of Acme-Run", "waves[1]: 50% resolves to 1", "no path here"],
        marks,
        "s.yaml",
    )
    assert [str(p) for p in placed] == [
        "s.yaml:5:5: document.parameters.commands: not a parameter of Acme-Run",
        "s.yaml:9:12: waves[1]: 50% resolves to 1",
        "s.yaml: no path here",
    ]
