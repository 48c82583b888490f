"""Remediation's wiring: alarm state changes of this account and region -> the alarm queue (with a DLQ) -> remediate;
and the role Scheduler assumes for verification timers, which may only put messages on that queue."""

from __future__ import annotations

from typing import Final

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from fleetwave import constants

from .events import event_pattern
from .ingestion import DELIVERY_MAX_EVENT_AGE, DELIVERY_RETRY_ATTEMPTS, MAX_RECEIVE_COUNT, dead_letter_queue
from .timers import Timers

# remediate handles alarm messages in batches of this size.
ALARM_BATCH_SIZE: Final = 10
# The event source mapping runs at most this many remediate instances (2 is the least it accepts): a storm waits in
# the queue. Unlike reserved concurrency, this never throttles a message back into the queue towards the DLQ.
ALARM_MAX_CONCURRENCY: Final = 2


class Remediation(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, delivery_dlq: sqs.IQueue, timers: Timers) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.dlq = dead_letter_queue(self, "AlarmDeadLetterQueue", constants.ALARM_DLQ_NAME)
        self.queue = sqs.Queue(
            self,
            "AlarmQueue",
            queue_name=constants.ALARM_QUEUE_NAME,
            # Six times remediate's timeout (AWS's guidance for SQS event sources).
            visibility_timeout=Duration.seconds(6 * constants.REMEDIATE_TIMEOUT_SECONDS),
            retention_period=Duration.days(4),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dlq, max_receive_count=MAX_RECEIVE_COUNT),
        )
        # Only alarms of this account and region; the handler checks again (the queue has other writers).
        self.rule = events.Rule(
            self,
            "AlarmRule",
            rule_name=constants.ALARM_RULE_NAME,
            description="CloudWatch alarms of this account and region entering ALARM -> fleetwave alarm queue",
            event_pattern=event_pattern(constants.alarm_event_pattern(stack.account, stack.region)),
        )
        self.rule.add_target(
            targets.SqsQueue(
                self.queue,
                dead_letter_queue=delivery_dlq,
                retry_attempts=DELIVERY_RETRY_ATTEMPTS,
                max_event_age=DELIVERY_MAX_EVENT_AGE,
            )
        )
        # Verification timers put {"verify": ...} on the alarm queue; this role can do that and nothing else.
        self.verify_role = timers.scheduler_role(
            self, "VerifySchedulerRole", "Assumed by EventBridge Scheduler to queue fleetwave's remediation checks"
        )
        self.verify_role.add_to_policy(
            iam.PolicyStatement(sid="QueueVerifications", actions=["sqs:SendMessage"], resources=[self.queue.queue_arn])
        )

    def connect(self, remediate: lambda_.Function) -> None:
        remediate.add_event_source(
            sources.SqsEventSource(
                self.queue,
                batch_size=ALARM_BATCH_SIZE,
                report_batch_item_failures=True,
                max_concurrency=ALARM_MAX_CONCURRENCY,
            )
        )
