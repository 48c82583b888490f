"""Status ingestion: SSM status events (EventBridge) and SSM notifications (SNS) into one SQS queue with a DLQ."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct
from fleetwave import constants

from .events import event_pattern
from .names import DELIVERY_DLQ_NAME
from .permissions import SSM_SERVICE

# A message that fails this many receives is poison (a bug, not a race): park it for a human.
MAX_RECEIVE_COUNT = 5
# EventBridge retries delivery to the queue for up to this long before it gives up into the delivery DLQ.
DELIVERY_RETRY_ATTEMPTS = 8
DELIVERY_MAX_EVENT_AGE = Duration.hours(2)
DLQ_RETENTION = Duration.days(14)


def dead_letter_queue(scope: Construct, construct_id: str, name: str) -> sqs.Queue:
    queue = sqs.Queue(
        scope,
        construct_id,
        queue_name=name,
        retention_period=DLQ_RETENTION,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
    )
    NagSuppressions.add_resource_suppressions(
        queue,
        [
            NagPackSuppression(id=rule, reason="This queue is itself a dead-letter queue: the end of the line")
            for rule in ("AwsSolutions-SQS3", "Serverless-SQSRedrivePolicy")
        ],
    )
    return queue


class Ingestion(Construct):
    """Both status paths are on: EventBridge delivers best-effort, SNS out of order; the ledger deduplicates.

    Queues use SSE-SQS: EventBridge and SNS deliver to them with no key grant, and the messages carry SSM status
    metadata (command and instance IDs, statuses), not secrets. The status topic uses the customer-managed key.
    """

    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey, visibility_timeout: Duration) -> None:
        super().__init__(scope, construct_id)
        account = Stack.of(self).account

        self.status_dlq = dead_letter_queue(self, "StatusDeadLetterQueue", constants.STATUS_DLQ_NAME)
        # Where EventBridge, SNS and Scheduler put what they could not deliver.
        self.delivery_dlq = dead_letter_queue(self, "DeliveryDeadLetterQueue", DELIVERY_DLQ_NAME)

        self.status_queue = sqs.Queue(
            self,
            "StatusQueue",
            queue_name=constants.STATUS_QUEUE_NAME,
            visibility_timeout=visibility_timeout,
            retention_period=Duration.days(4),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.status_dlq, max_receive_count=MAX_RECEIVE_COUNT),
        )

        self.status_topic = sns.Topic(
            self,
            "StatusTopic",
            topic_name=constants.STATUS_TOPIC_NAME,
            display_name="fleetwave SSM command status",
            master_key=key,
            enforce_ssl=True,
        )
        # Not raw delivery: track_status reads the SNS envelope (the SSM message is a JSON string in `Message`).
        self.status_topic.add_subscription(
            subscriptions.SqsSubscription(
                self.status_queue, raw_message_delivery=False, dead_letter_queue=self.delivery_dlq
            )
        )

        self.status_rule = events.Rule(
            self,
            "SsmStatusRule",
            rule_name=constants.STATUS_RULE_NAME,
            description="SSM Run Command status changes -> fleetwave status queue",
            event_pattern=event_pattern(constants.SSM_STATUS_EVENT_PATTERN),
        )
        self.status_rule.add_target(
            targets.SqsQueue(
                self.status_queue,
                dead_letter_queue=self.delivery_dlq,
                retry_attempts=DELIVERY_RETRY_ATTEMPTS,
                max_event_age=DELIVERY_MAX_EVENT_AGE,
            )
        )

        # SendCommand's NotificationConfig: SSM assumes this role to publish status notifications, and nothing else.
        self.notification_role = iam.Role(
            self,
            "SsmNotificationRole",
            description="Assumed by SSM Run Command to publish fleetwave's command status notifications",
            assumed_by=iam.ServicePrincipal(SSM_SERVICE, conditions={"StringEquals": {"aws:SourceAccount": account}}),
        )
        self.notification_role.add_to_policy(
            iam.PolicyStatement(
                sid="PublishStatusNotifications", actions=["sns:Publish"], resources=[self.status_topic.topic_arn]
            )
        )
        self.notification_role.add_to_policy(
            iam.PolicyStatement(
                sid="EncryptStatusNotifications",
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=[key.key_arn],
            )
        )
