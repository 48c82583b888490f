"""The local twin: fleetwave's cloud wiring reproduced in process, on moto, the fleet simulator and a virtual clock.

What runs is the real thing: the Lambda handlers, the boto3 calls they make, the EventBridge rule and the SNS
subscription that feed the status queue, the DynamoDB stream that feeds notify, and the Scheduler schedules that
invoke advance_wave. Only the glue the cloud provides (Lambda's pollers and Scheduler's firing) is done here, on a
virtual clock, so a four-hour rollout with bake times runs in seconds.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from fleetwave.adapters.ledger import Ledger, forget_placements
from fleetwave.constants import (
    CLOUDWATCH_EVENT_SOURCE,
    DETAIL_TYPE_ALARM,
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
    HANDLERS,
    PK,
    RECONCILE_EVERY_MINUTES,
    SCHEDULER_GROUP_NAME,
    SK,
    SSM_STATUS_EVENT_PATTERN,
    STATUS_DLQ_NAME,
    STATUS_QUEUE_NAME,
    STATUS_RULE_NAME,
    STATUS_TOPIC_NAME,
    SUMMARY_TOPIC_NAME,
    TABLE_NAME,
    function_name,
)
from fleetwave.core.model import Rollout, Wave
from fleetwave.settings import Settings

from fleetwave_local.twin.documents import seed_documents
from fleetwave_local.twin.moto_patches import fast_transactions

REGION = "us-east-1"
ACCOUNT = "123456789012"
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_COUNTED_SERVICES = ("ssm", "ec2", "dynamodb", "scheduler", "cloudwatch", "sns", "events")
# The twin's Slack webhook secret and the rule that copies every fleetwave event into an inbox queue.
SLACK_SECRET_NAME = "fleetwave/slack-webhook"  # noqa: S105 (a secret's name, not a secret)
EVENTS_CAPTURE_RULE_NAME = "fleetwave-twin-events-capture"
EVENTS_INBOX_NAME = "fleetwave-twin-events-inbox"
# Like the stack's stream event source mapping: a failing batch is retried this often, then given up.
STREAM_RETRY_ATTEMPTS = 5


def function_arn(key: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name(key)}"


_FUNCTION_KEYS = {function_name(key): key for key in HANDLERS}


def alarm_arn(name: str) -> str:
    return f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"


def alarm_state_change_event(
    alarm_name: str,
    *,
    event_id: str,
    at: datetime,
    state: str = "ALARM",
    previous_state: str = "OK",
    dimensions: dict[str, str] | None = None,
    composite: bool = False,
    metric_name: str = "StatusCheckFailed",
    namespace: str = "AWS/EC2",
    description: str = "",
    reason: str = "Threshold Crossed: 1 out of the last 1 datapoints was greater than or equal to the threshold (1.0).",
    region: str = REGION,
    account: str = ACCOUNT,
) -> dict[str, Any]:
    """The EventBridge envelope of a ``CloudWatch Alarm State Change`` event, field for field as AWS documents it:
    a metric alarm carries ``configuration.metrics[].metricStat.metric.dimensions``; a composite alarm carries its
    ``alarmRule`` and no metrics."""
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"
    configuration: dict[str, Any]
    if composite:
        configuration = {"alarmRule": f"ALARM({alarm_name}-a) OR ALARM({alarm_name}-b)", "description": description}
    else:
        configuration = {
            "description": description,
            "metrics": [
                {
                    "id": "m1",
                    "metricStat": {
                        "metric": {"dimensions": dict(dimensions or {}), "name": metric_name, "namespace": namespace},
                        "period": 60,
                        "stat": "Maximum",
                    },
                    "returnData": True,
                }
            ],
        }
    return {
        "version": "0",
        "id": event_id,
        "detail-type": DETAIL_TYPE_ALARM,
        "source": CLOUDWATCH_EVENT_SOURCE,
        "account": account,
        "time": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:cloudwatch:{region}:{account}:alarm:{alarm_name}"],
        "detail": {
            "alarmName": alarm_name,
            "state": {
                "value": state,
                "reason": reason,
                "reasonData": json.dumps({"version": "1.0", "queryDate": stamp, "threshold": 1.0}),
                "timestamp": stamp,
            },
            "previousState": {"value": previous_state, "reason": "Threshold Crossed", "timestamp": stamp},
            "configuration": configuration,
        },
    }


@dataclass
class TwinOptions:
    seed: int = 1
    fail_rate: float = 0.0
    execution_timeout_rate: float = 0.0
    delivery_timeout_rate: float = 0.0
    undeliverable_rate: float = 0.0
    slow_rate: float = 0.0
    offline_rate: float = 0.0
    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    cancel_race_rate: float = 0.2
    run_seconds: tuple[int, int] = (30, 120)
    shuffle: bool = True
    # Lambda's SQS poller gathers messages for up to this long before invoking (MaximumBatchingWindow).
    batching_window: timedelta = timedelta(seconds=10)
    reconcile_every: timedelta = timedelta(minutes=RECONCILE_EVERY_MINUTES)
    start: datetime | None = None
    allowed_documents: tuple[str, ...] = ()
    # Remediation rules as cdk.json's fleetwave:remediationRules holds them (REMEDIATION_RULES of every function).
    remediation_rules: list[dict[str, Any]] = field(default_factory=list)
    # Slack: the webhook URL the twin's secret holds (loopback only), as the plain URL or as JSON {"webhook_url": ..}.
    slack_webhook_url: str | None = field(default=None, repr=False)  # a credential: kept out of reprs and logs
    slack_secret_json: bool = False


class FakeLambdaContext:
    """What Powertools reads from a Lambda context."""

    def __init__(self, name: str) -> None:
        self.function_name = function_name(name)
        self.function_version = "$LATEST"
        self.invoked_function_arn = function_arn(name)
        self.memory_limit_in_mb = 512
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "twin"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 300_000


@dataclass
class Snapshot:
    """What the CLI shows while a rollout runs."""

    rollout: Rollout
    waves: list[Wave]
    now: datetime


class TwinTimeoutError(RuntimeError):
    """The rollout did not end within the virtual time allowed."""


@contextmanager
def _environment(values: dict[str, str | None]) -> Iterator[None]:
    """Set (or, for None, unset) environment variables for the twin's lifetime."""
    saved = {key: os.environ.get(key) for key in values}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _moto_random_untouched() -> Iterator[None]:
    """Create resources without consuming moto's seeded random (instance and command IDs come from it)."""
    from moto.moto_api._internal import mock_random

    state = mock_random.getstate()
    try:
        yield
    finally:
        mock_random.setstate(state)


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


@dataclass
class Twin:
    """Use as a context manager: ``with Twin(TwinOptions(seed=7)) as twin: twin.add_nodes(...); twin.start(spec)``."""

    options: TwinOptions = field(default_factory=TwinOptions)
    api_calls: Counter[str] = field(default_factory=Counter)
    summaries: list[dict[str, Any]] = field(default_factory=list)
    handler_errors: list[str] = field(default_factory=list)
    # Every event notify put on the fleetwave bus, as a rule on the bus delivered it to an SQS queue.
    events: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stack = ExitStack()
        self._rng = random.Random(f"{self.options.seed}:twin")
        self._shard_iterators: dict[str, str] = {}
        self._plumbing_clients: dict[str, Any] = {}
        self._schedules: dict[str, tuple[datetime, dict[str, Any]]] = {}

    # ------------------------------------------------------------------ set-up
    def __enter__(self) -> Twin:
        env: dict[str, str | None] = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SECURITY_TOKEN": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "POWERTOOLS_SERVICE_NAME": "fleetwave",
            "POWERTOOLS_METRICS_NAMESPACE": "fleetwave",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": os.environ.get("FLEETWAVE_TWIN_LOG_LEVEL", "ERROR"),
        }
        # No real endpoint may be reached from the twin: moto answers everything in process.
        env.update({key: None for key in os.environ if key.startswith("AWS_ENDPOINT_URL") or key == "AWS_PROFILE"})
        self._stack.enter_context(_environment(env))
        # The functions' Powertools logger was created at import, perhaps before this environment existed: the twin
        # hosts the functions, so it sets their level (FLEETWAVE_TWIN_LOG_LEVEL, default ERROR) for its lifetime.
        functions_logger = logging.getLogger("fleetwave")
        self._stack.callback(functions_logger.setLevel, functions_logger.level)
        functions_logger.setLevel(str(env["POWERTOOLS_LOG_LEVEL"]).upper())
        from moto import mock_aws

        self._stack.enter_context(mock_aws())
        from moto.moto_api._internal import mock_random

        # moto's IDs (instances, commands) come from its own random: seeded, the same seed gives the same fleet.
        mock_random.seed(self.options.seed)
        self._stack.enter_context(fast_transactions())
        from fleetwave.adapters.aws import reset_clients

        from fleetwave_local.simulator import FleetSimulator, VirtualClock

        reset_clients()
        forget_placements()
        boto3.DEFAULT_SESSION = None
        self.clock = VirtualClock(self.options.start)
        o = self.options
        self.sim = FleetSimulator(
            self.clock,
            seed=o.seed,
            region=REGION,
            account_id=ACCOUNT,
            fail_rate=o.fail_rate,
            execution_timeout_rate=o.execution_timeout_rate,
            delivery_timeout_rate=o.delivery_timeout_rate,
            undeliverable_rate=o.undeliverable_rate,
            slow_rate=o.slow_rate,
            offline_rate=o.offline_rate,
            cancel_race_rate=o.cancel_race_rate,
            drop_rate=o.drop_rate,
            duplicate_rate=o.duplicate_rate,
            run_seconds=o.run_seconds,
        )
        self._stack.enter_context(self.sim)
        self._plumbing = boto3.session.Session(region_name=REGION)
        self.resources = self._create_resources()
        self.deps = self._build_deps()
        # The twin's own reads (progress, checks) go through an uncounted client.
        self.reader = Ledger(TABLE_NAME, self.plumbing("dynamodb"))
        self._stack.callback(reset_clients)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def plumbing(self, service: str) -> Any:
        """A client for the twin's own glue (not counted as fleetwave's API calls)."""
        if service not in self._plumbing_clients:
            endpoint = None
            if service == "dynamodbstreams":
                # moto 5.2 routes DynamoDB Streams only for a URL whose path is "/", which botocore no longer sends.
                endpoint = f"https://streams.dynamodb.{REGION}.amazonaws.com/"
            self._plumbing_clients[service] = self._plumbing.client(service, region_name=REGION, endpoint_url=endpoint)
        return self._plumbing_clients[service]

    def _create_resources(self) -> Resources:
        ddb = self.plumbing("dynamodb")
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
        sqs, sns, events = self.plumbing("sqs"), self.plumbing("sns"), self.plumbing("events")
        dlq_url = sqs.create_queue(QueueName=STATUS_DLQ_NAME)["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        queue_url = sqs.create_queue(
            QueueName=STATUS_QUEUE_NAME,
            Attributes={
                "VisibilityTimeout": "600",
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "50"}),
            },
        )["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        status_topic = sns.create_topic(Name=STATUS_TOPIC_NAME)["TopicArn"]
        sns.subscribe(TopicArn=status_topic, Protocol="sqs", Endpoint=queue_arn)
        events.put_rule(Name=STATUS_RULE_NAME, EventPattern=json.dumps(SSM_STATUS_EVENT_PATTERN), State="ENABLED")
        events.put_targets(Rule=STATUS_RULE_NAME, Targets=[{"Id": "status-queue", "Arn": queue_arn}])
        events.create_event_bus(Name=EVENT_BUS_NAME)
        # The twin's own observers draw no IDs from moto's seeded random: the same seed gives the same fleet.
        with _moto_random_untouched():
            events_inbox_url = sqs.create_queue(QueueName=EVENTS_INBOX_NAME)["QueueUrl"]
            events_inbox_arn = sqs.get_queue_attributes(QueueUrl=events_inbox_url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
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
            if self.options.slack_webhook_url:
                url = self.options.slack_webhook_url
                value = json.dumps({"webhook_url": url}) if self.options.slack_secret_json else url
                self.plumbing("secretsmanager").create_secret(Name=SLACK_SECRET_NAME, SecretString=value)
                slack_secret_name = SLACK_SECRET_NAME
        summary_topic = sns.create_topic(Name=SUMMARY_TOPIC_NAME)["TopicArn"]
        inbox_url = sqs.create_queue(QueueName="fleetwave-twin-summary-inbox")["QueueUrl"]
        inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=summary_topic, Protocol="sqs", Endpoint=inbox_arn)
        self.plumbing("scheduler").create_schedule_group(Name=SCHEDULER_GROUP_NAME)
        seed_documents(self.plumbing("ssm"))
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
        )

    def settings(self) -> Settings:
        r = self.resources
        return Settings(
            TABLE_NAME=r.table_name,
            STATUS_TOPIC_ARN=r.status_topic_arn,
            NOTIFICATION_ROLE_ARN=r.notification_role_arn,
            SUMMARY_TOPIC_ARN=r.summary_topic_arn,
            EVENT_BUS_NAME=EVENT_BUS_NAME,
            SCHEDULER_GROUP_NAME=SCHEDULER_GROUP_NAME,
            SCHEDULER_ROLE_ARN=r.scheduler_role_arn,
            ADVANCE_WAVE_FUNCTION_ARN=function_arn("advance_wave"),
            ALLOWED_DOCUMENTS=self.options.allowed_documents,
            SLACK_SECRET_NAME=r.slack_secret_name,
            AWS_REGION=REGION,
            REMEDIATION_RULES=json.dumps(self.options.remediation_rules),
        )

    def _build_deps(self) -> Any:
        from fleetwave.adapters.aws import client
        from fleetwave.service.deps import build_deps

        for service in _COUNTED_SERVICES:
            client(service).meta.events.register("before-call", self._count_call)
        return build_deps(self.settings(), clock=self.clock.now)

    def _count_call(self, model: Any, **_: Any) -> None:
        self.api_calls[f"{model.service_model.service_name}:{model.name}"] += 1

    # ------------------------------------------------------------------ fleet and documents
    def add_nodes(self, n: int, *, tags: dict[str, str] | None = None, ec2: bool = True) -> list[str]:
        return list(self.sim.add_nodes(n, tags=tags, ec2=ec2))

    def create_document(self, name: str, content: dict[str, Any], document_type: str = "Command") -> None:
        self.plumbing("ssm").create_document(
            Name=name, Content=json.dumps(content), DocumentType=document_type, DocumentFormat="JSON"
        )

    def put_alarm(
        self,
        name: str,
        state: str = "OK",
        *,
        dimensions: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        """Create (or update) a metric alarm in moto's CloudWatch and set its state; returns its ARN."""
        cloudwatch = self.plumbing("cloudwatch")
        extra: dict[str, Any] = {}
        if dimensions:
            extra["Dimensions"] = [{"Name": key, "Value": value} for key, value in dimensions.items()]
        if tags:
            extra["Tags"] = [{"Key": key, "Value": value} for key, value in tags.items()]
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            MetricName="Errors",
            Namespace="App",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
            **extra,
        )
        cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason="twin")
        return alarm_arn(name)

    def set_alarm_state(self, name: str, state: str) -> None:
        self.plumbing("cloudwatch").set_alarm_state(AlarmName=name, StateValue=state, StateReason="twin")

    def set_calendar(self, name: str, state: str = "OPEN") -> None:
        """An SSM Change Calendar that is OPEN or CLOSED from now on (the simulator answers GetCalendarState)."""
        self.sim.calendars.set_state(name, "CLOSED" if state == "CLOSED" else "OPEN")

    def alarm_event(self, alarm_name: str, **kwargs: Any) -> dict[str, Any]:
        """A CloudWatch Alarm State Change event as EventBridge delivers it (see alarm_state_change_event)."""
        kwargs.setdefault("event_id", str(uuid.UUID(int=self._rng.getrandbits(128), version=4)))
        kwargs.setdefault("at", self.clock.now())
        return alarm_state_change_event(alarm_name, **kwargs)

    def alarm(self, alarm_name: str, **kwargs: Any) -> dict[str, Any]:
        """EventBridge delivers an alarm state change to remediate (the alarm rule's target); returns its answer."""
        result: dict[str, Any] = self.invoke("remediate", self.alarm_event(alarm_name, **kwargs))
        self.deliver()
        return result

    # ------------------------------------------------------------------ invoking the functions
    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        import importlib

        module_name, _, function = HANDLERS[name].rpartition(".")
        from fleetwave.observability import metrics

        handler: Callable[..., Any] = getattr(importlib.import_module(module_name), function)
        try:
            return handler(event, FakeLambdaContext(name), deps=self.deps)
        finally:
            # Metrics are disabled in the twin; Powertools then keeps them in memory, so drop them per invocation.
            metrics.clear_metrics()

    def start(self, spec: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.invoke("start_rollout", {"trigger": "twin", "spec": spec})
        self.deliver()
        return result

    def cancel(self, rollout_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.invoke("cancel_rollout", {"rollout_id": rollout_id})
        self.deliver()
        return result

    # ------------------------------------------------------------------ the cloud's glue
    def deliver(self) -> int:
        """Feed the status queue and the table's stream to their functions until both are empty."""
        delivered = 0
        for _ in range(10_000):
            moved = self._deliver_status_queue() + self._deliver_stream()
            delivered += moved
            if not moved:
                return delivered
        raise RuntimeError("delivery did not converge")

    def _deliver_status_queue(self) -> int:
        sqs = self.plumbing("sqs")
        messages: list[dict[str, Any]] = []
        while len(messages) < 200:
            batch = sqs.receive_message(
                QueueUrl=self.resources.status_queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                break
            messages.extend(batch)
        if not messages:
            return 0
        if self.options.shuffle:
            self._rng.shuffle(messages)  # SQS standard queues keep no order
        for start in range(0, len(messages), 10):
            batch = messages[start : start + 10]
            event = {
                "Records": [
                    {
                        "messageId": m["MessageId"],
                        "receiptHandle": m["ReceiptHandle"],
                        "body": m["Body"],
                        "attributes": m.get("Attributes", {}),
                        "messageAttributes": {},
                        "md5OfBody": m.get("MD5OfBody", ""),
                        "eventSource": "aws:sqs",
                        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{STATUS_QUEUE_NAME}",
                        "awsRegion": REGION,
                    }
                    for m in batch
                ]
            }
            response = self.invoke("track_status", event)
            failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
            done = [m for m in batch if m["MessageId"] not in failed]
            if failed:
                self.handler_errors.append(f"track_status: {len(failed)} message(s) to retry")
                # Lambda would let the visibility timeout lapse; the twin makes them visible again at once.
                sqs.change_message_visibility_batch(
                    QueueUrl=self.resources.status_queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                        for i, m in enumerate(batch)
                        if m["MessageId"] in failed
                    ],
                )
            if done:
                sqs.delete_message_batch(
                    QueueUrl=self.resources.status_queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
                )
        return len(messages)

    def _deliver_stream(self) -> int:
        streams = self.plumbing("dynamodbstreams")
        shards = streams.describe_stream(StreamArn=self.resources.stream_arn)["StreamDescription"]["Shards"]
        delivered = 0
        for shard in shards:
            shard_id = shard["ShardId"]
            iterator = (
                self._shard_iterators.get(shard_id)
                or streams.get_shard_iterator(
                    StreamArn=self.resources.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            )
            while True:
                response = streams.get_records(ShardIterator=iterator, Limit=1000)
                records = response.get("Records", [])
                iterator = response.get("NextShardIterator") or iterator
                if not records:
                    break
                for start in range(0, len(records), 100):
                    batch = records[start : start + 100]
                    self._notify(batch)
                    delivered += len(batch)
            self._shard_iterators[shard_id] = iterator
        if delivered:
            self.collect_notifications()
        return delivered

    def collect_notifications(self) -> None:
        """Move what notify published (SNS messages, bus events) from their inbox queues to ``summaries``/``events``."""
        self._collect_summaries()
        self._collect_events()

    def _notify(self, batch: list[dict[str, Any]]) -> None:
        """Invoke notify like Lambda's stream poller: on batch item failures, again from the first failed record."""
        for _ in range(1 + STREAM_RETRY_ATTEMPTS):
            response = self.invoke("notify", {"Records": [{**r, "eventSource": "aws:dynamodb"} for r in batch]}) or {}
            failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
            if not failed:
                return
            self.handler_errors.append(f"notify: {len(failed)} record(s) to retry")
            first = min(i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in failed)
            batch = batch[first:]
        self.handler_errors.append(f"notify: gave up on {len(batch)} record(s) after {STREAM_RETRY_ATTEMPTS} retries")

    def replay_stream(self) -> int:
        """Deliver the whole stream to notify again, from its first record (a redelivery, as after a crash)."""
        self._shard_iterators.clear()
        return self._deliver_stream()

    def _collect_events(self) -> None:
        sqs = self.plumbing("sqs")
        while True:
            messages = sqs.receive_message(QueueUrl=self.resources.events_inbox_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                return
            for message in messages:
                self.events.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.resources.events_inbox_url, ReceiptHandle=message["ReceiptHandle"])

    def _collect_summaries(self) -> None:
        sqs = self.plumbing("sqs")
        while True:
            messages = sqs.receive_message(QueueUrl=self.resources.summary_inbox_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                return
            for message in messages:
                envelope = json.loads(message["Body"])
                self.summaries.append(
                    {
                        "subject": envelope.get("Subject", ""),
                        "message": envelope.get("Message", ""),
                        "attributes": {k: v.get("Value") for k, v in envelope.get("MessageAttributes", {}).items()},
                    }
                )
                sqs.delete_message(QueueUrl=self.resources.summary_inbox_url, ReceiptHandle=message["ReceiptHandle"])

    def _due_schedules(self) -> list[tuple[datetime, dict[str, Any]]]:
        """One-time schedules in the group, soonest first (details fetched once per schedule)."""
        scheduler = self.plumbing("scheduler")
        names = {s["Name"] for s in scheduler.list_schedules(GroupName=SCHEDULER_GROUP_NAME).get("Schedules", [])}
        for gone in set(self._schedules) - names:
            del self._schedules[gone]
        for name in names - set(self._schedules):
            schedule = scheduler.get_schedule(Name=name, GroupName=SCHEDULER_GROUP_NAME)
            match = _AT.match(schedule["ScheduleExpression"])
            if match:
                self._schedules[name] = (datetime.fromisoformat(match.group(1) + "+00:00"), schedule)
        return sorted(self._schedules.values(), key=lambda item: item[0])

    def _fire_due_schedules(self) -> int:
        fired = 0
        scheduler = self.plumbing("scheduler")
        for at, schedule in self._due_schedules():
            if at > self.clock.now():
                break
            target = schedule["Target"]
            name = _FUNCTION_KEYS[target["Arn"].rsplit(":", 1)[-1]]
            # Scheduler deletes a one-time schedule after it runs (ActionAfterCompletion DELETE).
            scheduler.delete_schedule(Name=schedule["Name"], GroupName=SCHEDULER_GROUP_NAME)
            self.invoke(name, json.loads(target.get("Input") or "{}"))
            fired += 1
        return fired

    # ------------------------------------------------------------------ running
    def wave_snapshot(self, rollout_id: str) -> Snapshot:
        ledger = self.reader
        return Snapshot(ledger.rollouts.get(rollout_id), ledger.plans.waves(rollout_id), self.clock.now())

    def _open_invocations(self, rollout: Rollout) -> int:
        return sum(max(0, c.open) for c in self.reader.dispatch.chunks(rollout.rollout_id, rollout.current_wave))

    def run(
        self,
        rollout_id: str,
        *,
        max_virtual: timedelta = timedelta(days=7),
        on_progress: Callable[[Snapshot], None] | None = None,
    ) -> Rollout:
        """Run virtual time until the rollout ended and every invocation it sent has settled."""
        deadline = self.clock.now() + max_virtual
        next_reconcile = self.clock.now() + self.options.reconcile_every
        while True:
            self.deliver()
            snapshot = self.wave_snapshot(rollout_id)
            if on_progress:
                on_progress(snapshot)
            rollout = snapshot.rollout
            sim_next = self.sim.next_event_time()
            schedules = self._due_schedules()
            if rollout.state.is_terminal and sim_next is None and not schedules and not self._open_invocations(rollout):
                return rollout
            timers = [t for t in (schedules[0][0] if schedules else None, next_reconcile) if t]
            moment = min([*timers, *([sim_next + self.options.batching_window] if sim_next else [])])
            moment = max(moment, self.clock.now())
            if moment > deadline:
                raise TwinTimeoutError(f"rollout {rollout_id} still {rollout.state.value} after {max_virtual}")
            self.clock.advance_to(moment)
            self.sim.advance_to(moment)
            self.deliver()
            self._fire_due_schedules()
            if self.clock.now() >= next_reconcile:
                self.invoke("reconcile", {})
                next_reconcile = self.clock.now() + self.options.reconcile_every
