"""What the simulated SSM service holds: the managed nodes, the commands, the sessions and the change calendars.

The Run Command model (`run_command`) changes it over virtual time; the API (`api`) reads it and asks the model for
every change; `FleetSimulator` owns one of each and serialises every access. This module imports neither of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .calendars import ChangeCalendars
from .clock import VirtualClock
from .model import Command, ManagedNode, Session


@dataclass
class SsmState:
    """One simulated account and region, as SSM sees it."""

    clock: VirtualClock
    region: str
    account_id: str
    nodes: dict[str, ManagedNode] = field(default_factory=dict)
    #: by CommandId, in the order they were sent
    commands: dict[str, Command] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    #: SSM Change Calendars (GetCalendarState)
    calendars: ChangeCalendars = field(init=False)

    def __post_init__(self) -> None:
        self.calendars = ChangeCalendars(self.clock)
