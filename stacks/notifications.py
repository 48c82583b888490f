"""Status notifications: the summary topic (e-mail subscribers from config) and fleetwave's own event bus."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from fleetwave import constants

from .encryption import CLOUDWATCH_SERVICE, EVENTS_SERVICE


class Notifications(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, key: kms.IKey, emails: Sequence[str], delivery_dlq: sqs.IQueue
    ) -> None:
        super().__init__(scope, construct_id)

        self.summary_topic = sns.Topic(
            self,
            "SummaryTopic",
            topic_name=constants.SUMMARY_TOPIC_NAME,
            display_name="fleetwave",
            master_key=key,
            enforce_ssl=True,
        )
        for email in emails:
            # A mailbox that keeps bouncing leaves its summaries in the delivery DLQ instead of losing them.
            self.summary_topic.add_subscription(subscriptions.EmailSubscription(email, dead_letter_queue=delivery_dlq))

        self.event_bus = events.EventBus(
            self,
            "EventBus",
            event_bus_name=constants.EVENT_BUS_NAME,
            description=f"fleetwave rollout events (source: {constants.FLEETWAVE_EVENT_SOURCE})",
        )

    def restrict_publishers(self, *, publisher_role: iam.IRole | None, alarm_arns: Sequence[str]) -> None:
        """The summary topic takes messages from notify's role, from fleetwave's own CloudWatch alarms, and from
        EventBridge rules on the fleetwave bus (users routing fleetwave events); any other principal is denied,
        even one whose IAM policy allows sns:Publish on it."""
        stack = Stack.of(self)
        topic = self.summary_topic
        # The topic policy written for enforce_ssl replaces SNS's default one.
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowFleetwaveAlarmsToPublish",
                principals=[iam.ServicePrincipal(CLOUDWATCH_SERVICE)],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnEquals": {"aws:SourceArn": list(alarm_arns)},
                },
            )
        )
        rules_on_bus = stack.format_arn(
            service="events", resource="rule", resource_name=f"{constants.EVENT_BUS_NAME}/*"
        )
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowFleetwaveBusRulesToPublish",
                principals=[iam.ServicePrincipal(EVENTS_SERVICE)],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {"aws:SourceArn": rules_on_bus},
                },
            )
        )
        if publisher_role is not None:
            topic.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="DenyOtherPublishers",
                    effect=iam.Effect.DENY,
                    principals=[iam.AnyPrincipal()],
                    actions=["sns:Publish"],
                    resources=[topic.topic_arn],
                    conditions={
                        "ArnNotEquals": {"aws:PrincipalArn": publisher_role.role_arn},
                        "Bool": {"aws:PrincipalIsAWSService": "false"},
                    },
                )
            )
