"""A virtual clock shared by the fleet simulator and the rest of the local twin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)


class VirtualClock:
    """Virtual time that only moves when told to.

    Every time the simulator reports (requested, started, ended, event times) comes from here, so a
    four-hour rollout runs in however long the code takes, and runs the same way every time.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = _as_utc(start or DEFAULT_START)

    def now(self) -> datetime:
        """The current virtual time: tz-aware, UTC."""
        return self._now

    def advance_to(self, when: datetime) -> datetime:
        """Move to `when`. Moving backwards is an error; moving to the current time is a no-op."""
        when = _as_utc(when)
        if when < self._now:
            raise ValueError(f"virtual time cannot go back: {when.isoformat()} < {self._now.isoformat()}")
        self._now = when
        return self._now

    def advance(self, seconds: float) -> datetime:
        """Move forward by `seconds` (non-negative)."""
        if seconds < 0:
            raise ValueError("virtual time cannot go back")
        return self.advance_to(self._now + timedelta(seconds=seconds))

    def __repr__(self) -> str:
        return f"VirtualClock({self._now.isoformat()})"


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("VirtualClock needs tz-aware datetimes (use datetime.UTC)")
    return value.astimezone(UTC)
