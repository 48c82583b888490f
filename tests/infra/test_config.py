"""Context validation at synth time: every error names its key."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App

from stacks.build import build
from stacks.config import ConfigError, TagCondition, load_config

from .conftest import MONTHLY_SPEC, PROJECT_ROOT, REMEDIATION_RULES, project_context

BASE: dict[str, Any] = {"fleetwave:allowedDocuments": ["AWS-RunPatchBaseline", "AWS-RunShellScript"]}


def problems_of(context: dict[str, Any], root: Path = PROJECT_ROOT) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_config(context, project_root=root)
    return raised.value.problems


def rule(**changes: Any) -> dict[str, Any]:
    return {**REMEDIATION_RULES[0], **changes}


def test_cdk_json_defaults_are_a_valid_configuration() -> None:
    config = load_config(project_context())
    # Safe by default: fleetwave's own constrained documents, no free-form shell
    assert config.allowed_documents == ("fleetwave-PatchBaseline", "fleetwave-RestartService")
    assert config.free_form_documents == ()
    # SendCommand only to nodes tagged fleetwave:managed=true; no session termination; Slack only to hooks.slack.com
    assert config.instance_tag_condition == TagCondition("fleetwave:managed", "true")
    assert config.session_termination is False
    assert config.slack_webhook_hosts == ("hooks.slack.com",)
    assert config.slack_secret_name == "fleetwave/slack-webhook"
    assert config.scheduled_specs == () and config.remediation_rules == () and config.notification_emails == ()


def test_the_instance_tag_condition_is_on_unless_explicitly_turned_off() -> None:
    # Absent (or null): the default tag condition, not none
    assert load_config(BASE).instance_tag_condition == TagCondition("fleetwave:managed", "true")
    assert load_config({**BASE, "fleetwave:instanceTagCondition": None}).instance_tag_condition is not None
    # Only an explicit false (JSON, or -c ...=false) turns it off
    for off in (False, "false", "off", "none"):
        assert load_config({**BASE, "fleetwave:instanceTagCondition": off}).instance_tag_condition is None
    problems = problems_of({**BASE, "fleetwave:instanceTagCondition": "yes"})
    assert problems == [
        'fleetwave:instanceTagCondition: \'yes\' is not {"key": <tag key>, "value": <tag value>}, or false to opt out'
    ]


def test_free_form_documents_are_named_for_the_synth_warning() -> None:
    config = load_config({"fleetwave:allowedDocuments": ["fleetwave-PatchBaseline", "AWS-RunShellScript"]})
    assert config.free_form_documents == ("AWS-RunShellScript",)


def test_restartable_services_and_slack_hosts_are_validated() -> None:
    problems = problems_of(
        {
            **BASE,
            "fleetwave:restartableServices": ["nginx", "nginx; reboot"],
            "fleetwave:slackWebhookHosts": ["hooks.slack.com", "https://evil.example/"],
        }
    )
    assert problems == [
        "fleetwave:restartableServices[1]: 'nginx; reboot' is not a systemd service name (letters, digits, _.@-)",
        "fleetwave:slackWebhookHosts[1]: 'https://evil.example/' is not a host name (e.g. hooks.slack.com)",
    ]
    config = load_config(
        {**BASE, "fleetwave:restartableServices": "nginx,php-fpm", "fleetwave:slackWebhookHosts": "chat.example.com"}
    )
    assert config.restartable_services == ("nginx", "php-fpm") and config.slack_webhook_hosts == ("chat.example.com",)


def test_an_empty_slack_secret_name_turns_slack_off() -> None:
    assert load_config({**BASE, "fleetwave:slackSecretName": ""}).slack_secret_name is None
    assert load_config({**BASE, "fleetwave:slackSecretName": None}).slack_secret_name is None


def test_a_bad_document_name_is_reported_with_its_index() -> None:
    # Given a third allowed document whose name SSM would reject
    context = {"fleetwave:allowedDocuments": ["AWS-RunPatchBaseline", "AWS-RunShellScript", "bad name"]}
    # Then the error names the key and the index
    assert problems_of(context) == [
        "fleetwave:allowedDocuments[2]: 'bad name' is not a document name (3-128 of letters, digits, '_', '-', '.')"
    ]


def test_allowed_documents_are_required() -> None:
    assert problems_of({})[0].startswith("fleetwave:allowedDocuments: required")
    assert problems_of({"fleetwave:allowedDocuments": []}) == ["fleetwave:allowedDocuments: name at least one document"]


def test_values_passed_with_dash_c_are_strings_and_still_understood() -> None:
    # Given `cdk deploy -c fleetwave:allowedDocuments=AWS-RunShellScript,My-Doc -c fleetwave:reservedConcurrency=false`
    config = load_config(
        {
            "fleetwave:allowedDocuments": "AWS-RunShellScript,My-Doc",
            "fleetwave:reservedConcurrency": "false",
            "fleetwave:notificationEmails": '["a@example.com"]',
            "fleetwave:powertoolsLayerVersion": "30",
            "fleetwave:instanceTagCondition": '{"key": "fleetwave-managed", "value": "true"}',
        }
    )
    assert config.allowed_documents == ("AWS-RunShellScript", "My-Doc")
    assert config.reserved_concurrency is False
    assert config.notification_emails == ("a@example.com",)
    assert config.powertools_layer_version == 30
    assert config.instance_tag_condition is not None and config.instance_tag_condition.key == "fleetwave-managed"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"fleetwave:notificationEmails": ["ops@example.com", "not-an-address"]},
            "fleetwave:notificationEmails[1]: 'not-an-address' is not an e-mail address",
        ),
        (
            {"fleetwave:slackSecretName": "has spaces"},
            "fleetwave:slackSecretName: 'has spaces' is not a Secrets Manager secret name",
        ),
        ({"fleetwave:powertoolsLayerVersion": 0}, "fleetwave:powertoolsLayerVersion: 0 is not a positive whole number"),
        ({"fleetwave:skipDependencyBundling": "yes"}, "fleetwave:skipDependencyBundling: 'yes' is not true or false"),
        (
            {"fleetwave:instanceTagCondition": {"key": "aws:reserved", "value": "x"}},
            "fleetwave:instanceTagCondition.key: 'aws:reserved' is not a tag key",
        ),
        ({"fleetwave:remediationRules": {"name": "x"}}, "fleetwave:remediationRules: expected a list, got dict"),
    ],
)
def test_scalar_and_list_keys_are_validated(changes: dict[str, Any], expected: str) -> None:
    assert problems_of({**BASE, **changes}) == [expected]


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (
            [rule(document="AWS-RunRemoteScript")],
            "fleetwave:remediationRules[0].document: 'AWS-RunRemoteScript' is not in fleetwave:allowedDocuments",
        ),
        (
            [rule(alarm_names=["a"])],
            "fleetwave:remediationRules[0]: give exactly one of alarm_names, alarm_prefix, alarm_tags",
        ),
        (
            [rule(target="instance")],
            "fleetwave:remediationRules[0].target: 'instance' is not 'dimension:<Name>' (e.g. dimension:InstanceId) "
            "or 'tag:<Key>'",
        ),
        (
            [rule(cooldown_minutes=0)],
            "fleetwave:remediationRules[0].cooldown_minutes: 0 is not a positive whole number",
        ),
        ([rule(commands=["rm -rf /"])], "fleetwave:remediationRules[0].commands: unknown field"),
        ([rule(), rule()], "fleetwave:remediationRules[1].name: 'restart-nginx' is the name of an earlier rule"),
    ],
)
def test_remediation_rules_are_validated(rules: list[dict[str, Any]], expected: str) -> None:
    assert problems_of({**BASE, "fleetwave:remediationRules": rules}) == [expected]


def test_missing_rule_fields_are_each_reported() -> None:
    problems = problems_of({**BASE, "fleetwave:remediationRules": [{"name": "r", "alarm_prefix": "p"}]})
    for field in ("document", "target", "cooldown_minutes", "max_per_hour"):
        assert f"fleetwave:remediationRules[0].{field}: required field is missing" in problems


def test_rules_that_overflow_the_lambda_environment_are_refused() -> None:
    rules = [rule(name=f"rule-{i}", alarm_prefix="p" * 200) for i in range(20)]
    [problem] = problems_of({**BASE, "fleetwave:remediationRules": rules})
    assert re.match(r"fleetwave:remediationRules: the rules take \d+ bytes as JSON", problem)


def test_scheduled_spec_problems_name_the_key_and_the_file(tmp_path: Path) -> None:
    (tmp_path / "unscheduled.yaml").write_text(MONTHLY_SPEC.split("schedule:")[0], encoding="utf-8")
    (tmp_path / "other-doc.yaml").write_text(
        MONTHLY_SPEC.replace("AWS-RunPatchBaseline", "AWS-ApplyAnsiblePlaybooks"), encoding="utf-8"
    )
    (tmp_path / "broken.yaml").write_text(MONTHLY_SPEC.replace('"2%"', '"200%"'), encoding="utf-8")
    context = {
        **BASE,
        "fleetwave:scheduledSpecs": ["unscheduled.yaml", "other-doc.yaml", "broken.yaml", "missing/*.yaml"],
    }
    assert problems_of(context, tmp_path) == [
        "fleetwave:scheduledSpecs[0]: unscheduled.yaml: schedule: required for a scheduled spec ({cron, timezone})",
        "fleetwave:scheduledSpecs[1]: other-doc.yaml: document.name: 'AWS-ApplyAnsiblePlaybooks' is not in "
        "fleetwave:allowedDocuments",
        "fleetwave:scheduledSpecs[2]: broken.yaml:8:15: error_budget.allowed: '200%' is not a valid size "
        "(a percentage must be from 0% up to 100%)",
        "fleetwave:scheduledSpecs[3]: 'missing/*.yaml' matches no file",
    ]


def test_a_glob_schedules_every_matching_spec_once(tmp_path: Path) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "a.yaml").write_text(MONTHLY_SPEC, encoding="utf-8")
    (tmp_path / "specs" / "b.yaml").write_text(MONTHLY_SPEC.replace("monthly-patching", "monthly-db"), encoding="utf-8")
    config = load_config({**BASE, "fleetwave:scheduledSpecs": ["specs/*.yaml"]}, project_root=tmp_path)
    assert [s.spec.name for s in config.scheduled_specs] == ["monthly-patching", "monthly-db"]
    assert [s.source for s in config.scheduled_specs] == ["specs/a.yaml", "specs/b.yaml"]
    # And two files with one spec name are refused
    (tmp_path / "specs" / "c.yaml").write_text(MONTHLY_SPEC, encoding="utf-8")
    [problem] = problems_of({**BASE, "fleetwave:scheduledSpecs": ["specs/*.yaml"]}, tmp_path)
    assert problem.startswith("fleetwave:scheduledSpecs[0]: specs/c.yaml: name: 'monthly-patching' is also")


def test_the_example_spec_in_the_repository_is_a_valid_scheduled_spec() -> None:
    # Valid with the default allow-list (it runs fleetwave's own patching document)
    config = load_config({**project_context(), "fleetwave:scheduledSpecs": ["specs/*.yaml"]})
    assert config.scheduled_specs, "specs/ holds an example scheduled spec"


def test_synthesis_stops_on_a_bad_context_before_building_anything() -> None:
    context = {**project_context(), "fleetwave:allowedDocuments": json.dumps(["AWS-RunShellScript", "no"])}
    with pytest.raises(ConfigError, match=re.escape("fleetwave:allowedDocuments[1]: 'no' is not a document name")):
        build(App(context=context))


def test_without_remediation_rules_there_is_no_alarm_rule_or_remediate_function() -> None:
    # The default cdk.json context: built (not synthesized) to stay fast
    stack = build(App(context=project_context()))
    assert "remediate" not in stack.functions.functions
    assert stack.functions.remediation is None
    assert stack.config.slack_secret_name == "fleetwave/slack-webhook"
