"""EventBridge Scheduler's one-time schedules (bake timers), fired on the virtual clock.

Scheduler invokes the target function (or, for a queue target, sends the input to the queue) with the schedule's
input at the schedule's `at(...)` time, then deletes the schedule (ActionAfterCompletion DELETE); the twin does the
same when its clock reaches that time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fleetwave.constants import SCHEDULER_GROUP_NAME

from fleetwave_local.twin.account import FUNCTION_KEYS

_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")


class Schedules:
    """The schedules of fleetwave's schedule group, read through `plumbing` and fired through `invoke`."""

    def __init__(
        self,
        plumbing: Callable[[str], Any],
        invoke: Callable[[str, dict[str, Any]], Any],
        now: Callable[[], datetime],
    ) -> None:
        self._plumbing = plumbing
        self._invoke = invoke
        self._now = now
        #: name -> (when it is due, the schedule as GetSchedule answered)
        self._schedules: dict[str, tuple[datetime, dict[str, Any]]] = {}

    def pending(self) -> list[tuple[datetime, dict[str, Any]]]:
        """One-time schedules in the group, soonest first (details fetched once per schedule)."""
        scheduler = self._plumbing("scheduler")
        names = {s["Name"] for s in scheduler.list_schedules(GroupName=SCHEDULER_GROUP_NAME).get("Schedules", [])}
        for gone in set(self._schedules) - names:
            del self._schedules[gone]
        for name in names - set(self._schedules):
            schedule = scheduler.get_schedule(Name=name, GroupName=SCHEDULER_GROUP_NAME)
            match = _AT.match(schedule["ScheduleExpression"])
            if match:
                self._schedules[name] = (datetime.fromisoformat(match.group(1) + "+00:00"), schedule)
        return sorted(self._schedules.values(), key=lambda item: item[0])

    def fire_due(self) -> int:
        """Run every schedule whose time has come (on the virtual clock), as Scheduler would; returns how many."""
        fired = 0
        scheduler = self._plumbing("scheduler")
        for at, schedule in self.pending():
            if at > self._now():
                break
            target = schedule["Target"]
            # Scheduler deletes a one-time schedule after it runs (ActionAfterCompletion DELETE).
            scheduler.delete_schedule(Name=schedule["Name"], GroupName=SCHEDULER_GROUP_NAME)
            if target["Arn"].startswith("arn:aws:sqs:"):
                # A queue target (verification timers): the input becomes a message on that queue.
                sqs = self._plumbing("sqs")
                queue_url = sqs.get_queue_url(QueueName=target["Arn"].rsplit(":", 1)[-1])["QueueUrl"]
                sqs.send_message(QueueUrl=queue_url, MessageBody=target.get("Input") or "{}")
            else:
                self._invoke(FUNCTION_KEYS[target["Arn"].rsplit(":", 1)[-1]], json.loads(target.get("Input") or "{}"))
            fired += 1
        return fired
