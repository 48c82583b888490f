"""When a spec may start (blackout windows, calendars, requirements, the spec lock) and what a wave start changes
(sessions, connection status). Pure: no AWS."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from fleetwave.core.model import Rollout, RolloutState
from fleetwave.core.planner import ActiveSession, busy_nodes, check_wave, sessions_to_terminate
from fleetwave.core.spec import BlackoutWindow, RequirementSpec, SessionsSpec, parse_spec
from fleetwave.core.windows import (
    BlockKind,
    active_blackout,
    blackout_block,
    calendar_block,
    requirement_block,
    requirement_problem,
    spec_lock_is_free,
    window_covers,
)

# 2026-01-02 is a Friday.
FRIDAY = datetime(2026, 1, 2, tzinfo=UTC)


def spec(**changes):
    base = {
        "name": "prod",
        "document": {"name": "AWS-RunShellScript", "parameters": {"commands": ["true"]}},
        "targets": {"tags": {"env": "prod"}},
    }
    return parse_spec({**base, **changes})


def rollout(rollout_id: str, state: RolloutState, ended_at: datetime | None) -> Rollout:
    return Rollout(
        rollout_id=rollout_id,
        spec_name="dev",
        state=state,
        current_wave=0,
        wave_count=1,
        target_count=1,
        skipped_count=0,
        budget_allowed=0,
        budget_statuses=frozenset(),
        document_name="AWS-RunShellScript",
        document_version="1",
        document_hash="",
        started_at=(ended_at or FRIDAY) - timedelta(hours=1),
        bake_time=0,
        ended_at=ended_at,
    )


# ---------------------------------------------------------------------------------------- blackout windows
def test_a_daytime_window_covers_its_start_but_not_its_end():
    window = BlackoutWindow(start=time(9), end=time(17))
    assert window_covers(window, FRIDAY.replace(hour=9))
    assert window_covers(window, FRIDAY.replace(hour=16, minute=59))
    assert not window_covers(window, FRIDAY.replace(hour=17))
    assert not window_covers(window, FRIDAY.replace(hour=8, minute=59))


def test_a_window_across_midnight_belongs_to_the_day_it_starts():
    # Given Friday night 22:00 to 02:00
    window = BlackoutWindow(start=time(22), end=time(2), days=["FRI"])
    # Then it covers Friday 23:00 and Saturday 01:00, not Saturday 23:00 nor Friday 01:00
    assert window_covers(window, FRIDAY.replace(hour=23))
    assert window_covers(window, FRIDAY.replace(hour=1) + timedelta(days=1))
    assert not window_covers(window, FRIDAY.replace(hour=23) + timedelta(days=1))
    assert not window_covers(window, FRIDAY.replace(hour=1))


def test_equal_start_and_end_cover_the_whole_listed_day():
    window = BlackoutWindow(start=time(0), end=time(0), days=["SAT", "SUN"])
    assert window_covers(window, FRIDAY + timedelta(days=1, hours=13))
    assert not window_covers(window, FRIDAY.replace(hour=13))


def test_windows_are_read_in_the_schedules_time_zone():
    # Given a 02:00-04:00 window in Paris (UTC+1 in winter, UTC+2 in summer)
    windows = [BlackoutWindow(start=time(2), end=time(4))]
    # Then 01:30 UTC in January is 02:30 in Paris: inside; 03:30 UTC is 04:30: outside
    assert active_blackout(windows, FRIDAY.replace(hour=1, minute=30), "Europe/Paris") is not None
    assert active_blackout(windows, FRIDAY.replace(hour=3, minute=30), "Europe/Paris") is None
    # And in July 01:30 UTC is 03:30 in Paris: inside; 02:30 UTC is 04:30: outside
    july = datetime(2026, 7, 3, tzinfo=UTC)
    assert active_blackout(windows, july.replace(hour=1, minute=30), "Europe/Paris") is not None
    assert active_blackout(windows, july.replace(hour=2, minute=30), "Europe/Paris") is None


def test_a_spec_inside_a_blackout_window_is_blocked_with_the_window_named():
    blackout = {"start": "22:00", "end": "06:00", "days": ["FRI"]}
    scheduled = spec(schedule={"cron": "0 23 ? * FRI *", "timezone": "America/New_York"}, blackout_windows=[blackout])
    # 2026-01-03 04:00 UTC is Friday 23:00 in New York
    blocked = blackout_block(scheduled, datetime(2026, 1, 3, 4, tzinfo=UTC))
    assert blocked is not None and blocked.kind is BlockKind.BLACKOUT
    assert blocked.reason == "inside blackout window 22:00-06:00 FRI (America/New_York)"
    # And Friday 23:00 UTC is 18:00 in New York: free
    assert blackout_block(scheduled, FRIDAY.replace(hour=23)) is None


# ---------------------------------------------------------------------------------------- calendars
def test_a_closed_or_missing_calendar_blocks():
    guarded = spec(calendars=["prod-freeze", "holidays"])
    assert calendar_block(guarded, {"prod-freeze": "OPEN", "holidays": "OPEN"}) is None
    closed = calendar_block(guarded, {"prod-freeze": "CLOSED", "holidays": "OPEN"})
    assert closed is not None and closed.reason == "change calendar prod-freeze is CLOSED"
    missing = calendar_block(guarded, {"prod-freeze": "OPEN", "holidays": None})
    assert missing is not None and missing.reason == "change calendar holidays does not exist"


# ---------------------------------------------------------------------------------------- dev before prod
@pytest.mark.parametrize(
    ("rollouts", "expected"),
    [
        ([], "requires a SUCCEEDED rollout of 'dev' within 7 day(s); it has no finished rollout"),
        (
            [
                rollout("r1", RolloutState.SUCCEEDED, FRIDAY - timedelta(days=2)),
                rollout("r2", RolloutState.HALTED, FRIDAY),
            ],
            "requires a SUCCEEDED rollout of 'dev' within 7 day(s); its last rollout r2 ended HALTED",
        ),
        (
            [rollout("r1", RolloutState.SUCCEEDED, FRIDAY - timedelta(days=8))],
            "requires a SUCCEEDED rollout of 'dev' within 7 day(s); its last success r1 ended 2025-12-25 00:00 UTC",
        ),
        # A newer dev rollout still running does not count either way
        (
            [
                rollout("r1", RolloutState.SUCCEEDED, FRIDAY - timedelta(days=1)),
                rollout("r2", RolloutState.RUNNING, None),
            ],
            None,
        ),
    ],
)
def test_the_required_specs_latest_finished_rollout_decides(rollouts, expected):
    assert requirement_problem(RequirementSpec(spec="dev", within_days=7), rollouts, FRIDAY) == expected


def test_a_spec_without_requirement_is_never_blocked_by_one():
    assert requirement_block(spec(), [], FRIDAY) is None
    blocked = requirement_block(spec(requires={"spec": "dev", "within_days": 3}), [], FRIDAY)
    assert blocked is not None and blocked.kind is BlockKind.REQUIREMENT


# ---------------------------------------------------------------------------------------- the spec lock
def test_the_spec_lock_is_free_once_its_holder_ended_or_never_existed_past_the_grace():
    def free(holder: Rollout | None, after: timedelta) -> bool:
        grace = timedelta(minutes=10)
        return spec_lock_is_free(holder, holder_id="r1", acquired_at=FRIDAY, now=FRIDAY + after, grace=grace)

    assert not free(rollout("r1", RolloutState.RUNNING, None), timedelta(days=3))
    assert free(rollout("r1", RolloutState.COMPLETED_WITH_ERRORS, FRIDAY), timedelta(seconds=1))
    # A holder never recorded: its start may still be running (grace), or it crashed (after the grace)
    assert not free(None, timedelta(minutes=2))
    assert free(None, timedelta(minutes=10))


# ---------------------------------------------------------------------------------------- at wave start
def sessions(*entries: tuple[str, str, int]) -> list[ActiveSession]:
    return [ActiveSession(sid, target, FRIDAY - timedelta(minutes=age)) for sid, target, age in entries]


def test_only_sessions_older_than_the_limit_are_terminated_and_the_rest_keep_their_nodes_busy():
    policy = SessionsSpec.model_validate({"mode": "terminate_older_than", "older_than": "2h"})
    active = sessions(("s-old", "i-1", 180), ("s-new", "i-2", 10))
    doomed = sessions_to_terminate(policy, active, FRIDAY)
    assert [s.session_id for s in doomed] == ["s-old"]
    assert busy_nodes(policy, active, terminated={"s-old"}) == {"i-2"}
    # In defer mode nothing is terminated; in ignore mode nothing is busy
    assert sessions_to_terminate(SessionsSpec(mode="defer"), active, FRIDAY) == []
    assert busy_nodes(SessionsSpec(mode="ignore"), active) == set()


def test_a_wave_check_defers_busy_nodes_skips_unconnected_ones_and_keeps_the_order():
    unreachable = {"i-3": "not connected (GetConnectionStatus)"}
    check = check_wave(["i-1", "i-2", "i-3", "i-4"], busy={"i-2"}, unreachable=unreachable, can_defer=True)
    assert check.keep == ("i-1", "i-4")
    assert check.deferred == ("i-2",)
    assert [(s.instance_id, s.reason) for s in check.skipped] == [("i-3", "not connected (GetConnectionStatus)")]
    # The deferred wave itself defers nothing further: its busy nodes run
    last = check_wave(["i-1", "i-2"], busy={"i-2"}, unreachable={}, can_defer=False)
    assert last.keep == ("i-1", "i-2") and not last.changed
