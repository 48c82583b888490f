"""CloudWatch alarm gates and change calendars: is it safe to start a wave now?"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from fleetwave.adapters.aws import error_code

# GetCalendarState's answer for a calendar that is not there (or not a change calendar).
_NO_CALENDAR = frozenset({"InvalidDocument", "InvalidDocumentType"})


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

    def calendar_states(self, names: Sequence[str]) -> dict[str, str | None]:
        """OPEN or CLOSED for each change calendar (name or ARN) now; None for a calendar that does not exist.

        One GetCalendarState call per calendar: given several, SSM answers one combined state and would not say which
        calendar is CLOSED.
        """
        states: dict[str, str | None] = {}
        for name in names:
            try:
                states[name] = str(self.ssm.get_calendar_state(CalendarNames=[name]).get("State", "")) or None
            except ClientError as error:
                if error_code(error) not in _NO_CALENDAR:
                    raise
                states[name] = None
        return states

    def alarm_tags(self, alarm_arn: str) -> dict[str, str]:
        """The alarm's tags (ListTagsForResource); none for an alarm that does not exist."""
        try:
            response = self.cloudwatch.list_tags_for_resource(ResourceARN=alarm_arn)
        except ClientError as error:
            if error_code(error) in {"ResourceNotFoundException", "ResourceNotFound", "InvalidParameterValue"}:
                return {}
            raise
        return {str(tag["Key"]): str(tag["Value"]) for tag in response.get("Tags", [])}
