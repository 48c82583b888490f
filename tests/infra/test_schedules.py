"""Timers: one Scheduler schedule per scheduled spec, and the reconciler."""

from __future__ import annotations

import json
from typing import Any

from fleetwave import constants
from fleetwave.core.spec import load_spec_text, parse_spec

from stacks.names import spec_schedule_name

from .conftest import MONTHLY_SPEC, NIGHTLY_SPEC, Synthesized


def schedules(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    return {s["Properties"]["Name"]: s["Properties"] for s in synthesized.of_type("AWS::Scheduler::Schedule").values()}


def test_each_scheduled_spec_gets_a_schedule_with_its_cron_and_timezone(synthesized: Synthesized) -> None:
    start = {"Fn::GetAtt": [synthesized.logical_id(synthesized.stack.functions.functions["start_rollout"]), "Arn"]}
    role = {"Fn::GetAtt": [synthesized.logical_id(synthesized.stack.timers.role), "Arn"]}
    found = schedules(synthesized)
    for text, cron, timezone in (
        (MONTHLY_SPEC, "cron(0 3 ? * TUE#2 *)", "Europe/Paris"),
        # A spec may write its cron as cron(...): the schedule does not wrap it twice
        (NIGHTLY_SPEC, "cron(30 1 * * ? *)", "America/New_York"),
    ):
        spec = load_spec_text(text)
        schedule = found[spec_schedule_name(spec.name)]
        assert schedule["GroupName"] == constants.SCHEDULER_GROUP_NAME
        assert schedule["ScheduleExpression"] == cron
        assert schedule["ScheduleExpressionTimezone"] == timezone
        assert schedule["Target"]["Arn"] == start
        assert schedule["Target"]["RoleArn"] == role
        # And the input is the validated spec, which the function parses back to the same spec
        payload = json.loads(schedule["Target"]["Input"])
        assert payload["trigger"] == "schedule"
        assert parse_spec(payload["spec"]) == spec


def test_reconciler_runs_on_the_shared_cadence(synthesized: Synthesized) -> None:
    reconcile = schedules(synthesized)["reconcile"]
    assert reconcile["ScheduleExpression"] == f"rate({constants.RECONCILE_EVERY_MINUTES} minutes)"
    assert reconcile["GroupName"] == constants.SCHEDULER_GROUP_NAME
    assert reconcile["Target"]["Arn"] == {
        "Fn::GetAtt": [synthesized.logical_id(synthesized.stack.functions.functions["reconcile"]), "Arn"]
    }


def test_long_spec_names_still_make_valid_unique_schedule_names() -> None:
    long_a, long_b = "a" * 64, "a" * 63 + "b"
    assert len(spec_schedule_name(long_a)) <= 64
    assert spec_schedule_name(long_a) != spec_schedule_name(long_b)
