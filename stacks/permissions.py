"""IAM statements, each as narrow as the code allows, and the cdk-nag reason for every wildcard they need.

Building blocks return :class:`Grant` objects: statements plus, for each wildcard resource, the reason it cannot be
narrower. :class:`RoleGrants` adds them to one role and records one specific ``AwsSolutions-IAM5`` suppression per
wildcard (``applies_to`` that exact finding), so a new wildcard without a reason fails the cdk-nag test.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo

from .config import is_aws_owned_document

SSM_SERVICE: Final = "ssm.amazonaws.com"
SCHEDULER_SERVICE: Final = "scheduler.amazonaws.com"

# Actions that support no resource-level permissions (Service Authorization Reference): Resource must be "*".
FLEET_READ_ACTIONS: Final = (
    "ssm:ListCommands",
    "ssm:DescribeInstanceInformation",
    "ec2:DescribeInstances",
)
SESSION_READ_ACTIONS: Final = ("ssm:DescribeSessions",)
NODE_TAG_READ_ACTIONS: Final = ("ec2:DescribeTags",)
UNSCOPED_READ_ACTIONS: Final = (*FLEET_READ_ACTIONS, *SESSION_READ_ACTIONS, *NODE_TAG_READ_ACTIONS)
TABLE_READ_ACTIONS: Final = (
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:ConditionCheckItem",
)
# TransactWriteItems is authorized per item action, so these cover transactions too.
TABLE_WRITE_ACTIONS: Final = (
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
)


@dataclass
class Grant:
    """Statements and, per wildcard resource (a regex over cdk-nag's finding), why it is needed."""

    statements: list[iam.PolicyStatement]
    wildcard_reasons: dict[str, str] = field(default_factory=dict)
    unscoped_actions: tuple[str, ...] = ()


class Arns:
    """ARNs in this stack's account, region and partition."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack

    def _arn(self, service: str, resource: str, name: str, *, account: str | None = None, sep: str = "/") -> str:
        arn_format = ArnFormat.SLASH_RESOURCE_NAME if sep == "/" else ArnFormat.COLON_RESOURCE_NAME
        return self._stack.format_arn(
            service=service, resource=resource, resource_name=name, account=account, arn_format=arn_format
        )

    def document(self, name: str) -> str:
        # AWS-owned documents have no account in their ARN: arn:aws:ssm:<region>::document/AWS-RunShellScript.
        return self._arn("ssm", "document", name, account="" if is_aws_owned_document(name) else None)

    def function(self, name: str) -> str:
        return self._arn("lambda", "function", name, sep=":")

    def own_documents(self) -> str:
        return self._arn("ssm", "document", "*")

    def instances(self) -> list[str]:
        return [self._arn("ec2", "instance", "*"), self._arn("ssm", "managed-instance", "*")]

    def sessions(self) -> str:
        return self._arn("ssm", "session", "*")

    def schedules(self, group_name: str, name_prefix: str = "") -> str:
        return self._arn("scheduler", "schedule", f"{group_name}/{name_prefix}*")

    def alarms(self) -> str:
        return self._arn("cloudwatch", "alarm", "*", sep=":")

    def secret(self, name: str) -> str:
        # Secrets Manager appends '-' and six random characters to a secret's name in its ARN.
        return self._arn("secretsmanager", "secret", f"{name}-??????", sep=":")


def _finding(fragment: str) -> str:
    """A cdk-nag applies_to regex for IAM5 findings on resources ending with ``fragment``."""
    return f"/^Resource::.*{re.escape(fragment)}$/"


def node_conditions(tag_conditions: Sequence[Mapping[str, str]]) -> list[dict[str, Any] | None]:
    """IAM conditions on SendCommand's node resources: one statement per tag set (each tag of a set must match);
    [None] when there is no condition at all (the deployment opted out of the tag condition)."""
    conditions: list[dict[str, Any] | None] = []
    for tags in tag_conditions:
        if tags:
            conditions.append({"StringEquals": {f"ssm:resourceTag/{key}": value for key, value in tags.items()}})
    return conditions or [None]


def dispatch(
    arns: Arns,
    documents: Sequence[str],
    *,
    notification_role: iam.IRole,
    tag_conditions: Sequence[Mapping[str, str]],
) -> Grant:
    """What sending commands needs: documents, managed nodes (behind the tag conditions: a node qualifies if it
    carries every tag of one set), fleet reads, and passing the SNS notification role."""
    statements = [
        iam.PolicyStatement(
            sid="DescribeAndSendAllowListedDocuments",
            actions=["ssm:DescribeDocument", "ssm:SendCommand"],
            resources=[arns.document(name) for name in documents],
        ),
    ]
    for index, condition in enumerate(node_conditions(tag_conditions)):
        statements.append(
            iam.PolicyStatement(
                sid=f"SendCommandToManagedNodes{index or ''}",
                actions=["ssm:SendCommand"],
                resources=arns.instances(),
                conditions=condition,
            )
        )
    statements += [
        iam.PolicyStatement(
            sid="SessionStateOfManagedNodes",
            actions=["ssm:GetConnectionStatus"],
            resources=arns.instances(),
        ),
        iam.PolicyStatement(sid="ReadFleetAndCommands", actions=list(FLEET_READ_ACTIONS), resources=["*"]),
        iam.PolicyStatement(
            sid="PassNotificationRoleToSsm",
            actions=["iam:PassRole"],
            resources=[notification_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": SSM_SERVICE}},
        ),
    ]
    shown = [", ".join(f"{k}={v}" for k, v in tags.items()) for tags in tag_conditions if tags]
    fence = f" behind the tag condition {' or '.join(shown)}" if shown else ""
    return Grant(
        statements,
        {
            _finding(":instance/*"): "SendCommand and GetConnectionStatus reach the EC2 nodes a spec targets; "
            f"targets are resolved at run time{fence}; the documents are limited to the allow-list",
            _finding(":managed-instance/*"): "SendCommand and GetConnectionStatus reach the hybrid (mi-) nodes a "
            f"spec targets; targets are resolved at run time{fence}",
        },
        unscoped_actions=FLEET_READ_ACTIONS,
    )


def sessions(arns: Arns, *, terminate: bool) -> Grant:
    """Session Manager sessions on target nodes (sessions.mode defer / terminate_older_than). TerminateSession only
    when the deployment allows specs to end sessions (fleetwave:sessionTermination): IAM cannot narrow it to sessions
    on fleetwave's nodes, since a session ARN names its owner, not its node."""
    statements = [iam.PolicyStatement(sid="ReadSessions", actions=list(SESSION_READ_ACTIONS), resources=["*"])]
    reasons: dict[str, str] = {}
    if terminate:
        statements.append(
            iam.PolicyStatement(sid="TerminateSessions", actions=["ssm:TerminateSession"], resources=[arns.sessions()])
        )
        reasons[_finding(":session/*")] = (
            "TerminateSession ends Session Manager sessions on target nodes (sessions.mode: terminate_older_than, "
            "allowed by fleetwave:sessionTermination); session IDs exist only at run time"
        )
    return Grant(statements, reasons, unscoped_actions=SESSION_READ_ACTIONS)


def calendars(arns: Arns) -> Grant:
    return Grant(
        [
            iam.PolicyStatement(
                sid="ChangeCalendarState", actions=["ssm:GetCalendarState"], resources=[arns.own_documents()]
            )
        ],
        {
            _finding(":document/*"): "GetCalendarState reads the Change Calendars a spec names at run time; "
            "calendars are documents of this account"
        },
    )


def node_tags(arns: Arns) -> Grant:
    """Reading a node's own tags (remediation checks them before acting): EC2 DescribeTags has no resource-level
    permission; hybrid nodes' tags are read per managed-instance ARN."""
    return Grant(
        [
            iam.PolicyStatement(sid="ReadInstanceTags", actions=list(NODE_TAG_READ_ACTIONS), resources=["*"]),
            iam.PolicyStatement(
                sid="ReadHybridNodeTags",
                actions=["ssm:ListTagsForResource"],
                resources=[arns.instances()[1]],
            ),
        ],
        {_finding(":managed-instance/*"): "the remediated hybrid (mi-) node is known only at run time; read-only"},
        unscoped_actions=NODE_TAG_READ_ACTIONS,
    )


def read_invocations() -> Grant:
    actions = ("ssm:GetCommandInvocation",)
    return Grant([iam.PolicyStatement(sid="ReadInvocations", actions=list(actions), resources=["*"])], {}, actions)


def list_invocations() -> Grant:
    actions = ("ssm:ListCommandInvocations", "ssm:GetCommandInvocation")
    return Grant([iam.PolicyStatement(sid="PollInvocations", actions=list(actions), resources=["*"])], {}, actions)


def cancel_commands() -> Grant:
    actions = ("ssm:CancelCommand",)
    return Grant([iam.PolicyStatement(sid="CancelCommands", actions=list(actions), resources=["*"])], {}, actions)


def create_schedules(arns: Arns, group_name: str, scheduler_role: iam.IRole, *, name_prefix: str = "") -> Grant:
    """CreateSchedule in fleetwave's group (only schedules named ``name_prefix...`` when given), passing one role."""
    resource = arns.schedules(group_name, name_prefix)
    return Grant(
        [
            iam.PolicyStatement(sid="CreateTimersInGroup", actions=["scheduler:CreateSchedule"], resources=[resource]),
            iam.PolicyStatement(
                sid="PassSchedulerRole",
                actions=["iam:PassRole"],
                resources=[scheduler_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": SCHEDULER_SERVICE}},
            ),
        ],
        {_finding(f":schedule/{group_name}/{name_prefix}*"): _SCHEDULE_REASON},
    )


def delete_schedules(arns: Arns, group_name: str) -> Grant:
    return Grant(
        [
            iam.PolicyStatement(
                sid="DeleteTimersInGroup", actions=["scheduler:DeleteSchedule"], resources=[arns.schedules(group_name)]
            )
        ],
        {_finding(f":schedule/{group_name}/*"): _SCHEDULE_REASON},
    )


_SCHEDULE_REASON: Final = (
    "one-time bake timers are named per rollout and wave at run time; the wildcard stays inside fleetwave's "
    "own schedule group"
)


_ALARM_REASON: Final = "alarm gates and remediation rules name alarms (by name, prefix or tag) at run time; read-only"


def describe_alarms(arns: Arns) -> Grant:
    return Grant(
        [iam.PolicyStatement(sid="ReadAlarms", actions=["cloudwatch:DescribeAlarms"], resources=[arns.alarms()])],
        {_finding(":alarm:*"): _ALARM_REASON},
    )


def alarm_tags(arns: Arns) -> Grant:
    return Grant(
        [
            iam.PolicyStatement(
                sid="ReadAlarmTags", actions=["cloudwatch:ListTagsForResource"], resources=[arns.alarms()]
            )
        ],
        {_finding(":alarm:*"): _ALARM_REASON},
    )


# cdk-nag renders the table ARN as a token: Resource::<StateTable1234.Arn>/index/*
_TABLE_INDEXES: Final = r"/^Resource::<State.*\.Arn>\/index\/\*$/"


def table_access(table_arn: str, *, write: bool, partitions: Sequence[str] = ()) -> Grant:
    """Read the ledger; write it (``write``), only to items whose partition key matches one of ``partitions``
    (dynamodb:LeadingKeys, wildcards allowed) when given."""
    statements = [
        iam.PolicyStatement(
            sid="ReadLedger", actions=list(TABLE_READ_ACTIONS), resources=[table_arn, f"{table_arn}/index/*"]
        )
    ]
    if write:
        condition = {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": list(partitions)}} if partitions else None
        statements.append(
            iam.PolicyStatement(
                sid="WriteLedger", actions=list(TABLE_WRITE_ACTIONS), resources=[table_arn], conditions=condition
            )
        )
    return Grant(
        statements,
        {_TABLE_INDEXES: "queries on the ledger's GSIs (by-state, by-instance, by-spec)"},
    )


def idempotency_records(table_arn: str, partition_key: str) -> Grant:
    """Writes confined to one partition of the ledger (dynamodb:LeadingKeys)."""
    return Grant(
        [
            iam.PolicyStatement(
                sid="WriteOwnIdempotencyRecords",
                actions=["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
                resources=[table_arn],
                conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [partition_key]}},
            )
        ]
    )


def publish(topic_arn: str, key_arn: str, *, sid: str) -> Grant:
    """Publish to a KMS-encrypted topic: SNS encrypts with a data key generated under the publisher's identity."""
    return Grant(
        [
            iam.PolicyStatement(sid=sid, actions=["sns:Publish"], resources=[topic_arn]),
            iam.PolicyStatement(
                sid=f"{sid}Encrypted", actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[key_arn]
            ),
        ]
    )


def put_events(bus_arn: str) -> Grant:
    return Grant([iam.PolicyStatement(sid="PutFleetwaveEvents", actions=["events:PutEvents"], resources=[bus_arn])])


def read_secret(arns: Arns, name: str) -> Grant:
    return Grant(
        [
            iam.PolicyStatement(
                sid="ReadSlackWebhook", actions=["secretsmanager:GetSecretValue"], resources=[arns.secret(name)]
            )
        ]
    )


def invoke(function_arns: Iterable[str]) -> Grant:
    # The unqualified ARNs only: Scheduler invokes $LATEST, so no ':*' version wildcard is needed.
    return Grant(
        [
            iam.PolicyStatement(
                sid="InvokeFleetwaveTargets", actions=["lambda:InvokeFunction"], resources=list(function_arns)
            )
        ]
    )


class RoleGrants:
    """Adds grants to one role and suppresses exactly the wildcards they explain."""

    def __init__(self, role: iam.Role) -> None:
        self.role = role
        self._reasons: dict[str, str] = {}
        self._unscoped: list[str] = []

    def add(self, *grants: Grant) -> RoleGrants:
        for grant in grants:
            for statement in grant.statements:
                self.role.add_to_policy(statement)
            self._reasons.update(grant.wildcard_reasons)
            self._unscoped.extend(action for action in grant.unscoped_actions if action not in self._unscoped)
        return self

    def note_unscoped(self, *actions: str) -> RoleGrants:
        """Record "*"-resource actions that CDK adds by itself (X-Ray, DynamoDB stream listing)."""
        self._unscoped.extend(action for action in actions if action not in self._unscoped)
        return self

    def suppress(self) -> None:
        suppressions = [
            NagPackSuppression(id="AwsSolutions-IAM5", reason=reason, applies_to=[RegexAppliesTo(regex=regex)])
            for regex, reason in self._reasons.items()
        ]
        if self._unscoped:
            suppressions.append(
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="Resource '*' only for actions without resource-level permissions: "
                    + ", ".join(self._unscoped),
                    applies_to=["Resource::*"],
                )
            )
        if suppressions:
            NagSuppressions.add_resource_suppressions(self.role, suppressions, apply_to_children=True)
