"""Lambda's pollers, done by hand: the status queue to track_status, the table's stream to notify, the alarm queue
to remediate.

A poller retries as Lambda's event source mappings do (partial batch failures), and what notify publishes (SNS
summaries, events on the fleetwave bus) is read from the twin's inbox queues into lists the twin shows.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

from fleetwave.constants import STATUS_QUEUE_NAME

from fleetwave_local.twin.account import ACCOUNT, REGION
from fleetwave_local.twin.lambdas import sqs_event
from fleetwave_local.twin.resources import Resources

# Like the stack's stream event source mapping: a failing batch is retried this often, then given up.
STREAM_RETRY_ATTEMPTS = 5

Invoke = Callable[[str, dict[str, Any]], Any]
# remediate on an alarm-queue batch: (its answer, what it decided for each message it handled)
Remediate = Callable[[dict[str, Any]], tuple[dict[str, Any], list[dict[str, Any]]]]


class Delivery:
    """Delivers to the functions (through `invoke`, and `remediate` for the alarm queue) what the twin's queues and
    stream hold, until all are empty.

    `summaries`, `events`, `remediations` and `errors` are the twin's lists: what notify published, what remediate
    decided, and what the handlers failed.
    """

    def __init__(
        self,
        plumbing: Callable[[str], Any],
        resources: Resources,
        invoke: Invoke,
        remediate: Remediate,
        *,
        rng: random.Random,
        shuffle: bool,
        summaries: list[dict[str, Any]],
        events: list[dict[str, Any]],
        remediations: list[dict[str, Any]],
        errors: list[str],
    ) -> None:
        self._plumbing = plumbing
        self._resources = resources
        self._invoke = invoke
        self._remediate = remediate
        self._rng = rng
        self._shuffle = shuffle
        self._summaries = summaries
        self._events = events
        self._remediations = remediations
        self._errors = errors
        self._shard_iterators: dict[str, str] = {}
        self._failed_alarm_messages: list[str] = []

    def deliver(self) -> int:
        """Feed the status queue, the table's stream and the alarm queue to their functions until all are empty."""
        delivered = 0
        for _ in range(10_000):
            moved = self._deliver_status_queue() + self._deliver_stream() + self._deliver_alarm_queue()
            delivered += moved
            if not moved:
                return delivered
        raise RuntimeError("delivery did not converge")

    def _deliver_status_queue(self) -> int:
        sqs = self._plumbing("sqs")
        messages: list[dict[str, Any]] = []
        while len(messages) < 200:
            batch = sqs.receive_message(
                QueueUrl=self._resources.status_queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                break
            messages.extend(batch)
        if not messages:
            return 0
        if self._shuffle:
            self._rng.shuffle(messages)  # SQS standard queues keep no order
        for start in range(0, len(messages), 10):
            batch = messages[start : start + 10]
            event = sqs_event(batch, f"arn:aws:sqs:{REGION}:{ACCOUNT}:{STATUS_QUEUE_NAME}")
            response = self._invoke("track_status", event)
            failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
            done = [m for m in batch if m["MessageId"] not in failed]
            if failed:
                self._errors.append(f"track_status: {len(failed)} message(s) to retry")
                # Lambda would let the visibility timeout lapse; the twin makes them visible again at once.
                sqs.change_message_visibility_batch(
                    QueueUrl=self._resources.status_queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                        for i, m in enumerate(batch)
                        if m["MessageId"] in failed
                    ],
                )
            if done:
                sqs.delete_message_batch(
                    QueueUrl=self._resources.status_queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
                )
        return len(messages)

    def redeliver_alarm_queue(self) -> int:
        """Messages whose handling failed come back once their visibility timeout lapses: now, in the twin."""
        return self._deliver_alarm_queue(include_failed=True)

    def _deliver_alarm_queue(self, *, include_failed: bool = False) -> int:
        """Lambda's SQS poller for remediate: batches of up to 10; a failed message stays for a later delivery."""
        sqs = self._plumbing("sqs")
        url = self._resources.alarm_queue_url
        if include_failed:
            self._release_failed_alarm_messages()
        delivered = 0
        while True:
            batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
                "Messages", []
            )
            if not batch:
                return delivered
            response, decided = self._remediate(sqs_event(batch, self._resources.alarm_queue_arn))
            self._remediations.extend(decided)
            failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
            if failed:
                self._errors.append(f"remediate: {len(failed)} message(s) to retry")
                self._failed_alarm_messages.extend(m["ReceiptHandle"] for m in batch if m["MessageId"] in failed)
            done = [m for m in batch if m["MessageId"] not in failed]
            if done:
                sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
                )
            delivered += len(batch)

    def _release_failed_alarm_messages(self) -> None:
        handles, self._failed_alarm_messages = self._failed_alarm_messages, []
        if handles:
            self._plumbing("sqs").change_message_visibility_batch(
                QueueUrl=self._resources.alarm_queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0} for i, h in enumerate(handles)],
            )

    def _deliver_stream(self) -> int:
        streams = self._plumbing("dynamodbstreams")
        shards = streams.describe_stream(StreamArn=self._resources.stream_arn)["StreamDescription"]["Shards"]
        delivered = 0
        for shard in shards:
            shard_id = shard["ShardId"]
            iterator = (
                self._shard_iterators.get(shard_id)
                or streams.get_shard_iterator(
                    StreamArn=self._resources.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
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
            response = self._invoke("notify", {"Records": [{**r, "eventSource": "aws:dynamodb"} for r in batch]}) or {}
            failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
            if not failed:
                return
            self._errors.append(f"notify: {len(failed)} record(s) to retry")
            first = min(i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in failed)
            batch = batch[first:]
        self._errors.append(f"notify: gave up on {len(batch)} record(s) after {STREAM_RETRY_ATTEMPTS} retries")

    def replay_stream(self) -> int:
        """Deliver the whole stream to notify again, from its first record (a redelivery, as after a crash)."""
        self._shard_iterators.clear()
        return self._deliver_stream()

    def _collect_events(self) -> None:
        for body in self._drain(self._resources.events_inbox_url):
            self._events.append(json.loads(body))

    def _collect_summaries(self) -> None:
        for body in self._drain(self._resources.summary_inbox_url):
            envelope = json.loads(body)
            self._summaries.append(
                {
                    "subject": envelope.get("Subject", ""),
                    "message": envelope.get("Message", ""),
                    "attributes": {k: v.get("Value") for k, v in envelope.get("MessageAttributes", {}).items()},
                }
            )

    def _drain(self, queue_url: str) -> Iterator[str]:
        """Every message body in the queue, each deleted once the caller has taken it."""
        sqs = self._plumbing("sqs")
        while True:
            messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return
            for message in messages:
                yield message["Body"]
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
