"""Reliability: dead-letter queues, bounded retries, batch item failures and the status queue's timeouts."""

from __future__ import annotations

import json

import pytest

from stacks.functions import FUNCTIONS

from .conftest import Synthesized

ASYNC_FUNCTIONS = [key for key, settings in FUNCTIONS.items() if settings.async_retries is not None]


def test_status_queue_parks_poison_messages_in_its_dlq(synthesized: Synthesized) -> None:
    ingestion = synthesized.stack.ingestion
    queue = synthesized.resources[synthesized.logical_id(ingestion.status_queue)]["Properties"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [synthesized.logical_id(ingestion.status_dlq), "Arn"]},
        "maxReceiveCount": 5,
    }


def test_status_queue_visibility_timeout_covers_six_track_status_timeouts(synthesized: Synthesized) -> None:
    # Given the track_status function and the queue it reads
    track = synthesized.resources[synthesized.logical_id(synthesized.stack.functions.functions["track_status"])]
    queue = synthesized.resources[synthesized.logical_id(synthesized.stack.ingestion.status_queue)]
    # Then a message stays invisible for at least six function timeouts (AWS's guidance for SQS event sources)
    assert queue["Properties"]["VisibilityTimeout"] >= 6 * track["Properties"]["Timeout"]


def test_track_status_reads_batches_and_reports_item_failures(synthesized: Synthesized) -> None:
    track_id = synthesized.logical_id(synthesized.stack.functions.functions["track_status"])
    queue_id = synthesized.logical_id(synthesized.stack.ingestion.status_queue)
    [mapping] = [
        m["Properties"]
        for m in synthesized.of_type("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": track_id}
    ]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert mapping["BatchSize"] == 10
    assert 0 < mapping["MaximumBatchingWindowInSeconds"] <= 5
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"]["MaximumConcurrency"] >= 2


def test_notify_consumes_the_ledger_stream_with_bounded_retries_and_a_dlq(synthesized: Synthesized) -> None:
    stack = synthesized.stack
    notify_id = synthesized.logical_id(stack.functions.functions["notify"])
    [mapping] = [
        m["Properties"]
        for m in synthesized.of_type("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": notify_id}
    ]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [synthesized.logical_id(stack.state.table), "StreamArn"]}
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 0 < mapping["MaximumRetryAttempts"] <= 10
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": [synthesized.logical_id(stack.functions.failed_invocations), "Arn"]
    }


def test_only_the_item_types_notify_publishes_invoke_it(synthesized: Synthesized) -> None:
    # Given the ledger stream's mapping to notify
    notify_id = synthesized.logical_id(synthesized.stack.functions.functions["notify"])
    [mapping] = [
        m["Properties"]
        for m in synthesized.of_type("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": notify_id}
    ]
    # Then invocation, chunk and shard writes (most of the stream) never invoke it
    [pattern] = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    assert pattern == {"dynamodb": {"NewImage": {"type": {"S": ["rollout", "wave", "remediation", "notice"]}}}}


@pytest.mark.parametrize("key", ASYNC_FUNCTIONS)
def test_async_functions_send_failures_to_a_dlq_after_bounded_retries(synthesized: Synthesized, key: str) -> None:
    functions = synthesized.stack.functions
    function_id = synthesized.logical_id(functions.functions[key])
    [config] = [
        c["Properties"]
        for c in synthesized.of_type("AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": [synthesized.logical_id(functions.failed_invocations), "Arn"]
    }
    assert config["MaximumRetryAttempts"] <= 2
    assert config["MaximumEventAgeInSeconds"] <= 7200


def test_scheduler_targets_have_a_retry_policy_and_a_dlq(synthesized: Synthesized) -> None:
    dlq = {"Fn::GetAtt": [synthesized.logical_id(synthesized.stack.ingestion.delivery_dlq), "Arn"]}
    for schedule in synthesized.of_type("AWS::Scheduler::Schedule").values():
        target = schedule["Properties"]["Target"]
        assert target["DeadLetterConfig"] == {"Arn": dlq}
        assert 0 < target["RetryPolicy"]["MaximumRetryAttempts"] <= 5


def test_every_dead_letter_queue_has_an_alarm(synthesized: Synthesized) -> None:
    stack = synthesized.stack
    queues = [stack.ingestion.status_dlq, stack.ingestion.delivery_dlq, stack.functions.failed_invocations]
    alarmed = set()
    for alarm in synthesized.of_type("AWS::CloudWatch::Alarm").values():
        properties = alarm["Properties"]
        if properties.get("MetricName") == "ApproximateNumberOfMessagesVisible":
            [dimension] = properties["Dimensions"]
            alarmed.add(dimension["Value"]["Fn::GetAtt"][0])
            assert properties["Threshold"] == 1
            assert properties["AlarmActions"], "a DLQ alarm must notify someone"
    assert {synthesized.logical_id(q) for q in queues} <= alarmed


def test_functions_alarm_on_errors_and_throttles_and_the_queue_on_age(synthesized: Synthesized) -> None:
    metrics: dict[str, set[str]] = {}
    for alarm in synthesized.of_type("AWS::CloudWatch::Alarm").values():
        properties = alarm["Properties"]
        for dimension in properties.get("Dimensions", []):
            if dimension["Name"] in ("FunctionName", "QueueName"):
                metrics.setdefault(properties["MetricName"], set()).add(str(dimension["Value"]))
    functions = {str({"Ref": synthesized.logical_id(f)}) for f in synthesized.stack.functions.functions.values()}
    assert functions <= metrics["Errors"]
    assert functions <= metrics["Throttles"]
    status_queue = synthesized.logical_id(synthesized.stack.ingestion.status_queue)
    assert str({"Fn::GetAtt": [status_queue, "QueueName"]}) in metrics["ApproximateAgeOfOldestMessage"]
