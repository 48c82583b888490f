"""Operator commands against moto: the ledger table the twin created, and the real handlers invoked in process.

moto cannot run Lambda code without Docker, so ``start`` and ``cancel`` get an invoker that runs the real handler
with the twin's adapters (``TwinInvoker``); everything the commands read comes from moto's DynamoDB through the
command's own boto3 clients.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from cli_support import SHELL, TwinInvoker, deployed_name, flags, no_traceback, total, write_spec
from fleetwave.constants import OUTPUT_CANCEL_FUNCTION, OUTPUT_START_FUNCTION, OUTPUT_TABLE_NAME, TABLE_NAME
from fleetwave.errors import NotFoundError
from fleetwave_local.cli.operator import (
    Aws,
    AwsOptions,
    AwsUnavailableError,
    FunctionFailedError,
    LambdaInvoker,
    resolve_resources,
)
from fleetwave_local.twin import Twin, TwinOptions

START = deployed_name("start_rollout")
CANCEL = deployed_name("cancel_rollout")
TABLE = flags(table=TABLE_NAME)
FLEET = 12


@pytest.fixture(scope="module")
def twin() -> Iterator[Twin]:
    with Twin(TwinOptions(seed=5)) as twin:
        twin.add_nodes(FLEET, tags={"Role": "web"})
        yield twin


@pytest.fixture(scope="module")
def finished(twin: Twin) -> dict[str, Any]:
    """A rollout started with ``start --watch``, run to its end; its JSON document."""
    from fleetwave_local.cli import run

    invoker = TwinInvoker(twin)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        # Instead of waiting in real time, let the twin run the rollout (virtual time) to its end.
        sleeps.append(seconds)
        twin.run(invoker.results[0]["rollout_id"])

    argv = ["start", str(SHELL), "--watch", "--json", "--interval", "30", *TABLE, *flags(start_function=START)]
    buffer = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdout", buffer)
        code = run(argv, invoker=invoker, sleep=sleep)
    document: dict[str, Any] = json.loads(buffer.getvalue())
    document["_code"] = code
    document["_sleeps"] = sleeps
    document["_calls"] = invoker.calls
    return document


def test_start_watch_invokes_start_rollout_and_exits_with_the_final_state(finished: dict[str, Any]) -> None:
    assert finished["_calls"][0][0] == START
    payload = finished["_calls"][0][1]
    assert payload["trigger"] == "cli" and payload["spec"]["name"] == "web-log-rotate"
    assert finished["_sleeps"] == [30]  # polled once while RUNNING, then saw the end
    assert finished["state"] == "SUCCEEDED" and finished["_code"] == 0 == finished["exit_code"]
    assert finished["trigger"] == "cli"
    assert finished["counts"]["Success"] == finished["target_count"] == FLEET


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


def test_cancel_stops_a_running_rollout(cli: Any, twin: Twin, tmp_path: Path, finished: dict[str, Any]) -> None:
    spec = write_spec(tmp_path, SHELL.read_text().replace("name: web-log-rotate", "name: web-log-rotate-2"))
    invoker = TwinInvoker(twin)
    started = cli("start", spec, "--json", *TABLE, *flags(start_function=START), invoker=invoker)
    assert started.code == 0, started.err
    rollout_id = started.json()["rollout_id"]
    assert started.json()["state"] == "RUNNING"

    cancelled = cli("cancel", rollout_id, *TABLE, *flags(cancel_function=CANCEL), invoker=invoker)

    assert cancelled.code == 0, cancelled.err
    assert "CANCELLED" in cancelled.out
    assert invoker.calls[-1] == (CANCEL, {"rollout_id": rollout_id, "reason": "cancelled by operator"})
    twin.run(rollout_id)  # in-flight invocations settle; the ledger records what really happened
    watched = cli("watch", rollout_id, "--json", *TABLE)
    assert watched.code == 2 and watched.json()["state"] == "CANCELLED"
    again = cli("cancel", rollout_id, *TABLE, *flags(cancel_function=CANCEL), invoker=invoker)
    assert again.code == 0 and "already ended" in again.err


def test_watch_gives_up_after_its_timeout(cli: Any, twin: Twin, tmp_path: Path, finished: dict[str, Any]) -> None:
    spec = write_spec(tmp_path, SHELL.read_text().replace("name: web-log-rotate", "name: web-log-rotate-3"))
    started = cli("start", spec, "--json", *TABLE, *flags(start_function=START), invoker=TwinInvoker(twin))
    rollout_id = started.json()["rollout_id"]
    again = cli("start", spec, *TABLE, *flags(start_function=START), invoker=TwinInvoker(twin))
    assert again.code == 75 and "web-log-rotate-3 not started" in again.err  # one rollout per spec at a time

    # Nothing moves the twin's virtual clock: the rollout stays RUNNING while watch polls in real time.
    result = cli("watch", rollout_id, "--timeout", "1", "--interval", "0.3", *TABLE)

    no_traceback(result)
    assert result.code == 75
    assert result.err_lines[-1] == f"fleetwave: rollout {rollout_id} still RUNNING after 1s (--timeout)"
    twin.cancel(rollout_id)
    twin.run(rollout_id)


def test_start_shows_the_rejection_problems(cli: Any, twin: Twin, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, SHELL.read_text().replace("Role: [web]", "Role: [nobody]"))

    result = cli("start", spec, *TABLE, *flags(start_function=START), invoker=TwinInvoker(twin))

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


def test_unknown_rollouts_exit_66(cli: Any, twin: Twin) -> None:
    for args in (
        ("status", "20990101T000000-000000", *TABLE),
        ("watch", "20990101T000000-000000", *TABLE),
        ("cancel", "20990101T000000-000000", *TABLE, *flags(cancel_function=CANCEL)),
    ):
        result = cli(*args, invoker=TwinInvoker(twin))
        no_traceback(result)
        assert result.code == 66, (args, result.err)
        assert "no rollout '20990101T000000-000000'" in result.err


def test_a_missing_table_exits_69(cli: Any, twin: Twin) -> None:
    result = cli("status", "x", "--table", "no-such-table")
    no_traceback(result)
    assert result.code == 69 and "table no-such-table" in result.err


def test_a_missing_function_exits_69_with_the_default_invoker(cli: Any, twin: Twin) -> None:
    result = cli("start", SHELL, *flags(start_function="fleetwave-no-such-function"))
    no_traceback(result)
    assert result.code == 69 and "fleetwave-no-such-function" in result.err


# ----------------------------------------------------------------------------- stack outputs, Lambda responses
def test_resources_come_from_the_stack_outputs_unless_a_flag_names_them(twin: Twin) -> None:
    aws = Aws(AwsOptions(region="us-east-1"))
    cloudformation = aws.client("cloudformation")
    outputs = [
        {"OutputKey": OUTPUT_TABLE_NAME, "OutputValue": "ledger-from-stack"},
        {"OutputKey": OUTPUT_START_FUNCTION, "OutputValue": "start-from-stack"},
        {"OutputKey": OUTPUT_CANCEL_FUNCTION, "OutputValue": "cancel-from-stack"},
    ]
    stack = {"StackName": "fleetwave", "CreationTime": "2026-01-01T00:00:00Z", "StackStatus": "CREATE_COMPLETE"}
    with Stubber(cloudformation) as stub:
        stub.add_response("describe_stacks", {"Stacks": [{**stack, "Outputs": outputs}]}, {"StackName": "fleetwave"})
        found = resolve_resources(aws, needs=("table", "start_function"), optional=("cancel_function",))
        stub.add_response("describe_stacks", {"Stacks": [{**stack, "Outputs": outputs[:1]}]}, {"StackName": "mine"})
        with pytest.raises(AwsUnavailableError, match=f"no output {OUTPUT_START_FUNCTION}: pass --start-function"):
            resolve_resources(aws, needs=("start_function",), stack_name="mine")
        stub.add_client_error(
            "describe_stacks", "ValidationError", "Stack with id gone does not exist", http_status_code=400
        )
        with pytest.raises(AwsUnavailableError, match="stack gone: ValidationError"):
            resolve_resources(aws, needs=("table",), stack_name="gone")
        stub.assert_no_pending_responses()

    assert (found.table, found.start_function, found.cancel_function) == (
        "ledger-from-stack",
        "start-from-stack",
        "cancel-from-stack",
    )
    flagged = resolve_resources(aws, needs=("table",), table="mine")  # no CloudFormation call at all
    assert flagged.table == "mine" and flagged.source == "flags"


def test_the_cli_reads_the_stack_outputs_from_cloudformation(cli: Any, finished: dict[str, Any]) -> None:
    pytest.importorskip("openapi_spec_validator", reason="moto's CloudFormation needs openapi-spec-validator")
    import boto3

    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {OUTPUT_TABLE_NAME: {"Value": TABLE_NAME}, OUTPUT_CANCEL_FUNCTION: {"Value": CANCEL}},
    }
    boto3.client("cloudformation").create_stack(StackName="fleetwave-test", TemplateBody=json.dumps(template))

    result = cli("status", finished["rollout_id"], "--json", "--stack-name", "fleetwave-test")

    assert result.code == 0, result.err
    assert result.json()["rollout_id"] == finished["rollout_id"]


def _lambda_response(stub: Stubber, payload: Any, function_error: str | None = None) -> None:
    body = json.dumps(payload).encode()
    response: dict[str, Any] = {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body))}
    if function_error:
        response["FunctionError"] = function_error
    stub.add_response("invoke", response)


def test_the_lambda_invoker_reads_results_and_function_errors() -> None:
    aws = Aws(AwsOptions(region="us-east-1"))
    invoker = LambdaInvoker(aws)
    with Stubber(aws.client("lambda")) as stub:
        _lambda_response(stub, {"rollout_id": "r", "state": "RUNNING"})
        assert invoker("fn", {"rollout_id": "r"}) == {"rollout_id": "r", "state": "RUNNING"}
        _lambda_response(stub, {"errorType": "NotFoundError", "errorMessage": "no rollout 'r'"}, "Unhandled")
        with pytest.raises(NotFoundError, match="no rollout 'r'"):
            invoker("fn", {"rollout_id": "r"})
        _lambda_response(stub, {"errorType": "KeyError", "errorMessage": "'spec'"}, "Unhandled")
        with pytest.raises(FunctionFailedError, match="function fn failed: KeyError"):
            invoker("fn", {})
