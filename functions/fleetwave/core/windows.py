"""When a spec may start: blackout windows, change calendars, dev-before-prod requirements, one run at a time. Pure.

The service layer gathers the facts one check at a time, cheapest first (the clock, GetCalendarState, the required
spec's last rollouts, the spec lock's holder); a StartBlocked answer means "do not start, notify instead".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from fleetwave.core.model import Rollout, RolloutState
from fleetwave.core.spec import BlackoutWindow, RequirementSpec, RolloutSpec

DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


class BlockKind(StrEnum):
    BLACKOUT = "blackout_window"
    CALENDAR = "change_calendar"
    REQUIREMENT = "requirement"
    RUNNING = "already_running"


@dataclass(frozen=True)
class StartBlocked:
    """Why a start is skipped (the notice and the start_rollout answer carry ``reason``)."""

    kind: BlockKind
    reason: str


def _clock_time(value: time) -> time:
    # Windows are wall-clock times in the schedule's time zone: an offset written in the spec would be ambiguous.
    return value.replace(tzinfo=None)


def window_covers(window: BlackoutWindow, local: datetime) -> bool:
    """Whether ``local`` (a wall-clock time in the window's time zone) falls inside the window.

    ``days`` lists the days a window *starts* on (empty: every day). A window whose end is before its start crosses
    midnight: ``22:00-02:00`` on FRI covers Friday 22:00 to Saturday 02:00. Start equal to end covers the whole day.
    The start is inside the window, the end is not.
    """
    start, end, now = _clock_time(window.start), _clock_time(window.end), local.time().replace(tzinfo=None)
    days: set[str] = set(window.days) or set(DAYS)
    today = DAYS[local.weekday()]
    yesterday = DAYS[(local.weekday() - 1) % 7]
    if start == end:
        return today in days
    if start < end:
        return today in days and start <= now < end
    return (today in days and now >= start) or (yesterday in days and now < end)


def active_blackout(windows: Iterable[BlackoutWindow], at: datetime, timezone: str) -> BlackoutWindow | None:
    """The first window covering ``at`` (an aware datetime) in ``timezone``, or None."""
    local = at.astimezone(ZoneInfo(timezone))
    return next((window for window in windows if window_covers(window, local)), None)


def describe_window(window: BlackoutWindow, timezone: str) -> str:
    days = ",".join(window.days) if window.days else "every day"
    return f"{_clock_time(window.start):%H:%M}-{_clock_time(window.end):%H:%M} {days} ({timezone})"


def spec_timezone(spec: RolloutSpec) -> str:
    """Blackout windows are read in the schedule's time zone (UTC for a spec without a schedule)."""
    return spec.schedule.timezone if spec.schedule is not None else "UTC"


def requirement_problem(requirement: RequirementSpec, rollouts: Sequence[Rollout], now: datetime) -> str | None:
    """Why ``requirement`` is not met by the required spec's rollouts (any order), or None when it is.

    The required spec's latest *ended* rollout decides: it must have SUCCEEDED, and ended within ``within_days``.
    A rollout of it still running does not count either way (it proves nothing yet).
    """
    wanted = f"a SUCCEEDED rollout of {requirement.spec!r} within {requirement.within_days} day(s)"
    ended = [r for r in rollouts if r.state.is_terminal]
    if not ended:
        return f"requires {wanted}; it has no finished rollout"
    latest = max(ended, key=lambda r: r.ended_at or r.started_at)
    if latest.state is not RolloutState.SUCCEEDED:
        return f"requires {wanted}; its last rollout {latest.rollout_id} ended {latest.state.value}"
    ended_at = latest.ended_at or latest.started_at
    if now - ended_at > timedelta(days=requirement.within_days):
        return f"requires {wanted}; its last success {latest.rollout_id} ended {ended_at:%Y-%m-%d %H:%M} UTC"
    return None


def blackout_block(spec: RolloutSpec, now: datetime) -> StartBlocked | None:
    """Inside one of the spec's blackout windows (read in the schedule's time zone)?"""
    timezone = spec_timezone(spec)
    window = active_blackout(spec.blackout_windows, now, timezone)
    if window is None:
        return None
    return StartBlocked(BlockKind.BLACKOUT, f"inside blackout window {describe_window(window, timezone)}")


def calendar_block(spec: RolloutSpec, states: Mapping[str, str | None]) -> StartBlocked | None:
    """Any of the spec's change calendars CLOSED, or missing (no start unguarded)? ``states``: name -> OPEN, CLOSED
    or None (GetCalendarState does not know the calendar)."""
    missing = sorted(name for name in spec.calendars if states.get(name) is None)
    if missing:
        return StartBlocked(BlockKind.CALENDAR, f"change calendar {', '.join(missing)} does not exist")
    closed = sorted(name for name in spec.calendars if states.get(name) == "CLOSED")
    if closed:
        return StartBlocked(BlockKind.CALENDAR, f"change calendar {', '.join(closed)} is CLOSED")
    return None


def requirement_block(spec: RolloutSpec, required_rollouts: Sequence[Rollout], now: datetime) -> StartBlocked | None:
    """The spec's dev-before-prod requirement unmet by the required spec's rollouts?"""
    if spec.requires is None:
        return None
    problem = requirement_problem(spec.requires, required_rollouts, now)
    return StartBlocked(BlockKind.REQUIREMENT, problem) if problem else None


def spec_lock_is_free(
    holder: Rollout | None, *, holder_id: str, acquired_at: datetime, now: datetime, grace: timedelta
) -> bool:
    """Whether the rollout holding a spec's lock no longer keeps another rollout of that spec from starting.

    The lock is never released explicitly, so no crash can leak it: it is free once its holder ended, or when its
    holder never came to exist (the starter crashed between taking the lock and recording the rollout) and the
    grace period, longer than a start can take, has passed.
    """
    if holder is not None:
        return holder.rollout_id == holder_id and holder.state.is_terminal
    return now - acquired_at >= grace


def running_reason(spec_name: str, holder: Rollout | None, holder_id: str) -> str:
    if holder is None:
        return f"a rollout of {spec_name!r} ({holder_id}) is being started"
    return f"rollout {holder.rollout_id} of {spec_name!r} is still {holder.state.value}"
