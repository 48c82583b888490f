"""Event wiring: the patterns come from fleetwave.constants, and every delivery path has a DLQ."""

from __future__ import annotations

from fleetwave import constants

from .conftest import Synthesized


def test_ssm_status_rule_uses_the_shared_pattern_and_feeds_the_status_queue(synthesized: Synthesized) -> None:
    ingestion = synthesized.stack.ingestion
    # Given the rule that catches SSM Run Command status changes
    rule = synthesized.resources[synthesized.logical_id(ingestion.status_rule)]["Properties"]
    # Then its pattern is constants.SSM_STATUS_EVENT_PATTERN, on the default bus
    assert rule["EventPattern"] == constants.SSM_STATUS_EVENT_PATTERN
    assert rule["Name"] == constants.STATUS_RULE_NAME
    assert "EventBusName" not in rule
    # And its target is the status queue, with bounded retries and a dead-letter queue
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [synthesized.logical_id(ingestion.status_queue), "Arn"]}
    assert target["DeadLetterConfig"] == {
        "Arn": {"Fn::GetAtt": [synthesized.logical_id(ingestion.delivery_dlq), "Arn"]}
    }
    assert 0 < target["RetryPolicy"]["MaximumRetryAttempts"] <= 185
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 86400


def test_alarm_rule_takes_only_this_account_and_region_and_feeds_the_alarm_queue(synthesized: Synthesized) -> None:
    remediation = synthesized.stack.functions.remediation
    assert remediation is not None
    rule = synthesized.resources[synthesized.logical_id(remediation.rule)]["Properties"]
    # Then the rule matches alarms of this account and region entering ALARM (the shared pattern), on the default bus
    account, region = {"Ref": "AWS::AccountId"}, {"Ref": "AWS::Region"}
    assert rule["EventPattern"] == constants.alarm_event_pattern(account, region)  # type: ignore[arg-type]
    assert rule["EventPattern"]["account"] == [account] and rule["EventPattern"]["region"] == [region]
    assert "EventBusName" not in rule
    # And it delivers to the alarm queue (a storm is buffered there), dead-lettering what it cannot deliver
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [synthesized.logical_id(remediation.queue), "Arn"]}
    dlq = synthesized.logical_id(synthesized.stack.ingestion.delivery_dlq)
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [dlq, "Arn"]}}
    # And the queue parks a message that keeps failing in its own DLQ
    queue = synthesized.resources[synthesized.logical_id(remediation.queue)]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": [synthesized.logical_id(remediation.dlq), "Arn"]
    }
    assert queue["VisibilityTimeout"] >= 6 * constants.REMEDIATE_TIMEOUT_SECONDS
    # And only that rule may send to it through the queue policy
    [policy] = [
        p["Properties"]["PolicyDocument"]
        for p in synthesized.of_type("AWS::SQS::QueuePolicy").values()
        if {"Ref": synthesized.logical_id(remediation.queue)} in p["Properties"]["Queues"]
    ]
    [allow] = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "events.amazonaws.com"}
    assert allow["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [synthesized.logical_id(remediation.rule), "Arn"]}}
    }


def test_sns_status_notifications_reach_the_queue_in_their_envelope(synthesized: Synthesized) -> None:
    ingestion = synthesized.stack.ingestion
    topic = {"Ref": synthesized.logical_id(ingestion.status_topic)}
    [properties] = [
        s["Properties"]
        for s in synthesized.of_type("AWS::SNS::Subscription").values()
        if s["Properties"]["TopicArn"] == topic
    ]
    # Then the status topic delivers to the status queue, not raw (track_status reads the SNS envelope)
    assert properties["Protocol"] == "sqs"
    assert properties["Endpoint"] == {"Fn::GetAtt": [synthesized.logical_id(ingestion.status_queue), "Arn"]}
    assert properties["RawMessageDelivery"] is False
    # And what SNS cannot deliver lands in the delivery DLQ
    dlq = synthesized.logical_id(ingestion.delivery_dlq)
    assert properties["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]}}


def test_resources_use_the_shared_names(synthesized: Synthesized) -> None:
    stack = synthesized.stack
    names = {
        stack.state.table: ("TableName", constants.TABLE_NAME),
        stack.ingestion.status_topic: ("TopicName", constants.STATUS_TOPIC_NAME),
        stack.ingestion.status_queue: ("QueueName", constants.STATUS_QUEUE_NAME),
        stack.ingestion.status_dlq: ("QueueName", constants.STATUS_DLQ_NAME),
        stack.notifications.summary_topic: ("TopicName", constants.SUMMARY_TOPIC_NAME),
        stack.notifications.event_bus: ("Name", constants.EVENT_BUS_NAME),
    }
    for construct, (prop, expected) in names.items():
        assert synthesized.resources[synthesized.logical_id(construct)]["Properties"][prop] == expected
    [group] = synthesized.of_type("AWS::Scheduler::ScheduleGroup").values()
    assert group["Properties"]["Name"] == constants.SCHEDULER_GROUP_NAME


def test_summaries_reach_the_configured_email_addresses(synthesized: Synthesized) -> None:
    topic = {"Ref": synthesized.logical_id(synthesized.stack.notifications.summary_topic)}
    emails = [
        s["Properties"]["Endpoint"]
        for s in synthesized.of_type("AWS::SNS::Subscription").values()
        if s["Properties"]["TopicArn"] == topic and s["Properties"]["Protocol"] == "email"
    ]
    assert emails == ["ops@example.com"]
