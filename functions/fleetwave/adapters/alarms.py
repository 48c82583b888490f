"""CloudWatch alarm gates and change calendars: is it safe to start a wave now?"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from fleetwave.adapters.aws import error_code
from fleetwave.core.remediation import AlarmDescription

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

    def describe_alarm(self, name: str) -> AlarmDescription | None:
        """The alarm as CloudWatch holds it in this account and region now (DescribeAlarms); None if there is none.

        A metric alarm's dimensions come from its own definition (Dimensions, or each metric of a metric math
        alarm); a composite alarm has none."""
        response = self.cloudwatch.describe_alarms(AlarmNames=[name], AlarmTypes=["MetricAlarm", "CompositeAlarm"])
        for alarm in response.get("MetricAlarms", []):
            if alarm.get("AlarmName") != name:
                continue
            dimensions: dict[str, list[str]] = {}
            sources = [alarm.get("Dimensions", [])] + [
                m.get("MetricStat", {}).get("Metric", {}).get("Dimensions", []) for m in alarm.get("Metrics", [])
            ]
            for source in sources:
                for dimension in source:
                    values = dimensions.setdefault(str(dimension["Name"]), [])
                    if str(dimension["Value"]) not in values:
                        values.append(str(dimension["Value"]))
            return AlarmDescription(
                name=name,
                arn=str(alarm.get("AlarmArn", "")),
                kind="metric",
                state=str(alarm.get("StateValue", "")),
                dimensions={key: tuple(values) for key, values in dimensions.items()},
            )
        for alarm in response.get("CompositeAlarms", []):
            if alarm.get("AlarmName") == name:
                return AlarmDescription(
                    name=name, arn=str(alarm.get("AlarmArn", "")), kind="composite", state=str(alarm.get("StateValue"))
                )
        return None

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
