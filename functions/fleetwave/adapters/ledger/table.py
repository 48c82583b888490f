"""What every part of the ledger shares: item keys, attribute (de)serialisation and the low-level table calls
(get, query, batch get and write, transactions, and the builders of conditional puts and updates).

Only modules of this package import it: the rest of fleetwave sees domain objects, never items.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from fleetwave.adapters.aws import error_code
from fleetwave.constants import PK, SK
from fleetwave.core.model import empty_counts
from fleetwave.core.status import InvocationStatus
from fleetwave.errors import ConflictError

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

ROLLOUT_SK = "ROLLOUT"
COMMAND_SK = "COMMAND"


# ---------------------------------------------------------------------------------------------------- keys
def rollout_pk(rollout_id: str) -> str:
    return f"ROLLOUT#{rollout_id}"


def wave_sk(wave: int) -> str:
    return f"WAVE#{wave:04d}"


def shard_sk(wave: int, shard: int) -> str:
    return f"SHARD#{wave:04d}#{shard:04d}"


def chunk_sk(wave: int, chunk: int) -> str:
    return f"CHUNK#{wave:04d}#{chunk:05d}"


def inv_sk(command_id: str, instance_id: str) -> str:
    return f"INV#{command_id}#{instance_id}"


def command_pk(command_id: str) -> str:
    return f"COMMAND#{command_id}"


def counter_attr(status: InvocationStatus) -> str:
    return f"c_{status.value}"


def sortable_iso(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds always written, so that sort keys sort in time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------------------------------------------- attributes
def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    """Python values -> DynamoDB attribute values; None values are left out."""
    return {key: _serializer.serialize(value) for key, value in item.items() if value is not None}


def deserialize(item: Mapping[str, Any] | None) -> dict[str, Any]:
    """DynamoDB attribute values (an item, or a stream image) -> Python values."""
    return {key: _deserializer.deserialize(value) for key, value in (item or {}).items()}


def counts_from(item: Mapping[str, Any]) -> dict[InvocationStatus, int]:
    """The per-status counters ``c_<Status>`` of a rollout or wave item."""
    counts = empty_counts()
    for status in InvocationStatus:
        counts[status] = int(item.get(counter_attr(status), 0))
    return counts


def counter_update(deltas: Mapping[InvocationStatus, int]) -> tuple[str, dict[str, str], dict[str, Any]] | None:
    """An ``ADD`` expression (with its names and values) for non-zero counter deltas, or None when all are zero."""
    parts, names, values = [], {}, {}
    for index, (status, delta) in enumerate(sorted(deltas.items())):
        if not delta:
            continue
        names[f"#c{index}"] = counter_attr(status)
        values[f":c{index}"] = delta
        parts.append(f"#c{index} :c{index}")
    if not parts:
        return None
    return "ADD " + ", ".join(parts), names, values


def is_condition_failure(error: ClientError) -> bool:
    return error_code(error) in {"ConditionalCheckFailedException", "TransactionCanceledException"}


# ---------------------------------------------------------------------------------------------------- the table
class Table:
    """One DynamoDB table through one client: the calls every part of the ledger is built from."""

    def __init__(self, name: str, dynamodb: Any) -> None:
        self.name = name
        self.db = dynamodb

    def key(self, pk: str, sk: str) -> dict[str, Any]:
        return {PK: {"S": pk}, SK: {"S": sk}}

    def get(self, pk: str, sk: str, *, projection: str | None = None) -> dict[str, Any] | None:
        kwargs: dict[str, Any] = {"TableName": self.name, "Key": self.key(pk, sk), "ConsistentRead": True}
        if projection:
            kwargs["ProjectionExpression"] = projection
        response = self.db.get_item(**kwargs)
        item = response.get("Item")
        return deserialize(item) if item else None

    def query(self, pk: str, prefix: str, **extra: Any) -> Iterator[dict[str, Any]]:
        """Items of partition ``pk`` whose sort key starts with ``prefix`` (all pages, consistent reads)."""
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {"#pk": PK, "#sk": SK, **extra.pop("names", {})},
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": prefix}, **extra.pop("values", {})},
            "ConsistentRead": True,
            **extra,
        }
        while True:
            response = self.db.query(**kwargs)
            for item in response.get("Items", []):
                yield deserialize(item)
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def partition(self, pk: str) -> list[dict[str, Any]]:
        """Every item of partition ``pk``, in sort key order (all pages)."""
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": PK},
            "ExpressionAttributeValues": {":pk": {"S": pk}},
        }
        items: list[dict[str, Any]] = []
        while True:
            response = self.db.query(**kwargs)
            items.extend(deserialize(item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def batch_write(self, items: Sequence[Mapping[str, Any]]) -> None:
        for start in range(0, len(items), 25):
            requests: list[dict[str, Any]] = [
                {"PutRequest": {"Item": serialize(item)}} for item in items[start : start + 25]
            ]
            pending: dict[str, Any] = {self.name: requests}
            # UnprocessedItems are part of BatchWriteItem's contract: the caller re-sends them.
            for _ in range(8):
                response = self.db.batch_write_item(RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    break
            if pending:
                raise ConflictError("BatchWriteItem left items unprocessed after 8 attempts")

    def batch_get(
        self, keys: Sequence[tuple[str, str]], projection: str, names: dict[str, str]
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 100):
            request: dict[str, Any] = {
                self.name: {
                    "Keys": [self.key(pk, sk) for pk, sk in unique[start : start + 100]],
                    "ProjectionExpression": projection,
                    "ExpressionAttributeNames": names,
                    "ConsistentRead": True,
                }
            }
            for _ in range(8):
                response = self.db.batch_get_item(RequestItems=request)
                found.extend(deserialize(item) for item in response.get("Responses", {}).get(self.name, []))
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
        return found

    def transact(self, items: list[dict[str, Any]]) -> None:
        """TransactWriteItems; ConflictError when a condition fails (nothing of the transaction is written)."""
        try:
            self.db.transact_write_items(TransactItems=items)
        except ClientError as error:
            if is_condition_failure(error):
                raise ConflictError(str(error)) from error
            raise

    def put_if_absent(self, item: Mapping[str, Any]) -> bool:
        """PutItem unless an item with this key exists: False (and nothing written) when one does."""
        try:
            self.db.put_item(
                TableName=self.name,
                Item=serialize(item),
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PK},
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def put(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """A transaction Put (unconditional)."""
        return {"TableName": self.name, "Item": serialize(item)}

    def put_new(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """A transaction Put that fails (cancelling the transaction) if the item already exists."""
        return {
            "TableName": self.name,
            "Item": serialize(item),
            "ConditionExpression": "attribute_not_exists(#pk)",
            "ExpressionAttributeNames": {"#pk": PK},
        }

    def update(
        self, pk: str, sk: str, expression: str, *, condition: str | None = None, **attrs: Any
    ) -> dict[str, Any]:
        """The arguments of an UpdateItem (or a transaction Update); ``names=`` and ``values=`` as plain dicts."""
        names, values = attrs.pop("names", {}), attrs.pop("values", {})
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "Key": self.key(pk, sk),
            "UpdateExpression": expression,
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values:
            kwargs["ExpressionAttributeValues"] = serialize(values)
        if condition:
            kwargs["ConditionExpression"] = condition
        return kwargs
