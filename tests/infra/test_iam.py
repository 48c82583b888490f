"""Least privilege: what each role may do, and on what."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.permissions import UNSCOPED_READ_ACTIONS

from .conftest import (
    OWN_DOCUMENT,
    REMEDIATION_DOCUMENT,
    SLACK_SECRET,
    TAG_KEY,
    TAG_VALUE,
    Synthesized,
    actions_of,
    arn,
    as_list,
    find_statements,
    function_role,
    statements_of_role,
)

ENGINE_FUNCTIONS = ("start_rollout", "track_status", "advance_wave", "reconcile")
# Actions that support no resource-level permissions, as AWS's Service Authorization Reference lists them.
RESOURCE_STAR_ALLOWED = {
    *UNSCOPED_READ_ACTIONS,
    "ssm:CancelCommand",
    "ssm:GetCommandInvocation",
    "ssm:ListCommandInvocations",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "dynamodb:ListStreams",
}


def same_items(resource: Any, expected: list[Any]) -> bool:
    """IAM resources as a set: CDK may render one resource unwrapped and sorts lists."""
    return sorted(map(json.dumps, as_list(resource))) == sorted(map(json.dumps, expected))


def all_policy_documents(synthesized: Synthesized) -> list[tuple[str, str, dict[str, Any]]]:
    """(logical id, resource type, policy document) for every policy in the template."""
    documents = []
    for logical_id, resource in synthesized.resources.items():
        properties = resource.get("Properties", {})
        for name in ("PolicyDocument", "KeyPolicy", "AssumeRolePolicyDocument"):
            if name in properties:
                documents.append((logical_id, resource["Type"], properties[name]))
        for policy in properties.get("Policies", []):
            documents.append((logical_id, resource["Type"], policy["PolicyDocument"]))
    return documents


@pytest.mark.parametrize("key", ENGINE_FUNCTIONS)
def test_send_command_names_only_the_allow_listed_document_arns(synthesized: Synthesized, key: str) -> None:
    # Given the allow-list AWS-RunPatchBaseline, AWS-RunShellScript (AWS-owned) and an own document
    # When the engine function's policy is synthesized
    statements = statements_of_role(synthesized, function_role(synthesized, key))
    [documents] = [s for s in find_statements(statements, "ssm:SendCommand") if "Condition" not in s]
    # Then SendCommand/DescribeDocument name exactly those documents: AWS-owned ones without an account
    assert sorted(actions_of(documents)) == ["ssm:DescribeDocument", "ssm:SendCommand"]
    assert same_items(
        documents["Resource"],
        [
            arn("ssm", "document/AWS-RunPatchBaseline", account=False),
            arn("ssm", f"document/{REMEDIATION_DOCUMENT}", account=False),
            arn("ssm", f"document/{OWN_DOCUMENT}"),
        ],
    )


def test_send_command_reaches_managed_nodes_only_through_the_tag_condition(synthesized: Synthesized) -> None:
    # Given fleetwave:instanceTagCondition = fleetwave-managed: true
    statements = statements_of_role(synthesized, function_role(synthesized, "start_rollout"))
    # When SendCommand is granted on instances
    [nodes] = [s for s in find_statements(statements, "ssm:SendCommand") if "Condition" in s]
    # Then only EC2 instances and hybrid nodes carrying that tag qualify
    assert same_items(nodes["Resource"], [arn("ec2", "instance/*"), arn("ssm", "managed-instance/*")])
    assert nodes["Condition"] == {"StringEquals": {f"ssm:resourceTag/{TAG_KEY}": TAG_VALUE}}


def test_remediate_may_run_only_the_remediation_documents(synthesized: Synthesized) -> None:
    # Given a remediation rule that runs AWS-RunShellScript, among three allowed documents
    statements = statements_of_role(synthesized, function_role(synthesized, "remediate"))
    # When remediate's SendCommand statement is read
    [documents] = [s for s in find_statements(statements, "ssm:SendCommand") if "Condition" not in s]
    # Then it names the remediation document and nothing else
    assert same_items(documents["Resource"], [arn("ssm", f"document/{REMEDIATION_DOCUMENT}", account=False)])
    # And its own allow-list agrees with IAM
    remediate = synthesized.resources[synthesized.logical_id(synthesized.stack.functions.functions["remediate"])]
    assert remediate["Properties"]["Environment"]["Variables"]["ALLOWED_DOCUMENTS"] == REMEDIATION_DOCUMENT


def test_pass_role_goes_only_to_ssm_and_scheduler_with_their_own_roles(synthesized: Synthesized) -> None:
    # Given every identity policy in the template
    ingestion, timers = synthesized.stack.ingestion, synthesized.stack.timers
    expected = {
        synthesized.logical_id(ingestion.notification_role): "ssm.amazonaws.com",
        synthesized.logical_id(timers.role): "scheduler.amazonaws.com",
    }
    found = []
    for _, _, document in all_policy_documents(synthesized):
        for statement in find_statements(document["Statement"], "iam:PassRole"):
            # Then each PassRole names one role and the one service that role is for
            [role_id, _] = statement["Resource"]["Fn::GetAtt"]
            assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": expected[role_id]}}
            found.append(role_id)
    # And the SSM notification role is passed by the functions that send commands
    assert synthesized.logical_id(ingestion.notification_role) in found


def test_no_statement_allows_a_wildcard_action(synthesized: Synthesized) -> None:
    # Given every policy document (identity, resource, key and trust policies)
    key_id = synthesized.logical_id(synthesized.stack.encryption.key)
    for logical_id, _, document in all_policy_documents(synthesized):
        for statement in document["Statement"]:
            actions = actions_of(statement)
            # Then no statement names the action "*"
            assert "*" not in actions, logical_id
            if statement.get("Effect") == "Allow" and logical_id != key_id:
                # And no Allow grants a whole service ("sqs:*" only appears in the enforce-TLS Deny statements)
                assert not [a for a in actions if a.endswith(":*")], (logical_id, actions)
    # The key's default statement (kms:* for the account root, which delegates to IAM) is the one exception
    key_statements = synthesized.resources[key_id]["Properties"]["KeyPolicy"]["Statement"]
    [admin] = [s for s in key_statements if s["Action"] == "kms:*"]
    assert admin["Principal"] == {
        "AWS": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::", {"Ref": "AWS::AccountId"}, ":root"]]}
    }


def test_resource_star_only_for_actions_without_resource_level_permissions(synthesized: Synthesized) -> None:
    # Given every identity policy
    for logical_id, resource in synthesized.of_type("AWS::IAM::Policy").items():
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            # When a statement applies to Resource "*"
            if "*" in as_list(statement["Resource"]):
                # Then all its actions are ones AWS lets apply to "*" only
                assert set(actions_of(statement)) <= RESOURCE_STAR_ALLOWED, (logical_id, statement)


def test_the_ssm_notification_role_is_for_ssm_and_may_only_publish_status(synthesized: Synthesized) -> None:
    ingestion = synthesized.stack.ingestion
    role_id = synthesized.logical_id(ingestion.notification_role)
    role = synthesized.resources[role_id]
    # Given the role SendCommand's NotificationConfig names
    [trust] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    # Then only SSM of this account may assume it
    assert trust["Principal"] == {"Service": "ssm.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    # And it may publish to the status topic (and use its key) and do nothing else
    statements = statements_of_role(synthesized, role_id)
    assert {tuple(actions_of(s)) for s in statements} == {("sns:Publish",), ("kms:Decrypt", "kms:GenerateDataKey")}
    [publish] = find_statements(statements, "sns:Publish")
    assert publish["Resource"] == {"Ref": synthesized.logical_id(ingestion.status_topic)}
    assert "Policies" not in role["Properties"] and "ManagedPolicyArns" not in role["Properties"]


def test_scheduler_role_invokes_only_the_timer_targets(synthesized: Synthesized) -> None:
    functions = synthesized.stack.functions.functions
    timers = synthesized.stack.timers
    # Given the role EventBridge Scheduler assumes
    statements = statements_of_role(synthesized, synthesized.logical_id(timers.role))
    [invoke] = find_statements(statements, "lambda:InvokeFunction")
    # Then it invokes advance_wave, start_rollout and reconcile, unqualified ARNs only
    targets = {synthesized.logical_id(functions[k]) for k in ("advance_wave", "start_rollout", "reconcile")}
    assert {r["Fn::GetAtt"][0] for r in invoke["Resource"]} == targets
    assert all(r["Fn::GetAtt"][1] == "Arn" for r in invoke["Resource"])
    # And only schedules of fleetwave's group in this account can make Scheduler use it
    [trust] = synthesized.resources[synthesized.logical_id(timers.role)]["Properties"]["AssumeRolePolicyDocument"][
        "Statement"
    ]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceArn"] == arn("scheduler", "schedule-group/fleetwave")


def test_notify_reads_only_the_named_slack_secret(synthesized: Synthesized) -> None:
    statements = statements_of_role(synthesized, function_role(synthesized, "notify"))
    [secret] = find_statements(statements, "secretsmanager:GetSecretValue")
    assert actions_of(secret) == ["secretsmanager:GetSecretValue"]
    assert secret["Resource"] == arn("secretsmanager", f"secret:{SLACK_SECRET}-??????")
    # And no other function can read secrets
    for key in synthesized.stack.functions.functions:
        if key != "notify":
            assert not find_statements(
                statements_of_role(synthesized, function_role(synthesized, key)), "secretsmanager:GetSecretValue"
            )


def test_notify_writes_only_its_idempotency_records(synthesized: Synthesized) -> None:
    statements = statements_of_role(synthesized, function_role(synthesized, "notify"))
    writes = [s for s in statements if any(a in actions_of(s) for a in ("dynamodb:PutItem", "dynamodb:UpdateItem"))]
    assert writes
    for statement in writes:
        assert statement["Condition"] == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["IDEMPOTENCY#notify"]}}


@pytest.mark.parametrize(
    ("key", "must", "must_not"),
    [
        (
            "start_rollout",
            {"ssm:SendCommand", "cloudwatch:DescribeAlarms", "scheduler:CreateSchedule"},
            {"ssm:ListCommandInvocations"},
        ),
        (
            "track_status",
            {"ssm:GetCommandInvocation", "ssm:CancelCommand", "scheduler:CreateSchedule"},
            {"scheduler:DeleteSchedule"},
        ),
        (
            "advance_wave",
            {"cloudwatch:DescribeAlarms", "scheduler:DeleteSchedule", "ssm:SendCommand"},
            {"ssm:ListCommandInvocations"},
        ),
        (
            "reconcile",
            {"ssm:ListCommandInvocations", "ssm:GetCommandInvocation", "ssm:CancelCommand"},
            {"scheduler:DeleteSchedule"},
        ),
        (
            "operator",
            {"ssm:SendCommand", "ssm:CancelCommand", "scheduler:DeleteSchedule", "dynamodb:UpdateItem"},
            {"ssm:ListCommandInvocations", "secretsmanager:GetSecretValue"},
        ),
        ("notify", {"sns:Publish", "events:PutEvents", "dynamodb:Query"}, {"ssm:SendCommand", "ssm:CancelCommand"}),
        (
            "remediate",
            {"cloudwatch:ListTagsForResource", "cloudwatch:DescribeAlarms", "ssm:SendCommand", "ec2:DescribeTags"},
            # Nothing it does not use: no sessions, calendars, cancellation, timers of other kinds
            {
                "ssm:ListCommandInvocations",
                "ssm:TerminateSession",
                "ssm:DescribeSessions",
                "ssm:GetCalendarState",
                "ssm:CancelCommand",
                "scheduler:DeleteSchedule",
                "scheduler:CreateSchedule",
            },
        ),
    ],
)
def test_each_function_gets_the_actions_its_job_needs_and_not_others(
    synthesized: Synthesized, key: str, must: set[str], must_not: set[str]
) -> None:
    actions = {a for s in statements_of_role(synthesized, function_role(synthesized, key)) for a in actions_of(s)}
    assert must <= actions
    assert not must_not & actions


# ---------------------------------------------------------------------------------------------- per role
def test_remediate_sends_only_to_nodes_its_rules_target_and_writes_only_its_own_items(synthesized: Synthesized) -> None:
    statements = statements_of_role(synthesized, function_role(synthesized, "remediate"))
    # SendCommand on nodes: each statement is one rule's tags plus the managed tag; no statement without a condition
    nodes = [s for s in find_statements(statements, "ssm:SendCommand") if "instance/" in json.dumps(s["Resource"])]
    assert sorted(json.dumps(s["Condition"], sort_keys=True) for s in nodes) == sorted(
        json.dumps({"StringEquals": {f"ssm:resourceTag/{TAG_KEY}": TAG_VALUE, "ssm:resourceTag/role": role}})
        for role in ("db", "web")
    )
    # Ledger writes only to remediation rollouts (rem-...), command lookups, and its locks, windows, records
    [writes] = find_statements(statements, "dynamodb:PutItem")
    assert writes["Condition"] == {
        "ForAllValues:StringLike": {
            "dynamodb:LeadingKeys": ["ROLLOUT#rem-*", "COMMAND#*", "REMEDIATION#*", "REMLOCK#*", "REMRATE#*"]
        }
    }
    # No bake timers, no passing of the main Scheduler role (which may invoke start_rollout)
    scheduler_role = synthesized.logical_id(synthesized.stack.timers.role)
    assert scheduler_role not in json.dumps(find_statements(statements, "iam:PassRole"))


def test_only_the_operator_function_takes_operator_requests_and_the_operator_policy_only_calls_it(
    synthesized: Synthesized,
) -> None:
    operator = synthesized.logical_id(synthesized.stack.functions.functions["operator"])
    [policy] = synthesized.of_type("AWS::IAM::ManagedPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    [invoke] = find_statements(statements, "lambda:InvokeFunctionUrl")
    assert invoke["Resource"] == {"Fn::GetAtt": [operator, "Arn"]}
    assert invoke["Condition"] == {"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}}
    # Operators read the ledger; they write nothing and invoke no function directly
    actions = {a for s in statements for a in actions_of(s)}
    assert actions == {
        "lambda:InvokeFunctionUrl",
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
        "cloudformation:DescribeStacks",
    }


def test_only_scheduler_may_invoke_start_rollout(synthesized: Synthesized) -> None:
    start = synthesized.logical_id(synthesized.stack.functions.functions["start_rollout"])
    scheduler_role = synthesized.logical_id(synthesized.stack.timers.role)
    for logical_id, resource in synthesized.of_type("AWS::IAM::Policy").items():
        for statement in find_statements(
            resource["Properties"]["PolicyDocument"]["Statement"], "lambda:InvokeFunction"
        ):
            if start in json.dumps(statement["Resource"]):
                assert {"Ref": scheduler_role} in resource["Properties"]["Roles"], logical_id
    # And no resource policy opens it to anyone else
    for permission in synthesized.of_type("AWS::Lambda::Permission").values():
        assert permission["Properties"]["FunctionName"] != {"Fn::GetAtt": [start, "Arn"]}


def test_only_notify_fleetwaves_alarms_and_its_bus_rules_may_publish_summaries(synthesized: Synthesized) -> None:
    topic = synthesized.logical_id(synthesized.stack.notifications.summary_topic)
    [policy] = [
        p["Properties"]["PolicyDocument"]
        for p in synthesized.of_type("AWS::SNS::TopicPolicy").values()
        if {"Ref": topic} in p["Properties"]["Topics"]
    ]
    statements = {s.get("Sid"): s for s in policy["Statement"]}
    alarms = statements["AllowFleetwaveAlarmsToPublish"]
    assert alarms["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    # Exactly fleetwave's own alarms, not any alarm of the account
    expected = {synthesized.logical_id(a) for a in synthesized.stack.monitoring.alarms}
    sources = alarms["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert {s["Fn::GetAtt"][0] for s in sources} == expected
    rules = statements["AllowFleetwaveBusRulesToPublish"]
    assert rules["Principal"] == {"Service": "events.amazonaws.com"}
    assert rules["Condition"]["ArnLike"]["aws:SourceArn"] == arn("events", "rule/fleetwave/*")
    deny = statements["DenyOtherPublishers"]
    assert deny["Effect"] == "Deny" and deny["Action"] == "sns:Publish"
    notify_role = function_role(synthesized, "notify")
    assert deny["Condition"] == {
        "ArnNotEquals": {"aws:PrincipalArn": {"Fn::GetAtt": [notify_role, "Arn"]}},
        "Bool": {"aws:PrincipalIsAWSService": "false"},
    }
