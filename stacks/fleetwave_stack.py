"""The fleetwave stack: composes the constructs, nothing else."""

from __future__ import annotations

from typing import Any

from aws_cdk import Annotations, CfnOutput, Stack, Tags
from constructs import Construct
from fleetwave import constants

from .config import KEY_ALLOWED_DOCUMENTS, KEY_INSTANCE_TAG_CONDITION, FleetwaveConfig
from .documents import Documents
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

        self._warn_about_unsafe_choices(config)
        self.encryption = Encryption(self, "Encryption")
        self.documents = Documents(self, "Documents", config=config)
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

        dead_letter_queues = {
            "status": self.ingestion.status_dlq,
            "delivery": self.ingestion.delivery_dlq,
            "failed-invocations": self.functions.failed_invocations,
        }
        if self.functions.remediation is not None:
            dead_letter_queues["alarm"] = self.functions.remediation.dlq
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            functions=functions,
            status_queue=self.ingestion.status_queue,
            dead_letter_queues=dead_letter_queues,
            alarm_topic=self.notifications.summary_topic,
        )
        # Who may publish to the summary topic: notify, fleetwave's own alarms, rules on fleetwave's bus.
        self.notifications.restrict_publishers(
            publisher_role=functions["notify"].role, alarm_arns=[alarm.alarm_arn for alarm in self.monitoring.alarms]
        )

        # What the CLI and operators look up.
        operator = functions["operator"]
        outputs = {
            constants.OUTPUT_OPERATOR_URL: self.functions.operator_url.url,
            constants.OUTPUT_OPERATOR_POLICY: self.functions.operator_policy.managed_policy_arn,
            constants.OUTPUT_START_FUNCTION: functions["start_rollout"].function_name,
            # Cancelling goes through the operator function now (its URL); the output keeps its name.
            constants.OUTPUT_CANCEL_FUNCTION: operator.function_name,
            constants.OUTPUT_TABLE_NAME: self.state.table.table_name,
            constants.OUTPUT_SUMMARY_TOPIC: self.notifications.summary_topic.topic_arn,
            constants.OUTPUT_EVENT_BUS: self.notifications.event_bus.event_bus_name,
            "StatusQueueUrl": self.ingestion.status_queue.queue_url,
            "DashboardName": self.monitoring.dashboard.dashboard_name,
        }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)

    def _warn_about_unsafe_choices(self, config: FleetwaveConfig) -> None:
        """Opting out of a safe default is allowed, and said out loud at every synth."""
        annotations = Annotations.of(self)
        for name in config.free_form_documents:
            annotations.add_warning_v2(
                "fleetwave:freeFormDocument",
                f"{KEY_ALLOWED_DOCUMENTS} allows {name}, which runs whatever its parameters say: whoever may start "
                "a rollout may run any command as root on every node the instance tag condition admits",
            )
        if config.instance_tag_condition is None:
            annotations.add_warning_v2(
                "fleetwave:noInstanceTagCondition",
                f"{KEY_INSTANCE_TAG_CONDITION} is off: SendCommand may reach every managed node of the account and "
                "region, not only those tagged for fleetwave",
            )
