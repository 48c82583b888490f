"""The outbox under redelivery and failure: notify called directly with stream records read from the twin's table.

Given ledger items that are news (remediation decisions, notices), when their stream records reach notify once,
twice, split differently, or after a failed PutEvents, then each event reaches the bus (counted on an SQS queue that
a rule on the bus feeds) and each notice reaches SNS exactly once.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from fleetwave.adapters.events_bus import EventBus
from fleetwave.adapters.ledger import ledger_change
from fleetwave.constants import EVENT_BUS_NAME
from fleetwave.service.notify import Channels
from fleetwave_local.twin import Twin, TwinOptions

from .streams import StreamReader, notify, put_item, sequence_numbers


@pytest.fixture(scope="module")
def module_twin() -> Iterator[Twin]:
    # No rollout runs here: one twin (moto, bus, rule, queues) serves every test; each test uses its own items.
    with Twin(TwinOptions(seed=21)) as twin:
        yield twin


@pytest.fixture
def twin(module_twin: Twin) -> Iterator[Twin]:
    module_twin.collect_notifications()
    module_twin.events.clear()
    module_twin.summaries.clear()
    yield module_twin


@pytest.fixture
def reader(twin: Twin) -> StreamReader:
    stream = StreamReader(twin)
    stream.read()  # start after whatever earlier tests wrote
    return stream


def remediation(rule: str, outcome: str, instance: str, minute: int, **extra: Any) -> dict[str, Any]:
    at = f"2026-01-01T00:{minute:02d}:00Z"
    return {
        "pk": f"REMEDIATION#{rule}",
        "sk": f"{at}#{instance}",
        "type": "remediation",
        "rule": rule,
        "outcome": outcome,
        "reason": f"{outcome} for the test",
        "alarm_name": f"{instance}-nginx-down",
        "instance_id": instance,
        "rollout_id": "20260101T000000-abcdef" if outcome != "skipped" else None,
        **extra,
    }


def notice(spec: str, minute: int) -> dict[str, Any]:
    return {
        "pk": f"NOTICE#{spec}",
        "sk": f"2026-01-01T00:{minute:02d}:00Z",
        "type": "notice",
        "kind": "start_skipped",
        "spec_name": spec,
        "reason": "calendar change-freeze is CLOSED",
    }


def news(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records notify publishes for (not its own idempotency records)."""
    return [r for r in records if ledger_change(r) is not None]


class FlakyEvents:
    """The real EventBridge client, except that chosen PutEvents calls fail (a failed entry, or an error)."""

    def __init__(self, real: Any, fail_calls: set[int], mode: str) -> None:
        self.real = real
        self.fail_calls = fail_calls
        self.mode = mode
        self.calls = 0

    def put_events(self, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        if self.calls in self.fail_calls:
            if self.mode == "entry":
                return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "retry"}]}
            raise ClientError({"Error": {"Code": "InternalException", "Message": "boom"}}, "PutEvents")
        return dict(self.real.put_events(**kwargs))


def flaky_channels(twin: Twin, fail_calls: set[int], mode: str = "entry") -> tuple[Channels, FlakyEvents]:
    from fleetwave.adapters.aws import client

    events = FlakyEvents(client("events"), fail_calls, mode)
    return Channels(events=EventBus(events, EVENT_BUS_NAME), summaries=twin.deps.summaries), events


def detail_types(twin: Twin) -> Counter[str]:
    return Counter(event["detail-type"] for event in twin.events)


# ---------------------------------------------------------------------------------------------------------------
def test_remediation_decisions_become_one_event_each_however_often_they_are_delivered(twin, reader):
    for item in (
        remediation("restart-nginx", "started", "i-0000000000000000a", 1),
        remediation("restart-nginx", "skipped", "i-0000000000000000a", 2),
        remediation("restart-nginx", "verification_failed", "i-0000000000000000a", 3),
    ):
        put_item(twin, item)
    records = news(reader.read())
    assert len(records) == 3

    # Delivered, redelivered whole, then redelivered in other splits (a bisected batch)
    assert notify(twin, records) == []
    assert notify(twin, records) == []
    assert notify(twin, records[:1]) == [] and notify(twin, records[1:]) == []

    assert detail_types(twin) == Counter(
        {"Remediation Started": 1, "Remediation Skipped": 1, "Remediation Verification Failed": 1}
    )
    by_outcome = {e["detail"]["outcome"]: e for e in twin.events}
    assert by_outcome["started"]["source"] == "fleetwave"
    assert by_outcome["started"]["detail"]["occurred_at"] == "2026-01-01T00:01:00Z"
    assert by_outcome["started"]["time"] == "2026-01-01T00:01:00Z"
    assert by_outcome["skipped"]["detail"]["rollout_id"] is None
    assert len({e["detail"]["event_id"] for e in twin.events}) == 3


def test_a_notice_becomes_one_sns_notice(twin, reader):
    put_item(twin, notice("nightly-patching", 5))
    records = news(reader.read())

    assert notify(twin, records) == []
    assert notify(twin, records) == []

    [message] = twin.summaries
    assert message["subject"] == "[fleetwave] nightly-patching: start skipped"
    assert message["attributes"] == {
        "kind": "notice",
        "notice": "start_skipped",
        "spec": "nightly-patching",
        "severity": "warning",
    }
    payload = json.loads(message["message"])
    assert payload["reason"] == "calendar change-freeze is CLOSED" and payload["occurred_at"] == "2026-01-01T00:05:00Z"
    assert twin.events == []  # a notice is not a bus event


@pytest.mark.parametrize("mode", ["entry", "exception"])
def test_a_failed_put_events_fails_its_record_and_the_later_ones_then_the_retry_publishes_each_once(twin, reader, mode):
    rule = f"flaky-{mode}"
    put_item(twin, remediation(rule, "started", "i-0000000000000000b", 10))
    put_item(twin, notice(f"{rule}-spec", 11))
    put_item(twin, remediation(rule, "skipped", "i-0000000000000000c", 12))
    records = news(reader.read())
    channels, events = flaky_channels(twin, fail_calls={1}, mode=mode)

    # When the first PutEvents fails
    failed = notify(twin, records, channels)

    # Then its record fails, and the records after it wait (in order) without being published
    assert failed == sequence_numbers(records)
    assert twin.events == [] and twin.summaries == []

    # When Lambda retries from the first failed record, everything is published once
    assert notify(twin, records, channels) == []
    # And a redelivery of the whole batch publishes nothing more
    assert notify(twin, records, channels) == []
    assert detail_types(twin) == Counter({"Remediation Started": 1, "Remediation Skipped": 1})
    assert len(twin.summaries) == 1
    assert events.calls == 3  # the failed call, then one per event


def test_a_failure_midway_keeps_what_was_published_and_retries_only_the_rest(twin, reader):
    put_item(twin, remediation("midway", "started", "i-0000000000000000d", 20))
    put_item(twin, remediation("midway", "skipped", "i-0000000000000000e", 21))
    records = news(reader.read())
    channels, _ = flaky_channels(twin, fail_calls={2})

    assert notify(twin, records, channels) == sequence_numbers(records[1:])
    assert detail_types(twin) == Counter({"Remediation Started": 1})

    # Lambda resumes at the failed record; a full redelivery after that changes nothing
    assert notify(twin, records[1:], channels) == []
    assert notify(twin, records, channels) == []
    assert detail_types(twin) == Counter({"Remediation Started": 1, "Remediation Skipped": 1})


def test_a_malformed_item_is_skipped_without_holding_the_stream_up(twin, reader):
    put_item(twin, remediation("malformed", "exploded", "i-0000000000000000f", 30))
    put_item(twin, remediation("malformed", "started", "i-0000000000000000f", 31))
    records = news(reader.read())

    assert notify(twin, records) == []
    assert detail_types(twin) == Counter({"Remediation Started": 1})


def _record(event_name: str, new: dict[str, Any] | None, old: dict[str, Any] | None = None) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    serialize = TypeSerializer().serialize
    data: dict[str, Any] = {
        "Keys": {"pk": {"S": "x"}, "sk": {"S": "y"}},
        "SequenceNumber": "100",
        "ApproximateCreationDateTime": 1767225600,
    }
    if new is not None:
        data["NewImage"] = {k: serialize(v) for k, v in new.items()}
    if old is not None:
        data["OldImage"] = {k: serialize(v) for k, v in old.items()}
    return {"eventID": "1", "eventName": event_name, "dynamodb": data}


@pytest.mark.parametrize(
    "record",
    [
        _record("MODIFY", {"type": "invocation", "status": "Success"}, {"type": "invocation", "status": "InProgress"}),
        _record("INSERT", {"type": "chunk", "state": "INTENT"}),
        _record("MODIFY", {"pk": "IDEMPOTENCY#notify", "status": "COMPLETED"}, {"status": "INPROGRESS"}),
        _record(
            "MODIFY", {"type": "rollout", "state": "RUNNING", "c_Success": 3}, {"type": "rollout", "state": "RUNNING"}
        ),
        _record("MODIFY", {"type": "wave", "state": "RUNNING", "dispatched": 50}, {"type": "wave", "state": "RUNNING"}),
        _record("MODIFY", {"type": "remediation", "outcome": "started", "rule": "r"}, {"type": "remediation"}),
        _record("REMOVE", None, {"type": "notice", "kind": "start_skipped"}),
    ],
    ids=["invocation", "chunk", "idempotency-record", "rollout-counters", "wave-counters", "remediation-update", "ttl"],
)
def test_changes_that_are_not_news_cost_no_call(twin, record):
    before = sum(twin.api_calls.values())

    assert notify(twin, [record]) == []

    assert sum(twin.api_calls.values()) == before
    assert twin.events == [] and twin.summaries == []


def test_stream_times_in_both_formats_are_understood():
    new = {"pk": "NOTICE#x", "sk": "not-a-time", "type": "notice", "kind": "start_skipped"}
    epoch = _record("INSERT", new)
    moto = _record("INSERT", new)
    moto["dynamodb"]["ApproximateCreationDateTime"] = "2026-01-01 00:00:00.507000+00:00"
    for record in (epoch, moto):
        change = ledger_change(record)
        assert change is not None
        assert change.happened_at() is not None
        assert change.happened_at().isoformat().startswith("2026-01-01T00:00:00")
