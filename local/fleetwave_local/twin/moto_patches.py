"""Speed-ups for moto that keep its semantics, used by the local twin only.

moto's TransactWriteItems backs up the *whole table* with ``copy.deepcopy`` once per item of every transaction, so
each transaction costs O(items in the table) and a 2,000-node rollout spends minutes copying. The patch below keeps
the all-or-nothing behaviour (a failed condition cancels every write, and no stream record of the cancelled
transaction stays behind) with a backup of just the items the transaction touches.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any


def _cheap_copy_module() -> SimpleNamespace:
    from moto.dynamodb.models.table import Table

    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        # Tables are backed up per item by the wrapper instead.
        if isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)

    return SimpleNamespace(deepcopy=deepcopy, copy=copy.copy)


@contextmanager
def fast_transactions() -> Iterator[None]:
    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType

    backend_class = models.DynamoDBBackend
    original = backend_class.transact_write_items
    cheap = _cheap_copy_module()

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        snapshots: list[tuple[Any, Any, Any, Any]] = []
        shards: dict[int, tuple[Any, int]] = {}
        for entry in transact_items:
            op_type, op = next(iter(entry.items()))
            try:
                table = self.get_table(op["TableName"])
                attrs = op["Item"] if op_type == "Put" else op["Key"]
                hash_key = DynamoType(attrs[table.hash_key_attr])
                range_key = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr else None
            except Exception:  # noqa: S112 - moto reports malformed requests its own way
                continue
            snapshots.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
            if table.stream_shard is not None:
                shards.setdefault(id(table.stream_shard), (table.stream_shard, len(table.stream_shard.items)))
        real_copy_module = models.copy
        models.copy = cheap  # type: ignore[assignment]
        try:
            original(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in snapshots:
                _restore(table, hash_key, range_key, item)
            for shard, length in shards.values():
                del shard.items[length:]
            raise
        finally:
            models.copy = real_copy_module

    backend_class.transact_write_items = transact_write_items  # type: ignore[method-assign]
    try:
        yield
    finally:
        backend_class.transact_write_items = original  # type: ignore[method-assign]


def _restore(table: Any, hash_key: Any, range_key: Any, item: Any) -> None:
    if range_key is not None:
        bucket = table.items[hash_key]
        if item is None:
            bucket.pop(range_key, None)
        else:
            bucket[range_key] = item
    elif item is None:
        table.items.pop(hash_key, None)
    else:
        table.items[hash_key] = item


@contextmanager
def composite_alarms() -> Iterator[None]:
    """PutCompositeAlarm: moto keeps composite alarms (an alarm with an AlarmRule, listed under CompositeAlarms by
    DescribeAlarms) but routes no PutCompositeAlarm action to them; its PutMetricAlarm handler reads AlarmRule."""
    from moto.cloudwatch.responses import CloudWatchResponse

    had = "put_composite_alarm" in vars(CloudWatchResponse)
    original = vars(CloudWatchResponse).get("put_composite_alarm")
    CloudWatchResponse.put_composite_alarm = CloudWatchResponse.put_metric_alarm  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if had:
            CloudWatchResponse.put_composite_alarm = original  # type: ignore[attr-defined]
        else:
            del CloudWatchResponse.put_composite_alarm  # type: ignore[attr-defined]
