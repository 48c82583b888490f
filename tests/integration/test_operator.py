"""The operators' entry point: the real operator handler, driven with function-URL events (payload 2.0) as Lambda
passes them on after AWS_IAM auth, on the twin. Who asks comes from the request context, never from the body."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fleetwave_local.twin import ACCOUNT, Twin, TwinOptions, function_url_event

from .rollouts import shell_spec, summaries_for

ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:sts::{ACCOUNT}:assumed-role/ops/bob"


def call(twin: Twin, method: str, path: str, body: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    response = twin.invoke("operator", function_url_event(method, path, body, **kwargs))
    twin.deliver()
    assert response["headers"]["Content-Type"] == "application/json"
    return int(response["statusCode"]), json.loads(response["body"])


@pytest.fixture(scope="module")
def twin() -> Any:
    with Twin(TwinOptions(seed=61)) as twin:
        twin.add_nodes(3, tags={"env": "test"})
        yield twin


def test_a_start_and_a_cancel_are_recorded_with_who_made_them(twin: Twin) -> None:
    # When alice starts a rollout and bob cancels it
    status, started = call(twin, "POST", "/rollouts", {"spec": shell_spec(name="audited")}, caller_arn=ALICE)
    assert status == 201 and started["state"] == "RUNNING" and started["started_by"] == ALICE
    status, cancelled = call(
        twin, "POST", f"/rollouts/{started['rollout_id']}/cancel", {"reason": "wrong window"}, caller_arn=BOB
    )
    assert status == 200 and cancelled["state"] == "CANCELLED" and cancelled["cancelled_by"] == BOB
    # Then the ledger holds both, and the trigger is the path the request came by
    rollout = twin.run(started["rollout_id"])
    assert (rollout.trigger, rollout.started_by, rollout.cancelled_by) == ("operator", ALICE, BOB)
    assert rollout.reason == "wrong window"
    # And so do the summary and the fleetwave events
    [summary] = summaries_for(twin, rollout.rollout_id)
    assert summary["started_by"] == ALICE and summary["cancelled_by"] == BOB and summary["trigger"] == "operator"
    details = {
        e["detail-type"]: e["detail"] for e in twin.events if e["detail"].get("rollout_id") == rollout.rollout_id
    }
    assert details["Rollout Started"]["started_by"] == ALICE
    assert details["Rollout Halted"]["cancelled_by"] == BOB


def test_the_body_cannot_say_who_or_how(twin: Twin) -> None:
    spec = shell_spec(name="forged")
    for extra in ({"trigger": "remediation"}, {"started_by": "arn:aws:iam::123456789012:user/someone-else"}):
        status, answer = call(twin, "POST", "/rollouts", {"spec": spec, **extra}, caller_arn=ALICE)
        assert status == 400 and "Extra inputs are not permitted" in answer["error"]
    assert not [r for r in twin.reader.rollouts.find(spec="forged")]


def test_requests_without_an_identity_of_this_account_are_refused(twin: Twin) -> None:
    spec = {"spec": shell_spec(name="anonymous")}
    # No IAM identity (a URL that is not AWS_IAM) or a principal of another account: 403, nothing started
    assert call(twin, "POST", "/rollouts", spec, caller_arn=None)[0] == 403
    status, answer = call(
        twin,
        "POST",
        "/rollouts",
        spec,
        caller_arn="arn:aws:iam::999999999999:user/mallory",
        caller_account="999999999999",
    )
    assert status == 403 and "999999999999" in answer["error"]
    assert not twin.reader.rollouts.find(spec="anonymous")


def test_answers_for_bad_requests(twin: Twin) -> None:
    # A spec fleetwave rejects: 422 with its problems; a body that is not JSON: 400; unknown paths and rollouts: 404
    bad = shell_spec(name="bad", document={"name": "AWS-RunShellScript", "parameters": {"nope": ["x"]}})
    status, answer = call(twin, "POST", "/rollouts", {"spec": bad}, caller_arn=ALICE)
    assert status == 422 and answer["rejected"] and "nope" in answer["problems"][0]
    assert call(twin, "POST", "/rollouts", "{not json", caller_arn=ALICE)[0] == 400
    assert call(twin, "POST", "/rollouts/20990101T000000-000000/cancel", {}, caller_arn=ALICE)[0] == 404
    # Pause, resume and promote are not there yet: no route, no action
    assert call(twin, "POST", "/rollouts/x/pause", {}, caller_arn=ALICE)[0] == 404
    assert call(twin, "GET", "/rollouts", None, caller_arn=ALICE)[0] == 404
