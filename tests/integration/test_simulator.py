"""The fleet simulator answers SSM Run Command like SSM does, over virtual time, through real boto3 calls to moto."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.loaders
import botocore.session
import pytest
from botocore.exceptions import ClientError
from fleetwave_local.simulator import FleetSimulator, VirtualClock
from moto import mock_aws

REGION = "us-east-1"
ACCOUNT = "123456789012"
DOCUMENT = "Fleetwave-Sim-RunShell"
INVOCATION_DETAIL_TYPE = "EC2 Command Invocation Status-change Notification"
COMMAND_DETAIL_TYPE = "EC2 Command Status-change Notification"
ISO_SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
ISO_MILLIS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

SimFactory = Callable[..., FleetSimulator]
Clients = Callable[[str], Any]
#: parse botocore's service models once for the whole file, not once per test
_LOADER = botocore.loaders.create_loader()


# --- fixtures --------------------------------------------------------------------------------------------------------


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clients]:
    """moto for everything, and a client factory on a fresh session (so its clients carry the simulator's hook)."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        session = botocore.session.Session()
        session.register_component("data_loader", _LOADER)
        yield lambda service: session.create_client(service, region_name=REGION)


@pytest.fixture
def ssm(aws: Clients) -> Any:
    client = aws("ssm")
    content = {
        "schemaVersion": "2.2",
        "description": "Run a shell script (fleet simulator tests).",
        "parameters": {
            "commands": {"type": "StringList", "description": "commands"},
            "executionTimeout": {"type": "String", "default": "3600", "description": "seconds"},
        },
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "runShellScript",
                "inputs": {"runCommand": "{{ commands }}", "timeoutSeconds": "{{ executionTimeout }}"},
            }
        ],
    }
    client.create_document(Content=json.dumps(content), Name=DOCUMENT, DocumentType="Command", DocumentFormat="JSON")
    return client


@pytest.fixture
def make_sim(aws: Clients) -> Iterator[SimFactory]:
    """Build and install a simulator (one at a time); all are uninstalled at the end of the test."""
    made: list[FleetSimulator] = []

    def factory(**options: Any) -> FleetSimulator:
        for previous in made:
            previous.uninstall()
        options.setdefault("seed", 1)
        sim = FleetSimulator(options.pop("clock", None) or VirtualClock(), **options).install()
        made.append(sim)
        return sim

    yield factory
    for sim in made:
        sim.uninstall()


# --- helpers -------------------------------------------------------------------------------------------------------


def send(ssm: Any, instance_ids: list[str], **options: Any) -> dict[str, Any]:
    options.setdefault("Parameters", {"commands": ["echo hello"]})
    command: dict[str, Any] = ssm.send_command(InstanceIds=instance_ids, DocumentName=DOCUMENT, **options)["Command"]
    return command


def error_code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


def statuses(ssm: Any, command_id: str) -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    for page in ssm.get_paginator("list_command_invocations").paginate(CommandId=command_id):
        for inv in page["CommandInvocations"]:
            found[inv["InstanceId"]] = (inv["Status"], inv["StatusDetails"])
    return found


def command_of(ssm: Any, command_id: str) -> dict[str, Any]:
    command: dict[str, Any] = ssm.list_commands(CommandId=command_id)["Commands"][0]
    return command


def drain(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return bodies
        bodies += [json.loads(m["Body"]) for m in messages]
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )


def ssm_rule_to_queue(aws: Clients, name: str) -> str:
    """The production wiring: an EventBridge rule for both SSM detail-types, targeting an SQS queue."""
    sqs = aws("sqs")
    events = aws("events")
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {"source": ["aws.ssm"], "detail-type": [INVOCATION_DETAIL_TYPE, COMMAND_DETAIL_TYPE]}
    events.put_rule(Name=f"{name}-rule", EventPattern=json.dumps(pattern), State="ENABLED")
    events.put_targets(Rule=f"{name}-rule", Targets=[{"Id": "queue", "Arn": queue_arn}])
    return str(queue_url)


# --- SendCommand ---------------------------------------------------------------------------------------------------


def test_send_command_enforces_ssm_limits(ssm: Any, make_sim: SimFactory) -> None:
    sim = make_sim()
    ids = sim.add_nodes(51, ec2=False)

    rejected: dict[str, tuple[dict[str, Any], str]] = {
        "51 instance ids": ({"instance_ids": ids}, "ValidationException"),
        "comment of 101 characters": ({"Comment": "x" * 101}, "ValidationException"),
        "timeout above 30 days": ({"TimeoutSeconds": 2_592_001}, "ValidationException"),
        "MaxConcurrency 0": ({"MaxConcurrency": "0"}, "ValidationException"),
        "MaxErrors 101%": ({"MaxErrors": "101%"}, "ValidationException"),
        "Targets": ({"Targets": [{"Key": "tag:env", "Values": ["prod"]}]}, "InvalidParameters"),
        "unknown document": ({"DocumentName": "No-Such-Document"}, "InvalidDocument"),
        "unknown document version": ({"DocumentVersion": "7"}, "InvalidDocumentVersion"),
        "unknown node": ({"instance_ids": ["i-0123456789abcdef0"]}, "InvalidInstanceId"),
        "missing required parameter": ({"Parameters": {}}, "InvalidParameters"),
        "undefined parameter": ({"Parameters": {"commands": ["x"], "nope": ["1"]}}, "InvalidParameters"),
    }
    for case, (options, code) in rejected.items():
        instance_ids = options.pop("instance_ids", ids[:2])
        kwargs: dict[str, Any] = {"InstanceIds": instance_ids, "DocumentName": DOCUMENT}
        kwargs["Parameters"] = {"commands": ["echo"]}
        kwargs.update(options)
        with pytest.raises(ClientError) as raised:
            ssm.send_command(**kwargs)
        assert error_code(raised) == code, case
    assert sim.commands() == []

    command = send(ssm, ids[:50], Comment="fleetwave:r1:0:0", MaxConcurrency="10%", MaxErrors="0")
    assert command["Status"] == "Pending"
    assert command["StatusDetails"] == "Pending"
    assert command["TargetCount"] == 50
    assert command["Comment"] == "fleetwave:r1:0:0"
    assert command["ExpiresAfter"] - command["RequestedDateTime"] == timedelta(seconds=3600)
    assert sim.command(command["CommandId"]).concurrency_limit == 5
    # documents still come from moto while the simulator is installed
    assert ssm.describe_document(Name=DOCUMENT)["Document"]["Name"] == DOCUMENT


# --- rate control --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("max_concurrency", "limit"), [("3", 3), ("15%", 3)])
def test_max_concurrency_is_never_exceeded(ssm: Any, make_sim: SimFactory, max_concurrency: str, limit: int) -> None:
    sim = make_sim(slow_rate=0.2, offline_rate=0.1, fail_rate=0.1)
    ids = sim.add_nodes(20, ec2=False)
    command = send(ssm, ids, MaxConcurrency=max_concurrency, MaxErrors="100%", TimeoutSeconds=900)

    busiest = 0
    while (due := sim.next_event_time()) is not None:
        sim.advance_to(due)
        running = [s for s, _ in statuses(ssm, command["CommandId"]).values() if s in ("InProgress", "Delayed")]
        assert len(running) <= limit, f"{len(running)} running at {due}"
        busiest = max(busiest, len(running))

    assert busiest == limit
    final = command_of(ssm, command["CommandId"])
    assert final["CompletedCount"] == 20
    assert final["Status"] in ("Success", "Failed", "TimedOut")


def test_max_errors_exceeded_terminates_the_remaining_invocations(ssm: Any, make_sim: SimFactory) -> None:
    sim = make_sim()
    ids = sim.add_nodes(6, ec2=False)
    sim.set_outcome(ids[0], "fail")
    sim.set_outcome(ids[1], "fail")

    command = send(ssm, ids, MaxConcurrency="1", MaxErrors="1")
    sim.run_until_idle()

    found = statuses(ssm, command["CommandId"])
    assert found[ids[0]] == ("Failed", "Failed")
    assert found[ids[1]] == ("Failed", "Failed")
    assert [found[i] for i in ids[2:]] == [("Cancelled", "Terminated")] * 4
    final = command_of(ssm, command["CommandId"])
    assert (final["Status"], final["StatusDetails"]) == ("Failed", "Failed")
    assert (final["ErrorCount"], final["CompletedCount"]) == (2, 6)
    terminated = ssm.list_command_invocations(
        CommandId=command["CommandId"], Filters=[{"key": "Status", "value": "Terminated"}]
    )["CommandInvocations"]
    assert len(terminated) == 4


def test_errors_within_max_errors_end_incomplete(ssm: Any, make_sim: SimFactory) -> None:
    sim = make_sim()
    ids = sim.add_nodes(4, ec2=False)
    sim.set_outcome(ids[0], "fail")

    command = send(ssm, ids, MaxErrors="1")
    sim.run_until_idle()

    final = command_of(ssm, command["CommandId"])
    assert (final["Status"], final["StatusDetails"]) == ("Failed", "Incomplete")
    assert final["ErrorCount"] == 1
    assert sorted(statuses(ssm, command["CommandId"]).values()).count(("Success", "Success")) == 3


# --- CancelCommand -------------------------------------------------------------------------------------------------


def test_cancel_command_cancels_pending_and_running_invocations(ssm: Any, make_sim: SimFactory) -> None:
    sim = make_sim(cancel_race_rate=0.0, run_seconds=(100, 100))
    ids = sim.add_nodes(6, ec2=False)
    command = send(ssm, ids, MaxConcurrency="2")
    sim.advance(10)
    assert [s for s, _ in statuses(ssm, command["CommandId"]).values()].count("InProgress") == 2

    ssm.cancel_command(CommandId=command["CommandId"])

    found = statuses(ssm, command["CommandId"])
    assert [found[i][0] for i in ids] == ["Cancelling"] * 2 + ["Cancelled"] * 4
    assert command_of(ssm, command["CommandId"])["Status"] == "Cancelling"
    sim.run_until_idle()
    assert set(statuses(ssm, command["CommandId"]).values()) == {("Cancelled", "Cancelled")}
    assert command_of(ssm, command["CommandId"])["Status"] == "Cancelled"

    with pytest.raises(ClientError) as raised:
        ssm.cancel_command(CommandId="00000000-0000-0000-0000-000000000000")
    assert error_code(raised) == "InvalidCommandId"


def test_cancel_does_not_stop_an_invocation_that_races_it(ssm: Any, make_sim: SimFactory) -> None:
    sim = make_sim(cancel_race_rate=1.0, run_seconds=(100, 100))
    ids = sim.add_nodes(4, ec2=False)
    sim.set_outcome(ids[1], "fail")
    command = send(ssm, ids, MaxConcurrency="2", MaxErrors="4")
    sim.advance(10)

    ssm.cancel_command(CommandId=command["CommandId"])
    sim.run_until_idle()

    found = statuses(ssm, command["CommandId"])
    assert found[ids[0]] == ("Success", "Success")
    assert found[ids[1]] == ("Failed", "Failed")
    assert found[ids[2]] == found[ids[3]] == ("Cancelled", "Cancelled")
    history = [t.status for t in sim.invocation(command["CommandId"], ids[0]).history]
    assert history == ["Pending", "InProgress", "Cancelling", "Success"]
    assert command_of(ssm, command["CommandId"])["Status"] == "Cancelled"


def test_cancel_race_rate_is_about_the_configured_fraction(ssm: Any, make_sim: SimFactory) -> None:
    sim = make_sim(run_seconds=(100, 100))  # default cancel_race_rate 0.2
    ids = sim.add_nodes(50, ec2=False)
    command = send(ssm, ids)
    sim.advance(10)
    ssm.cancel_command(CommandId=command["CommandId"])
    sim.run_until_idle()

    finished = [s for s, _ in statuses(ssm, command["CommandId"]).values() if s == "Success"]
    assert 3 <= len(finished) <= 18


# --- ListCommandInvocations / GetCommandInvocation / ListCommands --------------------------------------------------


def test_list_command_invocations_pages_and_rejects_more_than_50(ssm: Any, make_sim: SimFactory) -> None:
    sim = make_sim()
    ids = sim.add_nodes(12, ec2=False)
    command = send(ssm, ids)

    seen: list[str] = []
    sizes: list[int] = []
    kwargs: dict[str, Any] = {"CommandId": command["CommandId"], "MaxResults": 5}
    while True:
        page = ssm.list_command_invocations(**kwargs)
        sizes.append(len(page["CommandInvocations"]))
        seen += [inv["InstanceId"] for inv in page["CommandInvocations"]]
        if "NextToken" not in page:
            break
        kwargs["NextToken"] = page["NextToken"]
    assert sizes == [5, 5, 2]
    assert sorted(seen) == sorted(ids)

    with pytest.raises(ClientError) as raised:
        ssm.list_command_invocations(CommandId=command["CommandId"], MaxResults=51)
    assert error_code(raised) == "ValidationException"
    with pytest.raises(ClientError) as raised:
        ssm.list_command_invocations(CommandId=command["CommandId"], NextToken="garbage")
    assert error_code(raised) == "InvalidNextToken"


def test_invocations_are_not_listed_during_the_visibility_delay(ssm: Any, make_sim: SimFactory) -> None:
    sim = make_sim(visibility_delay=10)
    ids = sim.add_nodes(3, ec2=False)
    command = send(ssm, ids)

    assert ssm.list_command_invocations(CommandId=command["CommandId"])["CommandInvocations"] == []
    with pytest.raises(ClientError) as raised:
        ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=ids[0])
    assert error_code(raised) == "InvocationDoesNotExist"

    sim.advance(10)
    assert len(ssm.list_command_invocations(CommandId=command["CommandId"])["CommandInvocations"]) == 3
    assert ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=ids[0])["Status"] == "InProgress"


def test_get_command_invocation_and_list_commands_report_real_state(ssm: Any, make_sim: SimFactory) -> None:
    sim = make_sim(run_seconds=(60, 60))
    ids = sim.add_nodes(2, ec2=False)
    sim.set_outcome(ids[1], "fail")
    started = sim.clock.now()
    first = send(ssm, ids, OutputS3BucketName="fleet-logs", OutputS3KeyPrefix="runs", MaxErrors="1")
    sim.run_until_idle()
    sim.advance(3600)
    second = send(ssm, ids[:1], Comment="second")

    ok = ssm.get_command_invocation(CommandId=first["CommandId"], InstanceId=ids[0])
    assert (ok["Status"], ok["StatusDetails"], ok["ResponseCode"]) == ("Success", "Success", 0)
    assert ok["ExecutionStartDateTime"] == "2026-01-01T00:00:01.000Z"
    assert ok["ExecutionEndDateTime"] == "2026-01-01T00:01:01.000Z"
    assert ok["StandardOutputUrl"] == (
        f"https://s3.{REGION}.amazonaws.com/fleet-logs/runs/{first['CommandId']}/{ids[0]}"
        "/awsrunShellScript/runShellScript/stdout"
    )
    assert ok["StandardOutputContent"]
    failed = ssm.get_command_invocation(CommandId=first["CommandId"], InstanceId=ids[1])
    assert (failed["Status"], failed["ResponseCode"]) == ("Failed", 1)
    with pytest.raises(ClientError) as raised:
        ssm.get_command_invocation(CommandId=second["CommandId"], InstanceId=ids[1])
    assert error_code(raised) == "InvocationDoesNotExist"

    def listed(**kwargs: Any) -> list[str]:
        return [c["CommandId"] for c in ssm.list_commands(**kwargs)["Commands"]]

    assert listed() == [second["CommandId"], first["CommandId"]]
    assert listed(InstanceId=ids[1]) == [first["CommandId"]]
    assert listed(Filters=[{"key": "Status", "value": "Failed"}]) == [first["CommandId"]]
    assert listed(Filters=[{"key": "Status", "value": "Incomplete"}]) == [first["CommandId"]]
    assert listed(Filters=[{"key": "ExecutionStage", "value": "Executing"}]) == [second["CommandId"]]
    after = (started + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert listed(Filters=[{"key": "InvokedAfter", "value": after}]) == [second["CommandId"]]
    assert len(listed(Filters=[{"key": "DocumentName", "value": DOCUMENT}])) == 2
    first_listed = command_of(ssm, first["CommandId"])
    assert (first_listed["CompletedCount"], first_listed["ErrorCount"], first_listed["TargetCount"]) == (2, 1, 2)
    with pytest.raises(ClientError) as raised:
        ssm.list_commands(Filters=[{"key": "Colour", "value": "x"}])
    assert error_code(raised) == "InvalidFilterKey"
    with pytest.raises(ClientError) as raised:
        ssm.list_commands(CommandId="00000000-0000-0000-0000-000000000000")
    assert error_code(raised) == "InvalidCommandId"


# --- failure modes -------------------------------------------------------------------------------------------------


def test_delivery_timeout_execution_timeout_and_undeliverable_are_told_apart(ssm: Any, make_sim: SimFactory) -> None:
    sim = make_sim()
    offline = sim.add_node("i-0000000000000000a", ping_status="ConnectionLost").instance_id
    refuses = sim.add_node("i-0000000000000000b").instance_id
    hangs = sim.add_node("i-0000000000000000c").instance_id
    gone = sim.add_node("i-0000000000000000d").instance_id
    sim.set_outcome(refuses, "delivery_timeout")
    sim.set_outcome(hangs, "execution_timeout")
    sim.set_outcome(gone, "undeliverable")
    requested = sim.clock.now()

    command = send(
        ssm,
        [offline, refuses, hangs, gone],
        TimeoutSeconds=300,
        Parameters={"commands": ["sleep 9999"], "executionTimeout": ["900"]},
        MaxErrors="3",
    )
    sim.advance(2)
    found = statuses(ssm, command["CommandId"])
    assert found[offline][0] == found[refuses][0] == "Delayed"
    assert found[hangs][0] == "InProgress"
    sim.run_until_idle()

    found = statuses(ssm, command["CommandId"])
    assert found[offline] == found[refuses] == ("TimedOut", "Delivery Timed Out")
    assert found[hangs] == ("TimedOut", "Execution Timed Out")
    assert found[gone] == ("Failed", "Undeliverable")
    assert sim.invocation(command["CommandId"], offline).ended_at == requested + timedelta(seconds=300)
    hung = sim.invocation(command["CommandId"], hangs)
    assert hung.started_at is not None and hung.ended_at == hung.started_at + timedelta(seconds=900)
    final = command_of(ssm, command["CommandId"])
    assert (final["DeliveryTimedOutCount"], final["ErrorCount"], final["CompletedCount"]) == (2, 1, 4)
    assert (final["Status"], final["StatusDetails"]) == ("Failed", "Incomplete")


def test_a_node_back_online_receives_its_delayed_invocation(ssm: Any, make_sim: SimFactory) -> None:
    sim = make_sim()
    node = sim.add_node("i-0000000000000000e", ping_status="ConnectionLost").instance_id
    command = send(ssm, [node])
    sim.advance(60)
    assert statuses(ssm, command["CommandId"])[node][0] == "Delayed"

    sim.set_ping_status(node, "Online")
    assert statuses(ssm, command["CommandId"])[node][0] == "InProgress"
    sim.run_until_idle()
    assert command_of(ssm, command["CommandId"])["Status"] == "Success"


def test_same_seed_gives_the_same_outcomes_in_any_order(aws: Clients, ssm: Any) -> None:
    ids = [f"i-{n:017x}" for n in range(1, 31)]

    def outcomes(seed: int, order: list[str]) -> dict[str, tuple[str, str]]:
        with FleetSimulator(
            VirtualClock(), seed=seed, fail_rate=0.3, execution_timeout_rate=0.1, undeliverable_rate=0.1
        ) as sim:
            for instance_id in order:
                sim.add_node(instance_id)
            command = send(ssm, order, MaxErrors="100%", MaxConcurrency="7")
            sim.run_until_idle()
            return statuses(ssm, command["CommandId"])

    first = outcomes(42, ids)
    assert outcomes(42, list(reversed(ids))) == first
    assert outcomes(43, ids) != first
    assert {details for _, details in first.values()} >= {"Success", "Failed"}


# --- status events -------------------------------------------------------------------------------------------------


def test_eventbridge_status_events_reach_a_queue_through_a_rule(aws: Clients, ssm: Any, make_sim: SimFactory) -> None:
    queue_url = ssm_rule_to_queue(aws, "ssm-status")
    sim = make_sim()
    ids = sim.add_nodes(2, ec2=False)
    command = send(ssm, ids)
    sim.run_until_idle()

    events = drain(aws("sqs"), queue_url)
    assert len(events) == 2 * 3 + 3
    for event in events:
        assert event["source"] == "aws.ssm"
        # moto's EventBridge-to-SQS delivery leaves out `account`; AWS sends it
        assert event.get("account", ACCOUNT) == ACCOUNT and event["region"] == REGION
        assert ISO_SECONDS.match(event["time"]) and event["time"].startswith("2026-01-01T00:"), event["time"]
        assert event["detail"]["command-id"] == command["CommandId"]
        assert event["detail"]["document-name"] == DOCUMENT
        assert ISO_MILLIS.match(event["detail"]["requested-date-time"])
    invocation_events = [e for e in events if e["detail-type"] == INVOCATION_DETAIL_TYPE]
    command_events = [e for e in events if e["detail-type"] == COMMAND_DETAIL_TYPE]
    for instance_id in ids:
        mine = sorted(
            (e for e in invocation_events if e["detail"]["instance-id"] == instance_id), key=lambda e: e["time"]
        )
        assert [e["detail"]["status"] for e in mine] == ["Pending", "InProgress", "Success"]
        assert set(mine[0]["detail"]) == {"command-id", "document-name", "instance-id", "requested-date-time", "status"}
        assert mine[0]["resources"] == [f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{instance_id}"]
    command_events.sort(key=lambda e: e["time"])
    assert [e["detail"]["status"] for e in command_events] == ["Pending", "InProgress", "Success"]
    detail = command_events[-1]["detail"]
    assert set(detail) == {"command-id", "document-name", "expire-after", "parameters", "requested-date-time", "status"}
    assert detail["parameters"] == {"commands": ["echo hello"]}
    assert ISO_MILLIS.match(detail["expire-after"])
    assert sorted(command_events[-1]["resources"]) == sorted(
        f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{i}" for i in ids
    )
    assert sim.stats.events_emitted["eventbridge"] == 9


def test_sns_notifications_reach_a_subscribed_queue(aws: Clients, ssm: Any, make_sim: SimFactory) -> None:
    sqs, sns = aws("sqs"), aws("sns")
    topic_arn = sns.create_topic(Name="run-command-status")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="sns-status")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    role = f"arn:aws:iam::{ACCOUNT}:role/ssm-notifications"
    sim = make_sim()
    ids = sim.add_nodes(2, ec2=False)
    sim.set_outcome(ids[1], "fail")

    per_invocation = send(
        ssm,
        ids,
        MaxErrors="1",
        ServiceRoleArn=role,
        NotificationConfig={
            "NotificationArn": topic_arn,
            "NotificationEvents": ["All"],
            "NotificationType": "Invocation",
        },
    )
    sim.run_until_idle()
    messages = [json.loads(m["Message"]) for m in drain(sqs, queue_url)]
    assert {m["status"] for m in messages} == {"InProgress", "Success", "Failed"}  # never Pending
    assert len(messages) == 4
    for message in messages:
        assert set(message) == {"commandId", "documentName", "instanceId", "requestedDateTime", "status", "eventTime"}
        assert message["commandId"] == per_invocation["CommandId"]
        assert ISO_MILLIS.match(message["eventTime"]) and ISO_MILLIS.match(message["requestedDateTime"])
    assert {(m["instanceId"], m["status"]) for m in messages if m["status"] != "InProgress"} == {
        (ids[0], "Success"),
        (ids[1], "Failed"),
    }

    per_command = send(
        ssm,
        ids[:1],
        ServiceRoleArn=role,
        OutputS3BucketName="fleet-logs",
        OutputS3KeyPrefix="runs",
        NotificationConfig={
            "NotificationArn": topic_arn,
            "NotificationEvents": ["Success", "Failed"],
            "NotificationType": "Command",
        },
    )
    sim.run_until_idle()
    messages = [json.loads(m["Message"]) for m in drain(sqs, queue_url)]
    assert messages == [
        {
            "commandId": per_command["CommandId"],
            "documentName": DOCUMENT,
            "instanceIds": ids[:1],
            "requestedDateTime": messages[0]["requestedDateTime"],
            "expiresAfter": messages[0]["expiresAfter"],
            "outputS3BucketName": "fleet-logs",
            "outputS3KeyPrefix": "runs",
            "status": "Success",
            "eventTime": messages[0]["eventTime"],
        }
    ]
    requested = datetime.strptime(messages[0]["requestedDateTime"], "%Y-%m-%dT%H:%M:%S.%fZ")
    expires = datetime.strptime(messages[0]["expiresAfter"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert expires - requested == timedelta(hours=1)


def test_drop_rate_drops_about_that_fraction_and_dropped_events_never_arrive(
    aws: Clients, ssm: Any, make_sim: SimFactory
) -> None:
    queue_url = ssm_rule_to_queue(aws, "lossy")
    sim = make_sim(drop_rate=0.25)
    ids = sim.add_nodes(20, ec2=False)
    send(ssm, ids)
    sim.run_until_idle()

    emitted, dropped = sim.stats.events_emitted["eventbridge"], sim.stats.events_dropped["eventbridge"]
    assert emitted + dropped == 20 * 3 + 3
    assert 0.15 <= dropped / (emitted + dropped) <= 0.35
    assert len(drain(aws("sqs"), queue_url)) == emitted
    assert sum(1 for e in sim.events if e.dropped) == dropped


def test_duplicate_rate_sends_events_twice(aws: Clients, ssm: Any, make_sim: SimFactory) -> None:
    queue_url = ssm_rule_to_queue(aws, "noisy")
    sim = make_sim(duplicate_rate=1.0)
    ids = sim.add_nodes(2, ec2=False)
    send(ssm, ids)
    sim.run_until_idle()

    assert sim.stats.events_duplicated["eventbridge"] == 9
    assert len(drain(aws("sqs"), queue_url)) == 18


# --- nodes and sessions --------------------------------------------------------------------------------------------


def test_describe_instance_information_reports_ping_status(aws: Clients, ssm: Any, make_sim: SimFactory) -> None:
    sim = make_sim(offline_rate=0.3, seed=5)
    prod = sim.add_nodes(10, tags={"env": "prod"})
    dev = sim.add_nodes(3, tags={"env": "dev"}, platform="Windows")
    offline = {n.instance_id for n in sim.nodes() if n.ping_status == "ConnectionLost"}
    assert 0 < len(offline) < 13

    def described(**kwargs: Any) -> list[dict[str, Any]]:
        pages = ssm.get_paginator("describe_instance_information").paginate(**kwargs)
        return [info for page in pages for info in page["InstanceInformationList"]]

    everything = described(PaginationConfig={"PageSize": 5})
    assert [i["InstanceId"] for i in everything] == prod + dev
    assert {i["ResourceType"] for i in everything} == {"EC2Instance"}
    lost = described(Filters=[{"Key": "PingStatus", "Values": ["ConnectionLost"]}])
    assert {i["InstanceId"] for i in lost} == offline
    assert [i["InstanceId"] for i in described(Filters=[{"Key": "tag:env", "Values": ["dev"]}])] == dev
    windows = described(InstanceInformationFilterList=[{"key": "PlatformTypes", "valueSet": ["Windows"]}])
    assert [i["InstanceId"] for i in windows] == dev
    one = described(Filters=[{"Key": "InstanceIds", "Values": [prod[0]]}])
    assert [(i["InstanceId"], i["PlatformType"]) for i in one] == [(prod[0], "Linux")]

    sim.set_ping_status(prod[0], "Inactive")
    assert described(Filters=[{"Key": "InstanceIds", "Values": [prod[0]]}])[0]["PingStatus"] == "Inactive"
    with pytest.raises(ClientError) as raised:
        ssm.describe_instance_information(MaxResults=51)
    assert error_code(raised) == "ValidationException"
    # the nodes are real EC2 instances, found by tag
    reservations = aws("ec2").describe_instances(Filters=[{"Name": "tag:env", "Values": ["prod"]}])
    assert sorted(i["InstanceId"] for r in reservations["Reservations"] for i in r["Instances"]) == sorted(prod)


def test_sessions_and_connection_status(ssm: Any, make_sim: SimFactory) -> None:
    sim = make_sim()
    up, down = sim.add_nodes(2, ec2=False)
    sim.set_ping_status(down, "ConnectionLost")
    assert ssm.get_connection_status(Target=up)["Status"] == "connected"
    assert ssm.get_connection_status(Target=down)["Status"] == "notconnected"
    assert ssm.get_connection_status(Target="i-0123456789abcdef0")["Status"] == "notconnected"

    alice = f"arn:aws:iam::{ACCOUNT}:user/alice"
    first = sim.open_session(up, alice, datetime(2025, 12, 31, 23, 0, tzinfo=UTC))
    sim.open_session(up, f"arn:aws:iam::{ACCOUNT}:user/bob")
    active = ssm.describe_sessions(State="Active")["Sessions"]
    assert len(active) == 2 and {s["Target"] for s in active} == {up}
    mine = ssm.describe_sessions(State="Active", Filters=[{"key": "Owner", "value": alice}])["Sessions"]
    assert [s["SessionId"] for s in mine] == [first] and first.startswith("alice-")

    assert ssm.terminate_session(SessionId=first)["SessionId"] == first
    assert len(ssm.describe_sessions(State="Active")["Sessions"]) == 1
    history = ssm.describe_sessions(State="History", Filters=[{"key": "Target", "value": up}])["Sessions"]
    assert [(s["SessionId"], s["Status"]) for s in history] == [(first, "Terminated")]
    assert "EndDate" in history[0]
    with pytest.raises(ClientError) as raised:
        ssm.terminate_session(SessionId="nobody-00000000000000000")
    assert error_code(raised) == "DoesNotExistException"

    assert sim.stats.api_calls["DescribeSessions"] == 4


def test_an_uninstalled_simulator_leaves_ssm_to_moto(ssm: Any, make_sim: SimFactory) -> None:
    sim = make_sim()
    ids = sim.add_nodes(1, ec2=False)
    assert ssm.describe_instance_information()["InstanceInformationList"][0]["InstanceId"] == ids[0]

    sim.uninstall()

    assert not sim.installed
    with pytest.raises(NotImplementedError):  # moto has no DescribeInstanceInformation
        ssm.describe_instance_information()
    assert ssm.send_command(InstanceIds=ids, DocumentName=DOCUMENT)["Command"]["Status"] == "Success"  # moto's
    assert sim.commands() == []
