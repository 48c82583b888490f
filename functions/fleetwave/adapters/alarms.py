"""CloudWatch alarm gates and change calendars: is it safe to start a wave now?"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class Gates:
    def __init__(self, cloudwatch: Any, ssm: Any) -> None:
        self.cloudwatch = cloudwatch
        self.ssm = ssm

    def alarm_states(self, names: Sequence[str]) -> dict[str, str | None]:
        """State of each named alarm (metric or composite); None for an alarm that does not exist."""
        states: dict[str, str | None] = {name: None for name in names}
        for start in range(0, len(names), 100):
            kwargs: dict[str, Any] = {
                "AlarmNames": list(names[start : start + 100]),
                "AlarmTypes": ["MetricAlarm", "CompositeAlarm"],
            }
            while True:
                response = self.cloudwatch.describe_alarms(**kwargs)
                for alarm in response.get("MetricAlarms", []) + response.get("CompositeAlarms", []):
                    states[alarm["AlarmName"]] = alarm["StateValue"]
                token = response.get("NextToken")
                if not token:
                    break
                kwargs["NextToken"] = token
        return states

    def closed_calendars(self, names: Sequence[str]) -> list[str]:
        """Change calendars (names or ARNs) that are CLOSED now (GetCalendarState)."""
        if not names:
            return []
        closed = []
        for name in names:
            state = self.ssm.get_calendar_state(CalendarNames=[name]).get("State")
            if state == "CLOSED":
                closed.append(name)
        return closed
