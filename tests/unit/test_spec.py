"""Spec validation: every problem is reported with its field path and the rule it breaks."""

from __future__ import annotations

import json

import pytest
from fleetwave.core.spec import Size, SpecError, load_spec_text, parse_duration, parse_spec, spec_json_schema
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


def test_a_minimal_spec_gets_safe_defaults():
    spec = parse_spec(BASE)
    assert spec.waves == [Size(percent=100)]
    assert spec.error_budget.allowed == Size(count=0)
    assert set(spec.error_budget.counts) == {InvocationStatus.FAILED, InvocationStatus.EXECUTION_TIMED_OUT}
    assert spec.document.version == "$DEFAULT"
    assert spec.document.parameters == {"Operation": ["Install"]}
    assert spec.timeout_seconds == 3600


def test_wave_size_above_100_percent_names_the_wave():
    assert "waves[2]: '120%' is not a valid size (a percentage must be more than 0% up to 100%)" in problems_of(
        spec_with(waves=[1, "10%", "120%"])
    )


@pytest.mark.parametrize("bad", [0, -1, "0%", "abc", True, "10 %%"])
def test_impossible_wave_sizes_are_rejected(bad):
    problems = problems_of(spec_with(waves=[bad]))
    assert problems and problems[0].startswith("waves[0]:")


def test_wave_marks_must_grow():
    assert problems_of(spec_with(waves=["50%", "10%"])) == [
        "waves[1]: 10% does not grow past waves[0] (50%); wave sizes are cumulative"
    ]


def test_budget_above_100_percent_is_rejected():
    assert problems_of(spec_with(error_budget="150%"))[0].startswith("error_budget.allowed: '150%' is not a valid size")


def test_budget_shorthand_and_zero_budget():
    assert parse_spec(spec_with(error_budget="2%")).error_budget.allowed == Size(percent=2)
    assert parse_spec(spec_with(error_budget=0)).error_budget.allowed == Size(count=0)


def test_success_cannot_spend_the_budget():
    problems = problems_of(spec_with(error_budget={"allowed": 1, "counts": ["Success"]}))
    assert problems[0].startswith("error_budget.counts: 'Success' cannot spend the budget")


def test_unknown_fields_and_missing_fields_are_named():
    problems = problems_of({"name": "x", "document": {"name": "AWS-RunShellScript"}, "targtes": {}})
    assert "targtes: unknown field" in problems
    assert "targets: required field is missing" in problems


def test_targets_need_ids_or_tags_and_ids_must_look_like_nodes():
    assert problems_of(spec_with(targets={}))[0] == "targets: name instance_ids, tags, or both"
    assert problems_of(spec_with(targets={"instance_ids": ["web-1"]}))[0].startswith(
        "targets.instance_ids: 'web-1' is not a managed node ID"
    )


def test_timeout_follows_the_ssm_limits():
    assert problems_of(spec_with(timeout_seconds=10))[0].startswith("timeout_seconds:")
    assert problems_of(spec_with(timeout_seconds=2_592_001))[0].startswith("timeout_seconds:")


def test_comment_is_limited_to_100_characters():
    assert problems_of(spec_with(comment="x" * 101))[0].startswith("comment:")


@pytest.mark.parametrize(
    ("text", "seconds"), [(90, 90), ("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_yaml_syntax_errors_name_the_line():
    with pytest.raises(SpecError) as error:
        load_spec_text("name: x\ndocument: [unclosed\n", source="spec.yaml")
    assert error.value.problems[0].startswith("spec.yaml: YAML syntax error at line")


def test_a_spec_that_is_not_a_mapping_is_rejected():
    with pytest.raises(SpecError):
        load_spec_text("- just\n- a list\n")


def test_json_schema_is_exported_for_editors():
    schema = spec_json_schema()
    assert schema["title"] == "fleetwave rollout spec"
    assert {"name", "document", "targets", "waves", "error_budget"} <= set(schema["properties"])
    json.dumps(schema)


def test_schedule_cron_and_timezone_are_checked():
    ok = parse_spec(spec_with(schedule={"cron": "cron(0 3 ? * TUE#2 *)", "timezone": "Europe/Berlin"}))
    assert ok.schedule is not None and ok.schedule.cron == "0 3 ? * TUE#2 *"
    assert problems_of(spec_with(schedule={"cron": "0 3 * *"}))[0].startswith("schedule.cron:")
    assert problems_of(spec_with(schedule={"cron": "0 3 ? * TUE *", "timezone": "Mars/Base"}))[0].startswith(
        "schedule.timezone:"
    )
