"""The fleetwave stack: composes the constructs, nothing else."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack, Tags
from constructs import Construct
from fleetwave import constants

from .config import FleetwaveConfig
from .encryption import Encryption
from .functions import Functions, status_queue_visibility_timeout
from .ingestion import Ingestion
from .monitoring import Monitoring
from .notifications import Notifications
from .state import State
from .timers import Timers


class FleetwaveStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: FleetwaveConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, description="fleetwave: wave-based SSM Run Command rollouts", **kwargs)
        self.config = config
        Tags.of(self).add("app", constants.RESOURCE_PREFIX)

        self.encryption = Encryption(self, "Encryption")
        self.state = State(self, "State")
        self.ingestion = Ingestion(
            self, "Ingestion", key=self.encryption.key, visibility_timeout=status_queue_visibility_timeout()
        )
        self.notifications = Notifications(
            self,
            "Notifications",
            key=self.encryption.key,
            emails=config.notification_emails,
            delivery_dlq=self.ingestion.delivery_dlq,
        )
        self.timers = Timers(self, "Timers", delivery_dlq=self.ingestion.delivery_dlq)
        self.functions = Functions(
            self,
            "Functions",
            config=config,
            table=self.state.table,
            ingestion=self.ingestion,
            notifications=self.notifications,
            timers=self.timers,
            key=self.encryption.key,
        )
        functions = self.functions.functions
        self.timers.allow_invoke([functions["advance_wave"], functions["start_rollout"], functions["reconcile"]])
        self.timers.add_reconciler(functions["reconcile"])
        self.timers.add_spec_schedules(config.scheduled_specs, functions["start_rollout"])

        self.monitoring = Monitoring(
            self,
            "Monitoring",
            functions=functions,
            status_queue=self.ingestion.status_queue,
            dead_letter_queues={
                "status": self.ingestion.status_dlq,
                "delivery": self.ingestion.delivery_dlq,
                "failed-invocations": self.functions.failed_invocations,
            },
            alarm_topic=self.notifications.summary_topic,
        )

        # What the CLI and operators look up.
        outputs = {
            constants.OUTPUT_START_FUNCTION: functions["start_rollout"].function_name,
            constants.OUTPUT_CANCEL_FUNCTION: functions["cancel_rollout"].function_name,
            constants.OUTPUT_TABLE_NAME: self.state.table.table_name,
            constants.OUTPUT_SUMMARY_TOPIC: self.notifications.summary_topic.topic_arn,
            constants.OUTPUT_EVENT_BUS: self.notifications.event_bus.event_bus_name,
            "StatusQueueUrl": self.ingestion.status_queue.queue_url,
            "DashboardName": self.monitoring.dashboard.dashboard_name,
        }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)
