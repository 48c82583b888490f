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

from .encryption import PUBLISHING_SERVICES


class Notifications(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, key: kms.IKey, emails: Sequence[str], delivery_dlq: sqs.IQueue
    ) -> None:
        super().__init__(scope, construct_id)
        account = Stack.of(self).account

        self.summary_topic = sns.Topic(
            self,
            "SummaryTopic",
            topic_name=constants.SUMMARY_TOPIC_NAME,
            display_name="fleetwave",
            master_key=key,
            enforce_ssl=True,
        )
        # The topic policy written for enforce_ssl replaces SNS's default one: let this account's CloudWatch alarms
        # (monitoring) and EventBridge rules (users routing fleetwave events) publish.
        self.summary_topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowAccountServicesToPublish",
                principals=[iam.ServicePrincipal(service) for service in PUBLISHING_SERVICES],
                actions=["sns:Publish"],
                resources=[self.summary_topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": account}},
            )
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
