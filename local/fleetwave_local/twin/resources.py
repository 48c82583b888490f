"""What the stack creates, created in moto: the ledger table and its stream, the status queue, topic and rule, the bus,
the summary topic, the alarm queue, the schedule group and its DLQ, AWS's documents and those the stack ships; and the
twin's own inboxes that observe what notify publishes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fleetwave.constants import (
    ALARM_DLQ_NAME,
    ALARM_QUEUE_NAME,
    EVENT_BUS_NAME,
    FLEETWAVE_EVENT_PATTERN,
    GSI_BY_INSTANCE,
    GSI_BY_INSTANCE_PK,
    GSI_BY_INSTANCE_SK,
    GSI_BY_SPEC,
    GSI_BY_SPEC_PK,
    GSI_BY_SPEC_SK,
    GSI_BY_STATE,
    GSI_BY_STATE_PK,
    GSI_BY_STATE_SK,
    PK,
    SCHEDULER_GROUP_NAME,
    SK,
    SSM_STATUS_EVENT_PATTERN,
    STATUS_DLQ_NAME,
    STATUS_QUEUE_NAME,
    STATUS_RULE_NAME,
    STATUS_TOPIC_NAME,
    SUMMARY_TOPIC_NAME,
    TABLE_NAME,
)
from fleetwave.documents import shipped_documents
from fleetwave.settings import Settings

from fleetwave_local.twin.account import (
    ACCOUNT,
    DELIVERY_DLQ_NAME,
    EVENTS_CAPTURE_RULE_NAME,
    EVENTS_INBOX_NAME,
    REGION,
    SLACK_SECRET_NAME,
    SUMMARY_INBOX_NAME,
    function_arn,
)
from fleetwave_local.twin.documents import seed_documents
from fleetwave_local.twin.options import TwinOptions


@dataclass
class Resources:
    table_name: str
    stream_arn: str
    status_topic_arn: str
    status_queue_url: str
    status_dlq_url: str
    summary_topic_arn: str
    summary_inbox_url: str
    notification_role_arn: str
    scheduler_role_arn: str
    events_inbox_url: str = ""
    slack_secret_name: str = ""
    alarm_queue_url: str = ""
    alarm_queue_arn: str = ""
    delivery_dlq_arn: str = ""


def create_resources(plumbing: Callable[[str], Any], options: TwinOptions) -> Resources:
    """Create in moto what the stack creates (and the twin's own inboxes); `plumbing` gives uncounted clients."""
    ddb = plumbing("dynamodb")
    string = "S"
    table = ddb.create_table(
        TableName=TABLE_NAME,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": PK, "KeyType": "HASH"}, {"AttributeName": SK, "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": string}
            for name in (
                PK,
                SK,
                GSI_BY_STATE_PK,
                GSI_BY_STATE_SK,
                GSI_BY_INSTANCE_PK,
                GSI_BY_INSTANCE_SK,
                GSI_BY_SPEC_PK,
            )
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": index,
                "KeySchema": [{"AttributeName": pk, "KeyType": "HASH"}, {"AttributeName": sk, "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index, pk, sk in (
                (GSI_BY_STATE, GSI_BY_STATE_PK, GSI_BY_STATE_SK),
                (GSI_BY_INSTANCE, GSI_BY_INSTANCE_PK, GSI_BY_INSTANCE_SK),
                (GSI_BY_SPEC, GSI_BY_SPEC_PK, GSI_BY_SPEC_SK),
            )
        ],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    stream_arn = table["TableDescription"]["LatestStreamArn"]
    sqs, sns, events = plumbing("sqs"), plumbing("sns"), plumbing("events")
    dlq_url, dlq_arn = _queue(sqs, STATUS_DLQ_NAME)
    queue_url, queue_arn = _queue(sqs, STATUS_QUEUE_NAME, visibility=600, dead_letters=dlq_arn)
    status_topic = sns.create_topic(Name=STATUS_TOPIC_NAME)["TopicArn"]
    sns.subscribe(TopicArn=status_topic, Protocol="sqs", Endpoint=queue_arn)
    events.put_rule(Name=STATUS_RULE_NAME, EventPattern=json.dumps(SSM_STATUS_EVENT_PATTERN), State="ENABLED")
    events.put_targets(Rule=STATUS_RULE_NAME, Targets=[{"Id": "status-queue", "Arn": queue_arn}])
    events.create_event_bus(Name=EVENT_BUS_NAME)
    # The twin's own observers draw no IDs from moto's seeded random: the same seed gives the same fleet.
    with _moto_random_untouched():
        events_inbox_url, events_inbox_arn = _queue(sqs, EVENTS_INBOX_NAME)
        events.put_rule(
            Name=EVENTS_CAPTURE_RULE_NAME,
            EventBusName=EVENT_BUS_NAME,
            EventPattern=json.dumps(FLEETWAVE_EVENT_PATTERN),
        )
        events.put_targets(
            Rule=EVENTS_CAPTURE_RULE_NAME,
            EventBusName=EVENT_BUS_NAME,
            Targets=[{"Id": "inbox", "Arn": events_inbox_arn}],
        )
        slack_secret_name = ""
        if options.slack_webhook_url:
            url = options.slack_webhook_url
            value = json.dumps({"webhook_url": url}) if options.slack_secret_json else url
            plumbing("secretsmanager").create_secret(Name=SLACK_SECRET_NAME, SecretString=value)
            slack_secret_name = SLACK_SECRET_NAME
        _, alarm_dlq_arn = _queue(sqs, ALARM_DLQ_NAME)
        alarm_queue_url, alarm_queue_arn = _queue(sqs, ALARM_QUEUE_NAME, visibility=360, dead_letters=alarm_dlq_arn)
        _, delivery_dlq_arn = _queue(sqs, DELIVERY_DLQ_NAME)
    summary_topic = sns.create_topic(Name=SUMMARY_TOPIC_NAME)["TopicArn"]
    inbox_url, inbox_arn = _queue(sqs, SUMMARY_INBOX_NAME)
    sns.subscribe(TopicArn=summary_topic, Protocol="sqs", Endpoint=inbox_arn)
    plumbing("scheduler").create_schedule_group(Name=SCHEDULER_GROUP_NAME)
    seed_documents(plumbing("ssm"))
    with _moto_random_untouched():
        seed_documents(plumbing("ssm"), shipped_documents())
    return Resources(
        table_name=TABLE_NAME,
        stream_arn=stream_arn,
        status_topic_arn=status_topic,
        status_queue_url=queue_url,
        status_dlq_url=dlq_url,
        summary_topic_arn=summary_topic,
        summary_inbox_url=inbox_url,
        notification_role_arn=f"arn:aws:iam::{ACCOUNT}:role/fleetwave-ssm-notifications",
        scheduler_role_arn=f"arn:aws:iam::{ACCOUNT}:role/fleetwave-scheduler",
        events_inbox_url=events_inbox_url,
        slack_secret_name=slack_secret_name,
        alarm_queue_url=alarm_queue_url,
        alarm_queue_arn=alarm_queue_arn,
        delivery_dlq_arn=delivery_dlq_arn,
    )


def _queue(sqs: Any, name: str, *, visibility: int | None = None, dead_letters: str | None = None) -> tuple[str, str]:
    """Create an SQS queue (its messages moved to the queue ARN ``dead_letters`` after 50 receives, as the stack's
    queues are); returns its URL and ARN."""
    attributes: dict[str, str] = {}
    if visibility is not None:
        attributes["VisibilityTimeout"] = str(visibility)
    if dead_letters:
        attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dead_letters, "maxReceiveCount": "50"})
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def function_settings(resources: Resources, options: TwinOptions, scheduled_specs: dict[str, str]) -> Settings:
    """The settings every function of the twin runs with (its environment, as the stack would set it);
    ``scheduled_specs``: spec name -> digest of each spec the twin registered as scheduled."""
    r = resources
    return Settings(
        TABLE_NAME=r.table_name,
        STATUS_TOPIC_ARN=r.status_topic_arn,
        NOTIFICATION_ROLE_ARN=r.notification_role_arn,
        SUMMARY_TOPIC_ARN=r.summary_topic_arn,
        EVENT_BUS_NAME=EVENT_BUS_NAME,
        SCHEDULER_GROUP_NAME=SCHEDULER_GROUP_NAME,
        SCHEDULER_ROLE_ARN=r.scheduler_role_arn,
        ADVANCE_WAVE_FUNCTION_ARN=function_arn("advance_wave"),
        ALLOWED_DOCUMENTS=options.allowed_documents,
        SLACK_SECRET_NAME=r.slack_secret_name,
        AWS_REGION=REGION,
        REMEDIATION_RULES=json.dumps(options.remediation_rules),
        MANAGED_NODE_TAG=dict(options.managed_tag or {}),
        SESSION_TERMINATION=options.session_termination,
        ALARM_QUEUE_ARN=r.alarm_queue_arn,
        VERIFY_SCHEDULER_ROLE_ARN=f"arn:aws:iam::{ACCOUNT}:role/fleetwave-verify-scheduler",
        TIMER_DLQ_ARN=r.delivery_dlq_arn,
        SCHEDULED_SPECS=dict(scheduled_specs),
    )


@contextmanager
def _moto_random_untouched() -> Iterator[None]:
    """Create resources without consuming moto's seeded random (instance and command IDs come from it)."""
    from moto.moto_api._internal import mock_random

    state = mock_random.getstate()
    try:
        yield
    finally:
        mock_random.setstate(state)
