"""Timers: one Scheduler schedule per scheduled spec, and the reconciler."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fleetwave import constants
from fleetwave.core.spec import load_spec_text, parse_spec

from stacks.names import spec_schedule_name

from .conftest import (
    MONTHLY_SPEC,
    NIGHTLY_SPEC,
    PROJECT_ROOT,
    REMEDIATION_DOCUMENT,
    REMEDIATION_RULES,
    Synthesized,
    actions_of,
    arn,
    as_list,
    find_statements,
    statements_of_role,
    synthesize,
)


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
        # No trigger in it: fleetwave sets the trigger from the path (start_rollout: always "schedule")
        assert set(payload) == {"spec"}
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


@pytest.fixture(scope="module")
def with_repository_specs(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The repository's own specs/ scheduled, and a remediation rule that verifies its alarm recovered."""
    context = {
        "fleetwave:allowedDocuments": ["fleetwave-PatchBaseline", REMEDIATION_DOCUMENT],
        "fleetwave:scheduledSpecs": ["specs/*.yaml"],
        "fleetwave:remediationRules": [{**REMEDIATION_RULES[0], "verify_minutes": 15}],
    }
    return synthesize(context, tmp_path_factory.mktemp("cdk.out.specs"))


def test_the_example_spec_in_specs_gets_its_schedule(with_repository_specs: Synthesized) -> None:
    # Given specs/monthly-patching.yaml, as cdk.json's fleetwave:scheduledSpecs would name it
    example = load_spec_text((PROJECT_ROOT / "specs" / "monthly-patching.yaml").read_text(encoding="utf-8"))
    assert example.schedule is not None
    # Then the template holds its schedule, with its cron expression and time zone, starting that very spec
    schedule = schedules(with_repository_specs)[spec_schedule_name(example.name)]
    assert schedule["ScheduleExpression"] == f"cron({example.schedule.cron})" == "cron(0 3 ? * TUE#2 *)"
    assert schedule["ScheduleExpressionTimezone"] == example.schedule.timezone == "Europe/Paris"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"} and schedule["State"] == "ENABLED"
    assert parse_spec(json.loads(schedule["Target"]["Input"])["spec"]) == example


def test_verification_timers_only_queue_checks_and_only_when_a_rule_verifies(
    with_repository_specs: Synthesized, synthesized: Synthesized
) -> None:
    def remediate_statements(synth: Synthesized) -> list[dict[str, Any]]:
        return statements_of_role(synth, synth.logical_id(synth.stack.functions.functions["remediate"].role))

    remediation = with_repository_specs.stack.functions.remediation
    assert remediation is not None
    # With verify_minutes, remediate may create only fw-verify-* timers, passing only the verification role
    statements = remediate_statements(with_repository_specs)
    [create] = find_statements(statements, "scheduler:CreateSchedule")
    assert create["Resource"] == arn("scheduler", "schedule/fleetwave/fw-verify-*")
    [passing] = [
        s
        for s in find_statements(statements, "iam:PassRole")
        if s["Condition"]["StringEquals"]["iam:PassedToService"] == "scheduler.amazonaws.com"
    ]
    assert passing["Resource"] == {"Fn::GetAtt": [with_repository_specs.logical_id(remediation.verify_role), "Arn"]}
    # And that role may only put messages on the alarm queue (and dead-letter them): it invokes no function
    verify = statements_of_role(with_repository_specs, with_repository_specs.logical_id(remediation.verify_role))
    assert {a for s in verify for a in actions_of(s)} == {"sqs:SendMessage"}
    queues = {r["Fn::GetAtt"][0] for s in verify for r in as_list(s["Resource"])}
    assert queues == {
        with_repository_specs.logical_id(remediation.queue),
        with_repository_specs.logical_id(with_repository_specs.stack.ingestion.delivery_dlq),
    }
    # Scheduler's main role never reaches remediate
    main = statements_of_role(
        with_repository_specs, with_repository_specs.logical_id(with_repository_specs.stack.timers.role)
    )
    remediate = with_repository_specs.logical_id(with_repository_specs.stack.functions.functions["remediate"])
    assert remediate not in json.dumps(main)
    # Without verification (the shared template's rule), remediate creates no schedule at all
    assert not find_statements(remediate_statements(synthesized), "scheduler:CreateSchedule")
