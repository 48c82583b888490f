"""EventBridge Scheduler: one-time timers (bake time, postponed waves) that invoke a function and delete themselves."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from fleetwave.adapters.aws import error_code


class Timers:
    def __init__(
        self, scheduler: Any, *, group: str, role_arn: str, target_arn: str, dead_letter_arn: str = ""
    ) -> None:
        self.scheduler = scheduler
        self.group = group
        self.role_arn = role_arn
        self.target_arn = target_arn
        # Where Scheduler puts an invocation it could not deliver after its retries (SQS).
        self.dead_letter_arn = dead_letter_arn

    def for_target(self, *, role_arn: str, target_arn: str) -> Timers:
        """The same group and dead-letter queue, another target (and the role Scheduler assumes to reach it)."""
        return Timers(
            self.scheduler,
            group=self.group,
            role_arn=role_arn,
            target_arn=target_arn,
            dead_letter_arn=self.dead_letter_arn,
        )

    @staticmethod
    def name_for(rollout_id: str, wave: int, attempt: str = "") -> str:
        # Scheduler names: at most 64 characters of [0-9a-zA-Z-_.]
        return f"fw-{rollout_id}-w{wave}{attempt}"[:64]

    def fire_at(self, name: str, at: datetime, payload: dict[str, Any]) -> None:
        """Create a one-time schedule; an existing one with that name means a retry already created it."""
        expression = f"at({at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S')})"
        target: dict[str, Any] = {
            "Arn": self.target_arn,
            "RoleArn": self.role_arn,
            "Input": json.dumps(payload),
            "RetryPolicy": {"MaximumRetryAttempts": 10, "MaximumEventAgeInSeconds": 86400},
        }
        if self.dead_letter_arn:
            target["DeadLetterConfig"] = {"Arn": self.dead_letter_arn}
        try:
            self.scheduler.create_schedule(
                Name=name,
                GroupName=self.group,
                ScheduleExpression=expression,
                ScheduleExpressionTimezone="UTC",
                FlexibleTimeWindow={"Mode": "OFF"},
                ActionAfterCompletion="DELETE",
                Target=target,
            )
        except ClientError as error:
            if error_code(error) != "ConflictException":
                raise

    def cancel(self, name: str) -> None:
        try:
            self.scheduler.delete_schedule(Name=name, GroupName=self.group)
        except ClientError as error:
            if error_code(error) != "ResourceNotFoundException":
                raise
