"""Engine decisions: budget, waves, fleet-wide concurrency, final states. Pure: no AWS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fleetwave.core.engine import (
    CancelCommands,
    DispatchChunk,
    Finish,
    Halt,
    Postpone,
    StartBake,
    StartWave,
    decide,
    decide_wave_start,
    plan_dispatch,
)
from fleetwave.core.model import Chunk, ChunkState, Rollout, RolloutState, Wave, WaveState, empty_counts
from fleetwave.core.status import DEFAULT_BUDGET_STATUSES, InvocationStatus
from hypothesis import given
from hypothesis import strategies as st

NOW = datetime(2026, 1, 1, tzinfo=UTC)
S = InvocationStatus


def rollout(**changes) -> Rollout:
    values = dict(
        rollout_id="r1",
        spec_name="t",
        state=RolloutState.RUNNING,
        current_wave=0,
        wave_count=3,
        target_count=100,
        skipped_count=0,
        budget_allowed=2,
        budget_statuses=DEFAULT_BUDGET_STATUSES,
        document_name="AWS-RunShellScript",
        document_version="1",
        document_hash="h",
        started_at=NOW,
        bake_time=600,
    )
    values.update(changes)
    return Rollout(**values)


def counts(**by_status) -> dict[S, int]:
    result = empty_counts()
    for name, n in by_status.items():
        result[S[name]] = n
    return result


def wave(size=100, concurrency=100, **changes) -> Wave:
    return Wave(
        index=changes.pop("index", 0), size=size, max_concurrency=concurrency, state=WaveState.RUNNING, **changes
    )


def chunk(index, open_, concurrency=50, command="c") -> Chunk:
    return Chunk(0, index, (), ChunkState.SENT, concurrency, command_id=f"{command}{index}", open=open_)


def test_budget_exceeded_halts_and_cancels_open_commands():
    r = rollout(counts=counts(FAILED=2, EXECUTION_TIMED_OUT=1, SUCCESS=10))
    actions = decide(r, wave(dispatched=100, next_chunk=2), [chunk(0, 0), chunk(1, 7)], NOW)
    assert actions == [Halt("error budget exceeded: 3 errors, 2 allowed"), CancelCommands(("c1",))]


def test_errors_within_budget_do_not_halt():
    r = rollout(counts=counts(FAILED=2, PENDING=5))
    assert not any(isinstance(a, Halt) for a in decide(r, wave(dispatched=100, next_chunk=2), [chunk(1, 5)], NOW))


def test_delivery_timeouts_and_undeliverable_spend_no_budget_by_default():
    r = rollout(counts=counts(DELIVERY_TIMED_OUT=30, UNDELIVERABLE=30))
    assert r.budget_used == 0


def test_a_settled_wave_bakes_before_the_next():
    r = rollout(counts=counts(SUCCESS=100))
    done = wave(dispatched=100, next_chunk=2, counts=counts(SUCCESS=100))
    assert decide(r, done, [], NOW) == [StartBake(0, 1, NOW + timedelta(seconds=600))]


def test_the_last_wave_finishes_succeeded_only_when_every_target_succeeded():
    done = wave(index=2, dispatched=100, next_chunk=2, counts=counts(SUCCESS=99, DELIVERY_TIMED_OUT=1))
    r = rollout(current_wave=2, counts=counts(SUCCESS=99, DELIVERY_TIMED_OUT=1))
    assert decide(r, done, [], NOW) == [Finish(RolloutState.COMPLETED_WITH_ERRORS)]
    r_ok = rollout(current_wave=2, counts=counts(SUCCESS=100))
    ok = wave(index=2, dispatched=100, next_chunk=2, counts=counts(SUCCESS=100))
    assert decide(r_ok, ok, [], NOW) == [Finish(RolloutState.SUCCEEDED)]


def test_halted_rollouts_keep_asking_to_cancel_what_is_still_open():
    r = rollout(state=RolloutState.HALTED)
    cancelled = Chunk(0, 1, (), ChunkState.SENT, 50, command_id="c1", open=3, cancel_requested=True)
    assert decide(r, wave(), [chunk(0, 2), cancelled], NOW) == [CancelCommands(("c0",))]
    assert decide(r, wave(), [cancelled], NOW) == []


def test_commands_carry_the_budget_left_as_max_errors():
    r = rollout(counts=counts(FAILED=1))
    actions = plan_dispatch(r, wave(size=120, concurrency=200), [])
    assert [(a.chunk, a.max_concurrency, a.max_errors) for a in actions] == [(0, 50, 1), (1, 50, 1), (2, 20, 1)]


def test_concurrency_is_fleet_wide_and_commands_go_out_at_full_width():
    w = wave(size=200, concurrency=60, next_chunk=1)
    # One command holds 50 slots: 10 free is below a full-width command (min(60, 50) = 50): wait.
    assert plan_dispatch(rollout(), w, [chunk(0, 50, concurrency=50)]) == []
    # It is down to 5 open invocations: 55 free, one command of 50 goes out with MaxConcurrency 50.
    assert plan_dispatch(rollout(), w, [chunk(0, 5, concurrency=50)]) == [DispatchChunk(0, 1, 50, 2)]


@given(
    size=st.integers(min_value=1, max_value=700),
    concurrency=st.integers(min_value=1, max_value=300),
    open_counts=st.lists(st.integers(min_value=0, max_value=50), max_size=8),
)
def test_in_flight_never_exceeds_the_wave_concurrency(size, concurrency, open_counts):
    chunks = [chunk(i, o, concurrency=min(concurrency, 50)) for i, o in enumerate(open_counts)]
    in_use = sum(c.slots_in_use for c in chunks)
    w = wave(size=max(size, 50 * len(chunks) + 1), concurrency=concurrency, next_chunk=len(chunks))
    actions = plan_dispatch(rollout(), w, chunks)
    if in_use <= concurrency:
        assert in_use + sum(a.max_concurrency for a in actions) <= concurrency
    assert all(a.max_concurrency >= 1 for a in actions)


def test_no_wave_starts_while_an_alarm_gate_is_in_alarm_or_missing():
    baking = rollout(state=RolloutState.BAKING, alarm_gates=("errors",), bake_until=NOW)
    assert decide_wave_start(baking, 1, NOW, alarm_states={"errors": "OK"}) == [StartWave(1)]
    assert decide_wave_start(baking, 1, NOW, alarm_states={"errors": "ALARM"}) == [
        Halt("alarm gate 'errors' is in ALARM before wave 1")
    ]
    assert isinstance(decide_wave_start(baking, 1, NOW, alarm_states={"errors": None})[0], Halt)


def test_no_wave_starts_while_the_budget_is_spent_or_a_calendar_is_closed():
    spent = rollout(state=RolloutState.BAKING, counts=counts(FAILED=3))
    assert isinstance(decide_wave_start(spent, 1, NOW, alarm_states={})[0], Halt)
    baking = rollout(state=RolloutState.BAKING)
    postponed = decide_wave_start(baking, 1, NOW, alarm_states={}, closed_calendars=["freeze"])
    assert isinstance(postponed[0], Postpone)


def test_a_repeated_or_early_timer_changes_nothing():
    running = rollout(state=RolloutState.RUNNING, current_wave=1)
    assert decide_wave_start(running, 1, NOW, alarm_states={}) == []
    early = rollout(state=RolloutState.BAKING, bake_until=NOW + timedelta(minutes=1))
    assert decide_wave_start(early, 1, NOW, alarm_states={}) == []
