"""Operator commands against moto: the ledger table the twin created, and the real operator handler behind a
loopback "function URL".

``start`` and ``cancel`` send HTTPS-style requests signed with SigV4 by the command's own credentials; the loopback
server (``OperatorServer``) recomputes each signature with botocore as AWS_IAM auth does, then runs the real
operator handler with the twin's adapters and the caller's ARN in the request context. Everything the commands read
comes from moto's DynamoDB through the command's own boto3 clients.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from cli_support import SHELL, OperatorServer, SignatureError, flags, no_traceback, total, verify_sigv4, write_spec
from fleetwave.constants import OUTPUT_OPERATOR_URL, OUTPUT_TABLE_NAME, TABLE_NAME
from fleetwave_local.cli.operator import (
    Aws,
    AwsConfigError,
    AwsOptions,
    AwsUnavailableError,
    SignedOperatorClient,
    resolve_resources,
)
from fleetwave_local.twin import ACCOUNT, Twin, TwinOptions

TABLE = flags(table=TABLE_NAME)
FLEET = 12
# The twin's credentials (AWS_ACCESS_KEY_ID=testing) belong, for the loopback function URL, to this principal.
OPERATOR = f"arn:aws:sts::{ACCOUNT}:assumed-role/platform-oncall/jane"


@pytest.fixture(scope="module")
def twin() -> Iterator[Twin]:
    with Twin(TwinOptions(seed=5)) as twin:
        twin.add_nodes(FLEET, tags={"Role": "web"})
        yield twin


# The operator's credentials (what IAM knows of them: the loopback URL checks signatures with this secret).
KEY, SECRET, TOKEN = "ASIAOPERATOREXAMPLE", "operator-secret-key", "operator-session-token"


def session_credentials() -> tuple[str, str]:
    return KEY, SECRET


def as_operator(patch: pytest.MonkeyPatch) -> None:
    """The CLI signs with the operator's credentials (set per test: other modules' twins reset the environment)."""
    patch.setenv("AWS_ACCESS_KEY_ID", KEY)
    patch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    patch.setenv("AWS_SESSION_TOKEN", TOKEN)
    patch.setenv("AWS_SECURITY_TOKEN", TOKEN)


@pytest.fixture(autouse=True)
def operator_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    as_operator(monkeypatch)


@pytest.fixture(scope="module")
def server(twin: Twin) -> Iterator[OperatorServer]:
    with OperatorServer(twin, {KEY: (SECRET, OPERATOR)}) as server:
        yield server


@pytest.fixture(scope="module")
def url(server: OperatorServer) -> list[str]:
    return flags(operator_url=server.url)


@pytest.fixture(scope="module")
def finished(twin: Twin, server: OperatorServer, url: list[str]) -> dict[str, Any]:
    """A rollout started with ``start --watch``, run to its end; its JSON document."""
    from fleetwave_local.cli import run

    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        # Instead of waiting in real time, let the twin run the rollout (virtual time) to its end.
        sleeps.append(seconds)
        twin.run(server.answers[0][1]["rollout_id"])

    argv = ["start", str(SHELL), "--watch", "--json", "--interval", "30", *TABLE, *url]
    buffer = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        as_operator(patch)
        patch.setattr("sys.stdout", buffer)
        code = run(argv, sleep=sleep)
    document: dict[str, Any] = json.loads(buffer.getvalue())
    document["_code"] = code
    document["_sleeps"] = sleeps
    document["_requests"] = list(server.requests)
    return document


def test_start_watch_sends_a_signed_start_and_exits_with_the_final_state(finished: dict[str, Any]) -> None:
    [(method, path, body)] = finished["_requests"][:1]
    # Only the spec travels: who starts is what AWS authenticated, the trigger is the path's
    assert (method, path, set(body)) == ("POST", "/rollouts", {"spec"}) and body["spec"]["name"] == "web-log-rotate"
    assert finished["_sleeps"] == [30]  # polled once while RUNNING, then saw the end
    assert finished["state"] == "SUCCEEDED" and finished["_code"] == 0 == finished["exit_code"]
    assert finished["trigger"] == "operator" and finished["started_by"] == OPERATOR
    assert finished["counts"]["Success"] == finished["target_count"] == FLEET


def test_the_cli_signs_with_sigv4_for_lambda_and_a_changed_request_no_longer_verifies(twin: Twin) -> None:
    client = SignedOperatorClient(Aws(AwsOptions(region="us-east-1")), "https://abc.lambda-url.eu-west-1.on.aws/")
    request = client.signed("POST", "/rollouts", {"spec": {"name": "x"}})
    headers = dict(request.headers.items())
    # Signed for the URL's region and the lambda service, with the session token
    assert "/eu-west-1/lambda/aws4_request" in headers["Authorization"]
    assert headers["X-Amz-Security-Token"] == os.environ["AWS_SESSION_TOKEN"] == TOKEN
    url, body = request.url, request.body
    key, secret = session_credentials()
    assert verify_sigv4("POST", url, headers, body, {key: secret}, service="lambda") == key
    for changed in (
        ("POST", url, headers, body.replace(b'"x"', b'"y"'), {key: secret}),
        ("POST", url.replace("/rollouts", "/rollouts/r/cancel"), headers, body, {key: secret}),
        ("POST", url, headers, body, {key: "another secret"}),
    ):
        with pytest.raises(SignatureError):
            verify_sigv4(*changed, service="lambda")
    # Plain http is for loopback only
    with pytest.raises(AwsConfigError, match="not an https URL"):
        SignedOperatorClient(Aws(AwsOptions(region="us-east-1")), "http://abc.lambda-url.eu-west-1.on.aws/")


def test_status_reads_the_ledger(cli: Any, finished: dict[str, Any]) -> None:
    result = cli("status", finished["rollout_id"], "--json", *TABLE)

    no_traceback(result)
    assert result.code == 0
    doc = result.json()
    assert doc["rollout_id"] == finished["rollout_id"] and doc["state"] == "SUCCEEDED"
    assert [w["size"] for w in doc["waves"]] == [2, 4, 6]
    assert total(doc["counts"]) == FLEET and doc["budget"] == {**doc["budget"], "allowed": 1, "used": 0}

    text = cli("status", finished["rollout_id"], *TABLE)
    assert text.code == 0 and "SUCCEEDED" in text.out and "web-log-rotate" in text.out
    # Who started it, as AWS authenticated them
    assert doc["started_by"] == OPERATOR and f"started by {OPERATOR} (operator)" in " ".join(text.out.split())


def test_watch_of_an_ended_rollout_returns_its_exit_code_at_once(cli: Any, finished: dict[str, Any]) -> None:
    def no_sleep(seconds: float) -> None:
        raise AssertionError("an ended rollout needs no poll")

    result = cli("watch", finished["rollout_id"], *TABLE, sleep=no_sleep)
    assert result.code == 0 and "SUCCEEDED" in result.out


def test_list_filters_by_state_and_spec(cli: Any, finished: dict[str, Any]) -> None:
    def ids(*args: str) -> list[str]:
        result = cli("list", "--json", *TABLE, *args)
        assert result.code == 0, result.err
        return [row["rollout_id"] for row in result.json()]

    rollout_id = finished["rollout_id"]
    assert rollout_id in ids()
    assert rollout_id in ids("--state", "succeeded")
    assert rollout_id not in ids("--state", "HALTED")
    assert rollout_id in ids("--spec", "web-log-rotate")
    assert ids("--spec", "no-such-spec") == []
    assert rollout_id in cli("list", *TABLE).out


def test_history_lists_every_rollout_that_touched_a_node(cli: Any, twin: Twin, finished: dict[str, Any]) -> None:
    node = next(iter(twin.reader.invocations.of_rollout(finished["rollout_id"])))["instance_id"]

    result = cli("history", node, "--json", *TABLE)

    assert result.code == 0, result.err
    rows = result.json()["invocations"]
    mine = [row for row in rows if row["rollout_id"] == finished["rollout_id"]]
    assert len(mine) == 1 and mine[0]["status"] == "Success" and mine[0]["spec"] == "web-log-rotate"
    assert cli("history", "i-0000000000000000a", "--json", *TABLE).json()["invocations"] == []


def test_cancel_stops_a_running_rollout_and_records_who_did(
    cli: Any, twin: Twin, tmp_path: Path, server: OperatorServer, url: list[str], finished: dict[str, Any]
) -> None:
    spec = write_spec(tmp_path, SHELL.read_text().replace("name: web-log-rotate", "name: web-log-rotate-2"))
    started = cli("start", spec, "--json", *TABLE, *url)
    assert started.code == 0, started.err
    rollout_id = started.json()["rollout_id"]
    assert started.json()["state"] == "RUNNING"

    cancelled = cli("cancel", rollout_id, *TABLE, *url)

    assert cancelled.code == 0, cancelled.err
    assert "CANCELLED" in cancelled.out
    assert server.requests[-1] == ("POST", f"/rollouts/{rollout_id}/cancel", {"reason": "cancelled by operator"})
    twin.run(rollout_id)  # in-flight invocations settle; the ledger records what really happened
    watched = cli("watch", rollout_id, "--json", *TABLE)
    assert watched.code == 2 and watched.json()["state"] == "CANCELLED"
    assert watched.json()["cancelled_by"] == OPERATOR
    status = cli("status", rollout_id, *TABLE)
    assert f"cancelled by {OPERATOR}" in " ".join(status.out.split()), status.out
    again = cli("cancel", rollout_id, *TABLE, *url)
    assert again.code == 0 and "already ended" in again.err


def test_a_request_signed_with_the_wrong_secret_is_refused_exit_77(
    cli: Any, monkeypatch: pytest.MonkeyPatch, url: list[str]
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    result = cli("start", SHELL, *url)
    no_traceback(result)
    assert result.code == 77 and "AWS denied the call (403" in result.err


def test_watch_gives_up_after_its_timeout(
    cli: Any, twin: Twin, tmp_path: Path, url: list[str], finished: dict[str, Any]
) -> None:
    spec = write_spec(tmp_path, SHELL.read_text().replace("name: web-log-rotate", "name: web-log-rotate-3"))
    started = cli("start", spec, "--json", *TABLE, *url)
    rollout_id = started.json()["rollout_id"]
    again = cli("start", spec, *TABLE, *url)
    assert again.code == 75 and "web-log-rotate-3 not started" in again.err  # one rollout per spec at a time

    # Nothing moves the twin's virtual clock: the rollout stays RUNNING while watch polls in real time.
    result = cli("watch", rollout_id, "--timeout", "1", "--interval", "0.3", *TABLE)

    no_traceback(result)
    assert result.code == 75
    assert result.err_lines[-1] == f"fleetwave: rollout {rollout_id} still RUNNING after 1s (--timeout)"
    twin.cancel(rollout_id)
    twin.run(rollout_id)


def test_start_shows_the_rejection_problems(cli: Any, twin: Twin, tmp_path: Path, url: list[str]) -> None:
    spec = write_spec(tmp_path, SHELL.read_text().replace("Role: [web]", "Role: [nobody]"))

    result = cli("start", spec, *TABLE, *url)

    no_traceback(result)
    assert result.code == 65
    # start_rollout's answer, placed at the field it is about in the spec file.
    line = SHELL.read_text().splitlines().index("targets:") + 1
    assert f"fleetwave: {spec}:{line}:1: targets: empty target set (no node matches the targets)" in result.err_lines


def test_plan_resolves_the_targets_with_boto3_and_dispatches_nothing(cli: Any, twin: Twin) -> None:
    before = len(twin.sim.commands())

    result = cli("plan", SHELL, "--json")

    assert result.code == 0, result.err
    plan = result.json()
    assert plan["target_count"] == FLEET and [w["size"] for w in plan["waves"]] == [2, 4, 6]
    assert plan["document"]["name"] == "AWS-RunShellScript" and plan["skipped"] == []
    assert len(twin.sim.commands()) == before
    text = cli("plan", SHELL)
    assert text.code == 0 and "12 targets in 3 waves" in text.out


def test_unknown_rollouts_exit_66(cli: Any, twin: Twin, url: list[str]) -> None:
    for args in (
        ("status", "20990101T000000-000000", *TABLE),
        ("watch", "20990101T000000-000000", *TABLE),
        ("cancel", "20990101T000000-000000", *TABLE, *url),
        # Without the table, the operator function answers 404
        ("cancel", "20990101T000000-000000", *url),
    ):
        result = cli(*args)
        no_traceback(result)
        assert result.code == 66, (args, result.err)
        assert "no rollout '20990101T000000-000000'" in result.err


def test_a_missing_table_exits_69(cli: Any, twin: Twin) -> None:
    result = cli("status", "x", "--table", "no-such-table")
    no_traceback(result)
    assert result.code == 69 and "table no-such-table" in result.err


def test_an_unreachable_operator_url_exits_69(cli: Any, twin: Twin) -> None:
    result = cli("start", SHELL, *flags(operator_url="http://127.0.0.1:9/"))
    no_traceback(result)
    assert result.code == 69 and "operator URL http://127.0.0.1:9: AWS unreachable" in result.err


# ----------------------------------------------------------------------------- stack outputs, Lambda responses
def test_resources_come_from_the_stack_outputs_unless_a_flag_names_them(twin: Twin) -> None:
    aws = Aws(AwsOptions(region="us-east-1"))
    cloudformation = aws.client("cloudformation")
    outputs = [
        {"OutputKey": OUTPUT_TABLE_NAME, "OutputValue": "ledger-from-stack"},
        {"OutputKey": OUTPUT_OPERATOR_URL, "OutputValue": "https://abc.lambda-url.us-east-1.on.aws/"},
    ]
    stack = {"StackName": "fleetwave", "CreationTime": "2026-01-01T00:00:00Z", "StackStatus": "CREATE_COMPLETE"}
    with Stubber(cloudformation) as stub:
        stub.add_response("describe_stacks", {"Stacks": [{**stack, "Outputs": outputs}]}, {"StackName": "fleetwave"})
        found = resolve_resources(aws, needs=("operator_url",), optional=("table",))
        stub.add_response("describe_stacks", {"Stacks": [{**stack, "Outputs": outputs[:1]}]}, {"StackName": "mine"})
        with pytest.raises(AwsUnavailableError, match=f"no output {OUTPUT_OPERATOR_URL}: pass --operator-url"):
            resolve_resources(aws, needs=("operator_url",), stack_name="mine")
        stub.add_client_error(
            "describe_stacks", "ValidationError", "Stack with id gone does not exist", http_status_code=400
        )
        with pytest.raises(AwsUnavailableError, match="stack gone: ValidationError"):
            resolve_resources(aws, needs=("table",), stack_name="gone")
        stub.assert_no_pending_responses()

    assert (found.table, found.operator_url) == ("ledger-from-stack", "https://abc.lambda-url.us-east-1.on.aws/")
    flagged = resolve_resources(aws, needs=("table",), table="mine")  # no CloudFormation call at all
    assert flagged.table == "mine" and flagged.source == "flags"


def test_the_cli_reads_the_stack_outputs_from_cloudformation(cli: Any, finished: dict[str, Any]) -> None:
    pytest.importorskip("openapi_spec_validator", reason="moto's CloudFormation needs openapi-spec-validator")
    import boto3

    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {OUTPUT_TABLE_NAME: {"Value": TABLE_NAME}, OUTPUT_OPERATOR_URL: {"Value": "https://x"}},
    }
    boto3.client("cloudformation").create_stack(StackName="fleetwave-test", TemplateBody=json.dumps(template))

    result = cli("status", finished["rollout_id"], "--json", "--stack-name", "fleetwave-test")

    assert result.code == 0, result.err
    assert result.json()["rollout_id"] == finished["rollout_id"]
