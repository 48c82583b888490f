"""Session- and connection-aware dispatch on the local twin: before each wave, nodes in a Session Manager session
move to the rollout's deferred (last) wave, sessions older than a limit may be terminated instead, and nodes that
are not connected are skipped and reported rather than left to time out."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from fleetwave.service import rollouts as rollouts_service
from fleetwave_local.twin import Twin, TwinOptions

from .rollouts import assert_counters_exact, shell_spec, summaries_for

OPERATOR = "arn:aws:iam::123456789012:user/alice"


def dispatch_times(twin: Twin, rollout_id: str) -> dict[str, str]:
    return {item["instance_id"]: item["requested_at"] for item in twin.reader.invocations.of_rollout(rollout_id)}


def test_nodes_whose_session_opened_mid_rollout_move_to_the_end_and_still_run():
    with Twin(TwinOptions(seed=31)) as twin:
        ids = sorted(twin.add_nodes(8, tags={"env": "test"}))
        started = twin.start(shell_spec(waves=[1, "50%", "100%"]))
        rollout_id = started["rollout_id"]
        assert started["waves"] == [1, 3, 4]
        # Given a node of wave 1 and one of wave 2 in a session when their waves start (after wave 0's bake)
        busy = [
            twin.reader.plans.targets(rollout_id, 1, 1, 2)[0],
            twin.reader.plans.targets(rollout_id, 2, 0, 1)[0],
        ]
        sessions = [twin.sim.open_session(node, OPERATOR, twin.clock.now()) for node in busy]
        # When the rollout runs to its end
        rollout = twin.run(rollout_id)
        # Then they ran last, in a fourth (deferred) wave that wave 1 created and wave 2 grew; every node ran once
        assert rollout.state.value == "SUCCEEDED" and rollout.target_count == 8
        waves = twin.reader.plans.waves(rollout_id)
        assert [w.size for w in waves] == [1, 2, 3, 2] and [w.state.value for w in waves] == ["COMPLETE"] * 4
        assert twin.reader.plans.deferred_wave_index(rollout_id) == 3
        assert twin.reader.plans.targets(rollout_id, 3, 0, 2) == busy
        times = dispatch_times(twin, rollout_id)
        assert sorted(times) == ids
        assert min(times[node] for node in busy) > max(t for node, t in times.items() if node not in busy)
        # Their sessions were never cut by fleetwave
        assert all(twin.sim.session(session).active for session in sessions)
        assert twin.api_calls["ssm:TerminateSession"] == 0
        assert_counters_exact(twin, rollout_id)
        # And the summary shows the deferred wave
        [summary] = summaries_for(twin, rollout_id)
        assert [w["size"] for w in summary["waves"]] == [1, 2, 3, 2]


def test_a_node_in_a_session_at_plan_time_is_planned_last_and_deferred_past_the_last_wave():
    with Twin(TwinOptions(seed=32)) as twin:
        ids = sorted(twin.add_nodes(4, tags={"env": "test"}))
        twin.sim.open_session(ids[0], OPERATOR, twin.clock.now())
        started = twin.start(shell_spec(waves=[1, "100%"], bake_time="5m"))
        assert started["deferred"] == [ids[0]]
        rollout = twin.run(started["rollout_id"])
        assert rollout.state.value == "SUCCEEDED"
        assert [w.size for w in twin.reader.plans.waves(rollout.rollout_id)] == [1, 2, 1]
        assert twin.reader.plans.targets(rollout.rollout_id, 2, 0, 1) == [ids[0]]


def test_terminate_older_than_ends_stale_sessions_and_defers_nodes_with_recent_ones():
    with Twin(TwinOptions(seed=33)) as twin:
        ids = sorted(twin.add_nodes(4, tags={"env": "test"}))
        now = twin.clock.now()
        stale = twin.sim.open_session(ids[0], OPERATOR, now - timedelta(hours=3))
        recent = twin.sim.open_session(ids[1], OPERATOR, now - timedelta(minutes=10))
        spec = shell_spec(waves=["100%"], sessions={"mode": "terminate_older_than", "older_than": "2h"})
        started = twin.start(spec)
        rollout = twin.run(started["rollout_id"])
        assert rollout.state.value == "SUCCEEDED" and rollout.target_count == 4
        # The three-hour-old session was terminated and its node patched in its own wave
        assert twin.sim.session(stale).status == "Terminated" and twin.api_calls["ssm:TerminateSession"] == 1
        # The ten-minute-old one was left alone; its node waited for the deferred wave
        assert twin.sim.session(recent).active
        waves = twin.reader.plans.waves(rollout.rollout_id)
        assert [w.size for w in waves] == [3, 1]
        assert twin.reader.plans.targets(rollout.rollout_id, 0, 0, 3) == [ids[0], ids[2], ids[3]]
        assert twin.reader.plans.targets(rollout.rollout_id, 1, 0, 1) == [ids[1]]


def test_nodes_that_are_not_connected_are_skipped_and_reported_before_dispatch():
    with Twin(TwinOptions(seed=34)) as twin:
        ids = sorted(twin.add_nodes(6, tags={"env": "test"}))
        # Given two nodes whose agent pings Online but has no connection, and one that lost its ping
        for node in (ids[2], ids[4]):
            twin.sim.set_connection_status(node, False)
        twin.sim.set_ping_status(ids[5], "ConnectionLost")
        started = twin.start(shell_spec(waves=[1, "50%", "100%"]))
        rollout = twin.run(started["rollout_id"])
        # Then the rollout succeeds on the nodes it could reach, and says which it skipped and why
        assert rollout.state.value == "SUCCEEDED"
        assert rollout.target_count == 3 and rollout.skipped_count == 3
        skipped = {s.instance_id: s.reason for s in twin.reader.plans.skipped(rollout.rollout_id)}
        assert skipped == {
            ids[2]: "not connected (GetConnectionStatus)",
            ids[4]: "not connected (GetConnectionStatus)",
            ids[5]: "SSM agent ConnectionLost",
        }
        assert sorted(dispatch_times(twin, rollout.rollout_id)) == [ids[0], ids[1], ids[3]]
        # No delivery timeout was burnt on them: nothing was sent to them at all
        sent_to = Counter(i.instance_id for i in twin.sim.invocations())
        assert not {ids[2], ids[4], ids[5]} & set(sent_to)
        # GetConnectionStatus: once per node PingStatus found Online, just before its wave
        assert twin.api_calls["ssm:GetConnectionStatus"] == 5
        [summary] = summaries_for(twin, rollout.rollout_id)
        assert summary["skipped"] == 3
        assert {s["instance_id"] for s in summary["skipped_instances"]} == {ids[2], ids[4], ids[5]}
        assert_counters_exact(twin, rollout.rollout_id)


def test_a_rollout_left_with_no_reachable_target_fails_instead_of_succeeding_empty():
    with Twin(TwinOptions(seed=37)) as twin:
        [node] = twin.add_nodes(1, tags={"env": "test"})
        twin.sim.set_connection_status(node, False)
        started = twin.start(shell_spec(waves=["100%"]))
        assert started["state"] == "FAILED"
        assert started["reason"] == "no target is reachable: 1 not connected (GetConnectionStatus)"
        assert twin.api_calls["ssm:SendCommand"] == 0
        assert [s["state"] for s in summaries_for(twin, started["rollout_id"])] == ["FAILED"]


def test_a_wave_too_large_for_one_call_per_node_refreshes_ping_status_instead(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(rollouts_service, "MAX_CONNECTION_CHECKS_PER_WAVE", 2)
    with Twin(TwinOptions(seed=36)) as twin:
        ids = sorted(twin.add_nodes(5, tags={"env": "test"}))
        started = twin.start(shell_spec(waves=[1, "100%"]))
        # Given a node of the four-node wave 1 that went offline after the plan
        twin.sim.set_ping_status(ids[3], "ConnectionLost")
        rollout = twin.run(started["rollout_id"])
        assert rollout.state.value == "SUCCEEDED" and rollout.target_count == 4
        assert {s.instance_id: s.reason for s in twin.reader.plans.skipped(rollout.rollout_id)} == {
            ids[3]: "SSM agent ConnectionLost"
        }
        # Wave 0 (one node) asked GetConnectionStatus; wave 1 (four nodes) one DescribeInstanceInformation page
        assert twin.api_calls["ssm:GetConnectionStatus"] == 1
        assert twin.api_calls["ssm:DescribeInstanceInformation"] == 2


def test_api_calls_of_session_and_connection_checks_per_rollout():
    with Twin(TwinOptions(seed=35)) as twin:
        twin.add_nodes(10, tags={"env": "test"})
        before = Counter(twin.api_calls)
        started = twin.start(shell_spec(waves=[1, "50%", "100%"]))
        at_start = Counter(twin.api_calls) - before
        twin.run(started["rollout_id"])
        total = Counter(twin.api_calls) - before
        # The start: one DescribeInstanceInformation page, DescribeSessions at plan time and at wave 0's start,
        # and GetConnectionStatus for wave 0's one node
        assert at_start["ssm:DescribeInstanceInformation"] == 1
        assert at_start["ssm:DescribeSessions"] == 2
        assert at_start["ssm:GetConnectionStatus"] == 1
        # The whole rollout: DescribeSessions once more per later wave, GetConnectionStatus once per node
        assert total["ssm:DescribeSessions"] == 4
        assert total["ssm:GetConnectionStatus"] == 10
        assert total["ssm:SendCommand"] == 3


def test_a_spec_asking_to_end_sessions_is_rejected_unless_the_deployment_allows_it() -> None:
    with Twin(TwinOptions(seed=62, session_termination=False)) as twin:
        twin.add_nodes(1, tags={"env": "test"})
        spec = shell_spec(name="ender", sessions={"mode": "terminate_older_than", "older_than": "1h"})
        status, answer = twin.operator_request("POST", "/rollouts", {"spec": spec})
        assert status == 422 and "fleetwave:sessionTermination" in answer["problems"][-1]
