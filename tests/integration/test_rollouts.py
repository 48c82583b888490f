"""Whole rollouts on the local twin: the real handlers, real boto3 calls, moto, the fleet simulator, virtual time.

Given a fleet and a spec, when the rollout runs to its end, then what a user sees (state, counters, commands sent,
summaries) is what SSM's semantics and fleetwave's invariants promise.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
from fleetwave_local.twin import Twin, TwinOptions

from .rollouts import assert_counters_exact, ledger_truth, shell_spec, simulator_truth, summaries_for


def sends(twin: Twin) -> int:
    return twin.api_calls["ssm:SendCommand"]


def test_a_three_waves_that_all_succeed():
    with Twin(TwinOptions(seed=11)) as twin:
        twin.add_nodes(20, tags={"env": "test"})
        started = twin.start(shell_spec(waves=[1, "50%", "100%"]))
        rollout = twin.run(started["rollout_id"])

        assert rollout.state.value == "SUCCEEDED"
        assert started["waves"] == [1, 9, 10]
        waves = twin.reader.plans.waves(rollout.rollout_id)
        assert [w.state.value for w in waves] == ["COMPLETE"] * 3
        assert [w.dispatched for w in waves] == [1, 9, 10]
        assert ledger_truth(twin.reader, rollout.rollout_id)["by_status"] == Counter({"Success": 20})
        # Bake time between waves ran on the virtual clock: two 10-minute bakes at least.
        assert (rollout.ended_at - rollout.started_at).total_seconds() >= 2 * 600
        assert sends(twin) == 3
        assert_counters_exact(twin, rollout.rollout_id)
        summaries = summaries_for(twin, rollout.rollout_id)
        assert len(summaries) == 1 and summaries[0]["state"] == "SUCCEEDED"
        # The one-time bake timers were deleted after use.
        assert twin.plumbing("scheduler").list_schedules(GroupName="fleetwave")["Schedules"] == []


def test_b_failures_in_wave_2_spend_the_budget_halt_and_cancel():
    with Twin(TwinOptions(seed=12, run_seconds=(60, 120))) as twin:
        ids = sorted(twin.add_nodes(120, tags={"env": "test"}))
        # Wave 0 is the first node in ID order, wave 1 the next 59 (50%), wave 2 the rest.
        wave_two = ids[1:60]
        for instance_id in wave_two[:3]:
            twin.sim.set_outcome(instance_id, "fail")
        for instance_id in wave_two[3:]:
            twin.sim.set_outcome(instance_id, "slow")
        started = twin.start(shell_spec(waves=[1, "50%", "100%"], error_budget=1))
        rollout = twin.run(started["rollout_id"])

        assert rollout.state.value == "HALTED"
        assert rollout.reason.startswith("error budget exceeded")
        waves = twin.reader.plans.waves(rollout.rollout_id)
        assert waves[1].state.value == "HALTED"
        assert waves[2].dispatched == 0 and waves[2].state.value == "PENDING"
        # Wave 1 was in flight in two commands; both were cancelled.
        assert twin.api_calls["ssm:CancelCommand"] == 2
        assert twin.sim.stats.api_calls["CancelCommand"] == 2
        assert sends(twin) == 1 + 2
        truth = ledger_truth(twin.reader, rollout.rollout_id)["by_status"]
        assert truth["Failed"] >= 2 and truth["Cancelled"] > 0
        assert_counters_exact(twin, rollout.rollout_id)
        summaries = summaries_for(twin, rollout.rollout_id)
        assert [s["state"] for s in summaries] == ["HALTED"]
        assert {f["instance_id"] for f in summaries[0]["failed_instances"] if f["status"] == "Failed"} <= set(
            wave_two[:3]
        )


def test_c_duplicated_and_reordered_events_on_both_paths_leave_counters_exact():
    with Twin(TwinOptions(seed=13, duplicate_rate=0.5, fail_rate=0.1, shuffle=True)) as twin:
        twin.add_nodes(40, tags={"env": "test"})
        started = twin.start(shell_spec(error_budget=10))
        rollout = twin.run(started["rollout_id"])

        assert twin.sim.stats.events_duplicated["eventbridge"] > 0 and twin.sim.stats.events_duplicated["sns"] > 0
        assert_counters_exact(twin, rollout.rollout_id)
        truth = ledger_truth(twin.reader, rollout.rollout_id)
        assert sum(truth["by_status"].values()) == 40
        assert truth["statuses"] == simulator_truth(twin)


def test_d_a_retried_dispatch_after_send_command_succeeded_sends_nothing_twice(monkeypatch):
    with Twin(TwinOptions(seed=14)) as twin:
        twin.add_nodes(30, tags={"env": "test"})
        dispatch = twin.deps.ledger.dispatch
        real_record_sent = dispatch.record_sent
        crashes = []

        def crash_once(*args, **kwargs):
            if not crashes:
                crashes.append(args)
                raise RuntimeError("simulated crash between SendCommand and the ledger write")
            return real_record_sent(*args, **kwargs)

        monkeypatch.setattr(dispatch, "record_sent", crash_once)
        with pytest.raises(RuntimeError, match="simulated crash"):
            twin.start(shell_spec(waves=["100%"]))
        # Lambda retries the invocation: it must find the same chunk's command instead of sending it again.
        rollout_id = twin.reader.rollouts.find(state="RUNNING")[0].rollout_id
        rollout = twin.run(rollout_id)

        assert rollout.state.value == "SUCCEEDED"
        assert len(twin.sim.commands()) == 1
        assert sends(twin) == 1
        assert twin.api_calls["ssm:ListCommands"] >= 1
        assert Counter(i.instance_id for i in twin.sim.invocations()).most_common(1)[0][1] == 1
        assert_counters_exact(twin, rollout_id)


def test_e_delivery_timeouts_and_undeliverable_nodes_do_not_spend_the_budget():
    with Twin(TwinOptions(seed=15, delivery_timeout_rate=0.2, undeliverable_rate=0.15)) as twin:
        twin.add_nodes(40, tags={"env": "test"})
        started = twin.start(shell_spec(waves=["50%", "100%"], error_budget=0, timeout_seconds=600))
        rollout = twin.run(started["rollout_id"])

        truth = ledger_truth(twin.reader, rollout.rollout_id)["by_status"]
        assert truth["DeliveryTimedOut"] > 0 and truth["Undeliverable"] > 0
        assert rollout.budget_used == 0
        assert rollout.state.value == "COMPLETED_WITH_ERRORS"
        assert_counters_exact(twin, rollout.rollout_id)


def test_f_with_20_percent_of_events_dropped_the_reconciler_reaches_the_true_final_state():
    with Twin(TwinOptions(seed=16, drop_rate=0.2, fail_rate=0.05)) as twin:
        twin.add_nodes(40, tags={"env": "test"})
        started = twin.start(shell_spec(error_budget=5))
        rollout = twin.run(started["rollout_id"])

        assert twin.sim.stats.events_dropped["eventbridge"] > 0 and twin.sim.stats.events_dropped["sns"] > 0
        assert twin.api_calls["ssm:ListCommandInvocations"] > 0
        truth = ledger_truth(twin.reader, rollout.rollout_id)
        assert truth["statuses"] == simulator_truth(twin)
        expected = "SUCCEEDED" if truth["by_status"] == Counter({"Success": 40}) else "COMPLETED_WITH_ERRORS"
        assert rollout.state.value == expected
        assert_counters_exact(twin, rollout.rollout_id)


@pytest.mark.slow
def test_g_two_thousand_targets_no_item_over_400_kb_and_one_send_per_50_targets():
    # Every status event is dropped: the reconciler alone carries the rollout (and the test stays fast).
    with Twin(TwinOptions(seed=17, drop_rate=1.0)) as twin:
        twin.add_nodes(2000, tags={"env": "test"})
        started = twin.start(shell_spec(waves=[1, "10%", "50%", "100%"], bake_time=0))
        rollout = twin.run(started["rollout_id"])

        assert rollout.state.value == "SUCCEEDED"
        assert started["waves"] == [1, 199, 800, 1000]
        assert sends(twin) == sum(math.ceil(size / 50) for size in started["waves"])
        largest = max(_item_size(item) for item in _scan(twin))
        assert largest < 400 * 1024, largest
        assert largest < 64 * 1024  # a shard of 500 IDs, not the fleet


def _scan(twin: Twin):
    paginator = twin.plumbing("dynamodb").get_paginator("scan")
    for page in paginator.paginate(TableName=twin.resources.table_name):
        yield from page["Items"]


def _item_size(item) -> int:
    """DynamoDB's item size: attribute names plus values (serialized JSON over-estimates it slightly)."""
    import json

    return sum(len(name) + len(json.dumps(value)) for name, value in item.items())


def test_h_an_unknown_document_or_parameter_stops_the_rollout_before_any_dispatch():
    with Twin(TwinOptions(seed=18)) as twin:
        twin.add_nodes(5, tags={"env": "test"})
        unknown = twin.start(shell_spec(document={"name": "Acme-DoesNotExist"}))
        wrong_parameter = twin.start(
            shell_spec(document={"name": "AWS-RunShellScript", "parameters": {"commands": ["ls"], "comands": ["ls"]}})
        )
        missing_parameter = twin.start(shell_spec(document={"name": "AWS-RunPatchBaseline"}))

        assert unknown == {
            "rejected": True,
            "problems": [
                "document.name: document 'Acme-DoesNotExist' does not exist or is not shared with this account"
            ],
        }
        assert wrong_parameter["rejected"] and wrong_parameter["problems"][0].startswith(
            "document.parameters.comands: AWS-RunShellScript does not accept this parameter (it accepts: commands, "
        )
        assert missing_parameter["problems"] == [
            "document.parameters.Operation: required by AWS-RunPatchBaseline and missing"
        ]
        assert twin.sim.commands() == []
        assert sends(twin) == 0
        assert twin.reader.rollouts.find() == []


def test_the_document_version_is_pinned_for_every_wave():
    with Twin(TwinOptions(seed=19)) as twin:
        twin.add_nodes(6, tags={"env": "test"})
        started = twin.start(shell_spec(waves=[1, "100%"], bake_time="1h"))
        # A new default version appears during the bake: the rollout keeps the one it validated.
        ssm = twin.plumbing("ssm")
        content = ssm.get_document(Name="AWS-RunShellScript")["Content"]
        ssm.update_document(
            Name="AWS-RunShellScript",
            Content=content.replace("Run a shell", "Run a new shell"),
            DocumentVersion="$LATEST",
        )
        ssm.update_document_default_version(Name="AWS-RunShellScript", DocumentVersion="2")
        rollout = twin.run(started["rollout_id"])

        assert rollout.state.value == "SUCCEEDED"
        assert {c.document_version for c in twin.sim.commands()} == {"1"}
