"""SSM Change Calendars for the fleet simulator: GetCalendarState, which moto does not implement.

A calendar is DEFAULT_OPEN (its events are CLOSED periods) or DEFAULT_CLOSED (its events are OPEN periods), as in
SSM. Several calendars asked at once are CLOSED when any of them is. Names or ARNs (``...:document/<name>``) are
accepted; an unknown calendar is an ``InvalidDocument`` error, as SSM answers.

    sim.calendars.create("prod-freeze")                        # DEFAULT_OPEN, no events: OPEN
    sim.calendars.add_event("prod-freeze", start, end)         # CLOSED from start (included) to end (excluded)
    sim.calendars.set_state("prod-freeze", "CLOSED")           # shortcut: CLOSED until set otherwise
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from .botocore_hook import SsmApiError
from .clock import VirtualClock

CalendarType = Literal["DEFAULT_OPEN", "DEFAULT_CLOSED"]


@dataclass
class ChangeCalendar:
    name: str
    calendar_type: CalendarType = "DEFAULT_OPEN"
    #: (start, end) periods in which the calendar is in the opposite of its default state
    events: list[tuple[datetime, datetime]] = field(default_factory=list)

    @property
    def default_state(self) -> str:
        return "OPEN" if self.calendar_type == "DEFAULT_OPEN" else "CLOSED"

    @property
    def event_state(self) -> str:
        return "CLOSED" if self.calendar_type == "DEFAULT_OPEN" else "OPEN"

    def state_at(self, at: datetime) -> str:
        return self.event_state if any(start <= at < end for start, end in self.events) else self.default_state

    def next_transition(self, at: datetime) -> datetime | None:
        edges = sorted(edge for start, end in self.events for edge in (start, end) if edge > at)
        current = self.state_at(at)
        return next((edge for edge in edges if self.state_at(edge) != current), None)


class ChangeCalendars:
    """The calendars of the simulated account."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self._calendars: dict[str, ChangeCalendar] = {}

    def create(self, name: str, calendar_type: CalendarType = "DEFAULT_OPEN") -> ChangeCalendar:
        calendar = ChangeCalendar(name, calendar_type)
        self._calendars[name] = calendar
        return calendar

    def add_event(self, name: str, start: datetime, end: datetime) -> None:
        if end <= start:
            raise ValueError("an event ends after it starts")
        self._calendar(name, create=True).events.append((start.astimezone(UTC), end.astimezone(UTC)))

    def set_state(self, name: str, state: Literal["OPEN", "CLOSED"]) -> None:
        """Make a calendar OPEN or CLOSED from now on (its events are dropped)."""
        self._calendars[name] = ChangeCalendar(name, "DEFAULT_OPEN" if state == "OPEN" else "DEFAULT_CLOSED")

    def state(self, name: str, at: datetime | None = None) -> str:
        return self._calendar(name).state_at(at or self.clock.now())

    def _calendar(self, name_or_arn: str, *, create: bool = False) -> ChangeCalendar:
        name = name_or_arn.split("document/", 1)[1] if name_or_arn.startswith("arn:") else name_or_arn
        if name not in self._calendars:
            if create:
                return self.create(name)
            raise SsmApiError("InvalidDocument", f"Document {name} does not exist.")
        return self._calendars[name]

    # --- the API ---------------------------------------------------------------------------------------------------
    def get_calendar_state(self, body: dict[str, Any]) -> dict[str, Any]:
        names = body.get("CalendarNames") or []
        if not names:
            raise SsmApiError("ValidationException", "1 validation error detected: CalendarNames must not be empty.")
        at = self.clock.now()
        if body.get("AtTime"):
            at = datetime.fromisoformat(str(body["AtTime"]).replace("Z", "+00:00")).astimezone(UTC)
        calendars = [self._calendar(str(name)) for name in names]
        state = "CLOSED" if any(c.state_at(at) == "CLOSED" for c in calendars) else "OPEN"
        transitions = [t for t in (c.next_transition(at) for c in calendars) if t is not None]
        response: dict[str, Any] = {"State": state, "AtTime": _iso(at)}
        if transitions:
            response["NextTransitionTime"] = _iso(min(transitions))
        return response


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
