"""Monitoring: one dashboard, and alarms (to the summary topic) on what needs a human."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .names import DASHBOARD_NAME, alarm_name

PERIOD: Final = Duration.minutes(5)
# Status events older than this mean track_status is failing or throttled: rollouts stop moving.
OLDEST_STATUS_MESSAGE_SECONDS: Final = 600


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Mapping[str, lambda_.Function],
        status_queue: sqs.IQueue,
        dead_letter_queues: Mapping[str, sqs.IQueue],
        alarm_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self._action = actions.SnsAction(alarm_topic)
        self.alarms: list[cloudwatch.Alarm] = []

        for subject, queue in dead_letter_queues.items():
            self._alarm(
                f"{subject}-dlq-not-empty",
                queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum"),
                threshold=1,
                description=f"fleetwave: messages wait in {subject} dead-letter queue; inspect and redrive them",
            )

        oldest = status_queue.metric_approximate_age_of_oldest_message(period=PERIOD, statistic="Maximum")
        self._alarm(
            "status-queue-stale",
            oldest,
            threshold=OLDEST_STATUS_MESSAGE_SECONDS,
            evaluation_periods=2,
            description="fleetwave: SSM status events wait too long; track_status is failing or throttled",
        )

        for key, function in functions.items():
            subject = key.replace("_", "-")
            self._alarm(
                f"{subject}-errors",
                function.metric_errors(period=PERIOD, statistic="Sum"),
                threshold=1,
                description=f"fleetwave: {key} reported errors",
            )
            self._alarm(
                f"{subject}-throttles",
                function.metric_throttles(period=PERIOD, statistic="Sum"),
                threshold=1,
                description=f"fleetwave: {key} was throttled (reserved concurrency or account limit)",
            )

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=DASHBOARD_NAME)
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="fleetwave alarms", alarms=list(self.alarms), width=24, height=4)
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Status queue",
                left=[status_queue.metric_approximate_number_of_messages_visible(period=PERIOD)],
                right=[oldest],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Dead-letter queues",
                left=[
                    queue.metric_approximate_number_of_messages_visible(period=PERIOD, label=subject)
                    for subject, queue in dead_letter_queues.items()
                ],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Invocations",
                left=[fn.metric_invocations(period=PERIOD, label=key) for key, fn in functions.items()],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Errors and throttles",
                left=[fn.metric_errors(period=PERIOD, label=f"{key} errors") for key, fn in functions.items()],
                right=[fn.metric_throttles(period=PERIOD, label=f"{key} throttles") for key, fn in functions.items()],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Duration p95",
                left=[fn.metric_duration(period=PERIOD, statistic="p95", label=key) for key, fn in functions.items()],
                width=8,
            ),
        )

    def _alarm(
        self,
        subject: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        description: str,
        evaluation_periods: int = 1,
    ) -> cloudwatch.Alarm:
        construct_id = "".join(part.title() for part in subject.split("-")) + "Alarm"
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            alarm_name=alarm_name(subject),
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(self._action)
        self.alarms.append(alarm)
        return alarm
