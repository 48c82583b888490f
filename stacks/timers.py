"""Timers: fleetwave's Scheduler group, the role Scheduler assumes, the reconciler and the scheduled specs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from fleetwave import constants

from .config import ScheduledSpec
from .names import RECONCILE_SCHEDULE_NAME, spec_schedule_name
from .permissions import SCHEDULER_SERVICE, invoke

# Scheduler retries a target whose invocation call fails (throttled, unavailable); a function's own errors are
# handled by its asynchronous invocation config (on-failure destination).
SCHEDULE_RETRY_ATTEMPTS = 3
SCHEDULE_MAX_EVENT_AGE = Duration.hours(1)


def rate_expression(minutes: int) -> str:
    return f"rate({minutes} minute{'s' if minutes != 1 else ''})"


class Timers(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, delivery_dlq: sqs.IQueue) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.group_name = constants.SCHEDULER_GROUP_NAME
        self._delivery_dlq = delivery_dlq

        self.group = scheduler.CfnScheduleGroup(self, "Group", name=self.group_name)
        group_arn = stack.format_arn(service="scheduler", resource="schedule-group", resource_name=self.group_name)

        self._group_arn = group_arn
        self.role = self.scheduler_role(
            self, "SchedulerRole", "Assumed by EventBridge Scheduler to invoke fleetwave's functions"
        )

    def scheduler_role(self, scope: Construct, construct_id: str, description: str) -> iam.Role:
        """A role only schedules of fleetwave's group, in this account, can make Scheduler act as; it may dead-letter
        what it could not deliver."""
        stack = Stack.of(self)
        role = iam.Role(
            scope,
            construct_id,
            description=description,
            assumed_by=iam.ServicePrincipal(
                SCHEDULER_SERVICE,
                conditions={"StringEquals": {"aws:SourceAccount": stack.account, "aws:SourceArn": self._group_arn}},
            ),
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="DeadLetterUndeliveredSchedules",
                actions=["sqs:SendMessage"],
                resources=[self._delivery_dlq.queue_arn],
            )
        )
        return role

    def allow_invoke(self, functions: Iterable[lambda_.IFunction]) -> None:
        for statement in invoke(function.function_arn for function in functions).statements:
            self.role.add_to_policy(statement)

    def add_reconciler(self, function: lambda_.IFunction) -> scheduler.CfnSchedule:
        return self._schedule(
            "ReconcileSchedule",
            name=RECONCILE_SCHEDULE_NAME,
            description="fleetwave: poll invocations that have had no status news (lost events)",
            expression=rate_expression(constants.RECONCILE_EVERY_MINUTES),
            timezone=None,
            target=function,
            payload={"trigger": "reconcile"},
        )

    def add_spec_schedules(self, specs: Iterable[ScheduledSpec], start_rollout: lambda_.IFunction) -> None:
        for scheduled in specs:
            self._schedule(
                f"SpecSchedule-{scheduled.spec.name}",
                name=spec_schedule_name(scheduled.spec.name),
                description=f"fleetwave: start {scheduled.source}"[:512],
                expression=scheduled.expression,
                timezone=scheduled.timezone,
                target=start_rollout,
                payload=scheduled.schedule_input(),
            )

    def _schedule(
        self,
        construct_id: str,
        *,
        name: str,
        description: str,
        expression: str,
        timezone: str | None,
        target: lambda_.IFunction,
        payload: Mapping[str, Any],
    ) -> scheduler.CfnSchedule:
        schedule = scheduler.CfnSchedule(
            self,
            construct_id,
            name=name,
            group_name=self.group_name,
            description=description,
            schedule_expression=expression,
            schedule_expression_timezone=timezone,
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            state="ENABLED",
            target=scheduler.CfnSchedule.TargetProperty(
                arn=target.function_arn,
                role_arn=self.role.role_arn,
                input=json.dumps(payload, separators=(",", ":")),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_retry_attempts=SCHEDULE_RETRY_ATTEMPTS,
                    maximum_event_age_in_seconds=int(SCHEDULE_MAX_EVENT_AGE.to_seconds()),
                ),
                dead_letter_config=scheduler.CfnSchedule.DeadLetterConfigProperty(arn=self._delivery_dlq.queue_arn),
            ),
        )
        # The group is named by a literal, so CloudFormation cannot infer that the schedule needs it first.
        schedule.node.add_dependency(self.group)
        return schedule
