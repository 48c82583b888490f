"""Starts that may not happen now, on the local twin: closed change calendars, blackout windows, dev-before-prod
requirements, and one running rollout per spec. A skipped start answers ``{"skipped": True, ...}``, sends nothing,
and leaves a notice in the ledger for notify to publish."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from fleetwave.adapters.ledger import Locks
from fleetwave.constants import SPEC_LOCK_GRACE_SECONDS
from fleetwave_local.twin import TWIN_OPERATOR_ARN as OPERATOR
from fleetwave_local.twin import Twin, TwinOptions, function_url_event

from stacks.config import load_config

from .rollouts import shell_spec, summaries_for


def rollouts_of(twin: Twin, spec_name: str) -> list[Any]:
    return twin.reader.rollouts.find(spec=spec_name)


def test_a_closed_change_calendar_blocks_the_start_and_leaves_a_notice():
    with Twin(TwinOptions(seed=21)) as twin:
        twin.add_nodes(3, tags={"env": "test"})
        twin.set_calendar("prod-freeze", "CLOSED")
        spec = shell_spec(calendars=["prod-freeze"], waves=["100%"])
        # When the spec starts while its calendar is CLOSED
        answer = twin.start(spec)
        # Then nothing starts, and the caller and the ledger say why
        assert answer == {
            "skipped": True,
            "spec_name": "integration",
            "kind": "change_calendar",
            "reason": "change calendar prod-freeze is CLOSED",
        }
        assert twin.api_calls["ssm:SendCommand"] == 0 and rollouts_of(twin, "integration") == []
        [notice] = twin.reader.records.notices("integration")
        now = twin.clock.now()
        assert notice["pk"] == "NOTICE#integration" and notice["sk"].startswith(now.strftime("%Y-%m-%dT%H:%M:%S"))
        assert notice["type"] == "notice" and notice["kind"] == "start_skipped"
        assert notice["spec_name"] == "integration" and notice["reason"] == "change calendar prod-freeze is CLOSED"
        assert notice["expires_at"] == int((now + timedelta(days=90)).timestamp())
        # And once the calendar opens, the same spec starts and runs
        twin.set_calendar("prod-freeze", "OPEN")
        started = twin.start(spec)
        assert twin.run(started["rollout_id"]).state.value == "SUCCEEDED"


def test_a_missing_change_calendar_blocks_the_start():
    with Twin(TwinOptions(seed=22)) as twin:
        twin.add_nodes(1, tags={"env": "test"})
        answer = twin.start(shell_spec(calendars=["no-such-calendar"]))
        assert answer["skipped"] and answer["reason"] == "change calendar no-such-calendar does not exist"


def test_a_blackout_window_in_the_schedules_time_zone_blocks_the_start_until_it_ends():
    # The twin starts at 2026-01-01 00:00 UTC: Thursday 01:00 in Paris
    with Twin(TwinOptions(seed=23)) as twin:
        twin.add_nodes(2, tags={"env": "test"})
        spec = shell_spec(
            waves=["100%"],
            schedule={"cron": "0 1 ? * THU *", "timezone": "Europe/Paris"},
            blackout_windows=[{"start": "00:00", "end": "06:00", "days": ["THU"]}],
        )
        answer = twin.start(spec)
        assert answer["kind"] == "blackout_window"
        assert answer["reason"] == "inside blackout window 00:00-06:00 THU (Europe/Paris)"
        assert [n["reason"] for n in twin.reader.records.notices("integration")] == [answer["reason"]]
        # At 06:00 Paris (05:00 UTC) the window is over
        twin.sim.advance_to(twin.clock.now() + timedelta(hours=5))
        started = twin.start(spec)
        assert twin.run(started["rollout_id"]).state.value == "SUCCEEDED"


def test_prod_starts_only_after_a_recent_dev_success():
    with Twin(TwinOptions(seed=24)) as twin:
        twin.add_nodes(2, tags={"env": "dev"})
        twin.add_nodes(2, tags={"env": "prod"})
        dev = shell_spec(name="dev", targets={"tags": {"env": ["dev"]}}, waves=["100%"])
        prod = shell_spec(
            name="prod", targets={"tags": {"env": ["prod"]}}, waves=["100%"], requires={"spec": "dev", "within_days": 7}
        )
        # Given dev never ran: prod is skipped
        answer = twin.start(prod)
        assert answer["kind"] == "requirement"
        assert answer["reason"] == "requires a SUCCEEDED rollout of 'dev' within 7 day(s); it has no finished rollout"
        # When dev succeeds, prod starts
        assert twin.run(twin.start(dev)["rollout_id"]).state.value == "SUCCEEDED"
        assert twin.run(twin.start(prod)["rollout_id"]).state.value == "SUCCEEDED"
        # And eight days later that success is too old
        twin.sim.advance_to(twin.clock.now() + timedelta(days=8))
        late = twin.start(prod)
        assert late["kind"] == "requirement" and "its last success" in late["reason"]
        assert len(twin.reader.records.notices("prod")) == 2


def test_a_start_while_the_specs_last_rollout_still_runs_is_skipped():
    with Twin(TwinOptions(seed=25)) as twin:
        twin.add_nodes(3, tags={"env": "test"})
        spec = shell_spec(waves=[1, "100%"])
        first = twin.start(spec)
        # The first rollout is baking between waves when the schedule fires again
        second = twin.schedule_start(spec)
        assert second["skipped"] and second["kind"] == "already_running"
        assert second["reason"].startswith(f"rollout {first['rollout_id']} of 'integration' is still ")
        assert [n["blocked_by"] for n in twin.reader.records.notices("integration")] == ["already_running"]
        # Once it ended, the next start runs
        assert twin.run(first["rollout_id"]).state.value == "SUCCEEDED"
        third = twin.start(spec)
        assert twin.run(third["rollout_id"]).state.value == "SUCCEEDED"
        assert len(rollouts_of(twin, "integration")) == 2
        assert len(summaries_for(twin, first["rollout_id"])) == 1


@pytest.mark.parametrize("previous", ["none", "ended"])
def test_two_starts_racing_for_one_spec_start_one_rollout(monkeypatch: pytest.MonkeyPatch, previous: str):
    with Twin(TwinOptions(seed=26)) as twin:
        twin.add_nodes(3, tags={"env": "test"})
        spec = shell_spec(waves=["100%"])
        if previous == "ended":
            # The lock is then held by an ended rollout: both starts try to take it over from that holder
            twin.run(twin.start(spec)["rollout_id"])
        answers: list[dict[str, Any]] = []
        raced: list[bool] = []
        read_lock = Locks.spec_lock

        def racing(self: Locks, spec_name: str) -> Any:
            lock = read_lock(self, spec_name)
            if not raced:
                raced.append(True)
                # Start B runs entirely between start A's read of the lock and A's conditional write
                answers.append(twin.invoke("start_rollout", {"spec": spec}))
            return lock

        twin.register_schedule(spec)
        monkeypatch.setattr(Locks, "spec_lock", racing)
        # Start A by an operator; start B by its schedule
        answers.insert(
            0, twin.invoke("operator", function_url_event("POST", "/rollouts", {"spec": spec}, caller_arn=OPERATOR))
        )
        answers[0] = json.loads(answers[0]["body"])
        a, b = answers
        # Then B started and A, losing the write, found B holding the spec
        assert "rollout_id" in b and a["skipped"] and a["kind"] == "already_running"
        assert b["rollout_id"] in a["reason"]
        running = [r for r in rollouts_of(twin, "integration") if not r.state.is_terminal]
        assert [r.rollout_id for r in running] == [b["rollout_id"]]


def test_a_lock_left_by_a_start_that_crashed_is_free_after_the_grace_period():
    with Twin(TwinOptions(seed=27)) as twin:
        twin.add_nodes(2, tags={"env": "test"})
        # Given a start that took the lock and crashed before recording its rollout
        twin.reader.locks.claim_spec_lock("integration", "20260101T000000-dead00", twin.clock.now(), replacing=None)
        answer = twin.start(shell_spec(waves=["100%"]))
        assert answer["reason"] == "a rollout of 'integration' (20260101T000000-dead00) is being started"
        # When the grace period has passed, the next start takes the lock over
        twin.sim.advance_to(twin.clock.now() + timedelta(seconds=SPEC_LOCK_GRACE_SECONDS))
        started = twin.start(shell_spec(waves=["100%"]))
        assert twin.run(started["rollout_id"]).state.value == "SUCCEEDED"


def test_a_rejected_start_gives_the_lock_back_at_once():
    with Twin(TwinOptions(seed=28)) as twin:
        twin.add_nodes(2, tags={"env": "test"})
        rejected = twin.start(shell_spec(document={"name": "AWS-RunShellScript", "parameters": {"nope": ["x"]}}))
        assert rejected["rejected"]
        started = twin.start(shell_spec(waves=["100%"]))
        assert "rollout_id" in started


def test_the_example_scheduled_spec_runs_from_what_its_schedule_carries():
    # The payload the stack puts in the Scheduler schedule of specs/monthly-patching.yaml
    config = load_config(
        {"fleetwave:allowedDocuments": ["fleetwave-PatchBaseline"], "fleetwave:scheduledSpecs": ["specs/*.yaml"]}
    )
    [scheduled] = [s for s in config.scheduled_specs if s.spec.name == "monthly-patching"]
    with Twin(TwinOptions(seed=29, run_seconds=(60, 300))) as twin:
        twin.add_nodes(4, tags={"PatchGroup": "web"})
        # When Scheduler fires it (the stack knows the spec by its digest)
        twin.register_schedule(scheduled.spec.model_dump(mode="json", exclude_none=True))
        started = twin.invoke("start_rollout", scheduled.schedule_input())
        rollout = twin.run(started["rollout_id"])
        assert rollout.state.value == "SUCCEEDED" and rollout.trigger == "schedule"
        assert rollout.started_by == "scheduler.amazonaws.com"
        # 10% of 4 nodes adds none past the canary: that mark is dropped, not run empty
        assert started["waves"] == [1, 1, 2]


def test_the_start_function_starts_only_the_specs_the_stack_schedules_and_sets_the_trigger_itself():
    with Twin(TwinOptions(seed=30)) as twin:
        twin.add_nodes(2, tags={"env": "test"})
        spec = shell_spec(waves=["100%"])
        # Invoked directly (by anyone IAM lets invoke it) with a spec no schedule holds: rejected, nothing runs
        direct = twin.invoke("start_rollout", {"trigger": "remediation", "spec": spec})
        assert direct["rejected"] and "is not a spec this stack schedules" in direct["problems"][0]
        # A scheduled spec changed on the way (another document, other commands): rejected too
        twin.register_schedule(spec)
        changed = {**spec, "document": {"name": "AWS-RunShellScript", "parameters": {"commands": ["curl x | sh"]}}}
        assert twin.invoke("start_rollout", {"spec": changed})["rejected"]
        assert twin.api_calls["ssm:SendCommand"] == 0
        # The scheduled spec as deployed starts, as "schedule", whatever trigger the event claims
        started = twin.invoke("start_rollout", {"trigger": "remediation", "spec": spec})
        rollout = twin.run(started["rollout_id"])
        assert rollout.trigger == "schedule" and rollout.started_by == "scheduler.amazonaws.com"
