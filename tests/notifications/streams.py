"""Reading the twin's ledger stream from the tests, and calling notify with chosen batches (redeliveries)."""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.types import TypeSerializer
from fleetwave.constants import TABLE_NAME
from fleetwave.handlers.notify import handler
from fleetwave.observability import metrics
from fleetwave.service.notify import Channels
from fleetwave_local.twin import FakeLambdaContext, Twin

_serializer = TypeSerializer()


class StreamReader:
    """Reads the table's stream with iterators of its own (the twin's delivery keeps its own)."""

    def __init__(self, twin: Twin) -> None:
        self.twin = twin
        self.iterators: dict[str, str] = {}

    def read(self) -> list[dict[str, Any]]:
        """Records written since the last read, in stream order."""
        streams = self.twin.plumbing("dynamodbstreams")
        arn = self.twin.resources.stream_arn
        records: list[dict[str, Any]] = []
        for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            shard_id = shard["ShardId"]
            iterator = (
                self.iterators.get(shard_id)
                or streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")[
                    "ShardIterator"
                ]
            )
            while True:
                response = streams.get_records(ShardIterator=iterator, Limit=1000)
                iterator = response.get("NextShardIterator") or iterator
                if not response.get("Records"):
                    break
                records.extend(response["Records"])
            self.iterators[shard_id] = iterator
        return records


def put_item(twin: Twin, item: dict[str, Any]) -> None:
    twin.plumbing("dynamodb").put_item(
        TableName=TABLE_NAME, Item={k: _serializer.serialize(v) for k, v in item.items() if v is not None}
    )


def notify(twin: Twin, records: list[dict[str, Any]], channels: Channels | None = None) -> list[str]:
    """Invoke notify with these records (as Lambda's stream poller would); returns the failed sequence numbers."""
    event = {"Records": [{**record, "eventSource": "aws:dynamodb"} for record in records]}
    try:
        response = handler(event, FakeLambdaContext("notify"), deps=twin.deps, channels=channels)
    finally:
        metrics.clear_metrics()
    twin.collect_notifications()
    return [failure["itemIdentifier"] for failure in response.get("batchItemFailures", [])]


def sequence_numbers(records: list[dict[str, Any]]) -> list[str]:
    return [record["dynamodb"]["SequenceNumber"] for record in records]
