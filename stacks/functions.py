"""The Lambda functions: one role, one log group and only the environment and permissions each one needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo
from constructs import Construct
from fleetwave import constants
from fleetwave.settings import Settings

from . import permissions
from .config import FleetwaveConfig
from .ingestion import Ingestion, dead_letter_queue
from .names import FAILED_INVOCATIONS_QUEUE_NAME, HANDLERS, function_name, log_group_name
from .notifications import Notifications
from .packaging import ARCHITECTURE, RUNTIME, dependencies_layer, functions_code, powertools_layer_arn
from .permissions import Arns, Grant, RoleGrants
from .remediation import Remediation
from .timers import Timers

POWERTOOLS_ENVIRONMENT: Final = {
    "POWERTOOLS_SERVICE_NAME": "fleetwave",
    "POWERTOOLS_METRICS_NAMESPACE": "fleetwave",
}
LOG_RETENTION: Final = logs.RetentionDays.ONE_MONTH
XRAY_ACTIONS: Final = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")

# track_status reads the status queue in batches of 10, waiting up to 5 s to fill one.
STATUS_BATCH_SIZE: Final = 10
# notify's Powertools Idempotency records live in the ledger under this partition key (handlers/notify.py).
NOTIFY_IDEMPOTENCY_KEY: Final = constants.NOTIFY_IDEMPOTENCY_PK
STATUS_BATCHING_WINDOW: Final = Duration.seconds(5)
# At most this many track_status instances at once: bounds contention on a rollout's counters.
STATUS_MAX_CONCURRENCY: Final = 5
# The ledger partitions remediate may write (dynamodb:LeadingKeys): its own rollouts and their command lookups, its
# cooldowns, storm windows and decision records.
REMEDIATION_PARTITIONS: Final = (
    f"ROLLOUT#{constants.REMEDIATION_ROLLOUT_PREFIX}*",
    "COMMAND#*",
    f"{constants.REMEDIATION_PK_PREFIX}*",
    f"{constants.REMEDIATION_LOCK_PK_PREFIX}*",
    f"{constants.REMEDIATION_RATE_PK_PREFIX}*",
)
# notify reads the ledger's stream; a batch that keeps failing is split (bisect) and, at last, parked.
STREAM_BATCH_SIZE: Final = 100
STREAM_RETRY_ATTEMPTS: Final = 5
STREAM_MAX_RECORD_AGE: Final = Duration.hours(6)


@dataclass(frozen=True)
class FunctionSettings:
    description: str
    timeout: Duration
    memory_size: int = 512
    # Bounds the damage a runaway trigger can do (and, for reconcile, keeps one reconciler at a time).
    reserved_concurrency: int | None = None
    # Set for functions invoked asynchronously (Scheduler, EventBridge): failures go to the failed-invocations queue.
    async_retries: int | None = None
    max_event_age: Duration | None = None


FUNCTIONS: Final[dict[str, FunctionSettings]] = {
    # Retries 0: a retried start could start a second rollout; a failed scheduled start waits in the DLQ (alarmed).
    "start_rollout": FunctionSettings(
        "Validate a spec, plan, record and dispatch wave 0 (CLI, Scheduler)",
        Duration.minutes(2),
        reserved_concurrency=5,
        async_retries=0,
        max_event_age=Duration.hours(1),
    ),
    "track_status": FunctionSettings(
        "Apply SSM status events to the ledger; dispatch, halt, bake", Duration.seconds(60)
    ),
    # advance_wave re-reads the ledger and is idempotent per (rollout, wave): retrying is safe.
    "advance_wave": FunctionSettings(
        "Check gates and calendars after a bake, then dispatch the next wave or halt",
        Duration.minutes(2),
        async_retries=2,
        max_event_age=Duration.hours(2),
    ),
    # The next run comes in RECONCILE_EVERY_MINUTES anyway: no retries, and a timeout below the period.
    "reconcile": FunctionSettings(
        "Poll invocations without status news; end rollouts whose events were lost",
        Duration.minutes(4),
        reserved_concurrency=1,
        async_retries=0,
        max_event_age=Duration.minutes(constants.RECONCILE_EVERY_MINUTES),
    ),
    # The operators' entry point (function URL, AWS_IAM): synchronous, so no retries; bounded like start_rollout.
    "operator": FunctionSettings(
        "Operators' entry point (function URL, AWS_IAM): start and cancel as the authenticated caller",
        Duration.minutes(2),
        reserved_concurrency=5,
    ),
    "notify": FunctionSettings("Ledger changes -> fleetwave events, SNS and Slack summaries", Duration.seconds(60)),
    # Fed by the alarm queue: a storm waits in the queue (the event source mapping's maximum concurrency bounds it)
    # instead of being throttled away; the cooldown claim makes a redelivery harmless.
    "remediate": FunctionSettings(
        "Run an allow-listed runbook on the node whose alarm fired (verified first)",
        # The cooldown lease is this timeout (constants): a claim older than it has no live claimer.
        Duration.seconds(constants.REMEDIATE_TIMEOUT_SECONDS),
    ),
}


_RUNTIME_RULES: Final = ("AwsSolutions-L1", "Serverless-LambdaLatestVersion")
_RUNTIME_REASON: Final = (
    "Python 3.13 is pinned on purpose: the public Powertools layer (python313-arm64) and the dependencies layer are "
    "built for it; moving to a newer runtime is a deliberate upgrade of all three"
)
_ON_FAILURE = (
    "asynchronous failures go to the on-failure destination (SQS failed-invocations queue), the successor of the "
    "legacy DeadLetterConfig that also records the error"
)
# Why no legacy DeadLetterConfig, per function (Serverless-LambdaDLQ).
_FAILURE_PATHS: Final = {
    "start_rollout": f"invoked by Scheduler (asynchronously) only: {_ON_FAILURE}",
    "track_status": "invoked by the SQS event source: failed messages return to the queue and its redrive policy moves "
    "them to the status DLQ after 5 receives",
    "advance_wave": f"invoked by Scheduler (asynchronously): {_ON_FAILURE}",
    "reconcile": f"invoked by Scheduler (asynchronously): {_ON_FAILURE}",
    "operator": "invoked synchronously through its function URL only: errors return to the caller as HTTP answers",
    "notify": "invoked by the DynamoDB stream event source, whose on-failure destination is the failed-invocations "
    "queue",
    "remediate": "invoked by the SQS event source of the alarm queue: failed messages return to the queue and its "
    "redrive policy moves them to the alarm DLQ after 5 receives",
}


def _no_mapping_destination(function: lambda_.Function, failure_path: str) -> None:
    NagSuppressions.add_resource_suppressions(
        function,
        [
            NagPackSuppression(
                id="Serverless-LambdaEventSourceMappingDestination",
                reason=f"SQS event source mappings take no on-failure destination: {failure_path}",
            )
        ],
        apply_to_children=True,
    )


def operator_policy(
    scope: Construct, operator: lambda_.Function, table: dynamodb.ITable, stack: Stack
) -> iam.ManagedPolicy:
    """What an operator (a person, a CI role) needs: call the operator URL, read the ledger (status, watch, list,
    history) and the stack's outputs. Attach it to the groups or roles that may start and cancel rollouts."""
    policy = iam.ManagedPolicy(
        scope,
        "OperatorPolicy",
        description="fleetwave operators: start and cancel rollouts through the operator URL, read the ledger",
        statements=[
            iam.PolicyStatement(
                sid="CallTheOperatorUrl",
                actions=["lambda:InvokeFunctionUrl"],
                resources=[operator.function_arn],
                conditions={"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}},
            ),
            iam.PolicyStatement(
                sid="ReadTheLedger",
                actions=["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"],
                resources=[table.table_arn, f"{table.table_arn}/index/*"],
            ),
            iam.PolicyStatement(
                sid="ReadTheStackOutputs", actions=["cloudformation:DescribeStacks"], resources=[stack.stack_id]
            ),
        ],
    )
    NagSuppressions.add_resource_suppressions(
        policy,
        [
            NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="status, list and history query the ledger's GSIs (by-state, by-instance, by-spec); read-only",
                applies_to=[RegexAppliesTo(regex=r"/^Resource::<State.*\.Arn>\/index\/\*$/")],
            )
        ],
    )
    return policy


def status_queue_visibility_timeout() -> Duration:
    """At least six times track_status's timeout, plus the batching window (AWS's guidance for SQS sources)."""
    seconds = 6 * FUNCTIONS["track_status"].timeout.to_seconds() + STATUS_BATCHING_WINDOW.to_seconds()
    return Duration.seconds(seconds)


def environment(**values: str) -> dict[str, str]:
    """Environment variables by their fleetwave.settings.Settings field names (a typo fails the synth)."""
    unknown = sorted(set(values) - set(Settings.model_fields))
    if unknown:
        raise ValueError(f"{unknown} are not fleetwave.settings.Settings fields")
    return {**POWERTOOLS_ENVIRONMENT, **values}


class Functions(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: FleetwaveConfig,
        table: dynamodb.ITable,
        ingestion: Ingestion,
        notifications: Notifications,
        timers: Timers,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self._config = config
        arns = Arns(stack)
        table_arn, table_name = table.table_arn, table.table_name

        # Where asynchronous invocations and stream batches go when they fail for good.
        self.failed_invocations: sqs.Queue = dead_letter_queue(self, "FailedInvocations", FAILED_INVOCATIONS_QUEUE_NAME)
        self._layers = [
            lambda_.LayerVersion.from_layer_version_arn(
                self, "PowertoolsLayer", powertools_layer_arn(stack, config.powertools_layer_version)
            ),
            dependencies_layer(self, "DependenciesLayer", skip_bundling=config.skip_dependency_bundling),
        ]
        self._code = functions_code()
        self.functions: dict[str, lambda_.Function] = {}
        self.grants: dict[str, RoleGrants] = {}

        engine_env = {
            "TABLE_NAME": table_name,
            "STATUS_TOPIC_ARN": ingestion.status_topic.topic_arn,
            "NOTIFICATION_ROLE_ARN": ingestion.notification_role.role_arn,
            "ALLOWED_DOCUMENTS": ",".join(config.allowed_documents),
            "SCHEDULER_GROUP_NAME": timers.group_name,
            "SCHEDULER_ROLE_ARN": timers.role.role_arn,
            "TIMER_DLQ_ARN": ingestion.delivery_dlq.queue_arn,
            # Built from the fixed function name: advance_wave's own timers point at itself (no self-reference).
            "ADVANCE_WAVE_FUNCTION_ARN": arns.function(function_name("advance_wave")),
            "MANAGED_NODE_TAG": config.managed_node_tag_json(),
            "SESSION_TERMINATION": str(config.session_termination).lower(),
        }
        managed_tag = (
            {config.instance_tag_condition.key: config.instance_tag_condition.value}
            if config.instance_tag_condition
            else {}
        )

        def engine() -> list[Grant]:
            """What the shared rollout engine (service.rollouts.settle/advance) may do from any function: dispatch
            the next chunk or wave, check sessions, alarm gates and calendars, halt (CancelCommand), set bake timers."""
            return [
                permissions.dispatch(
                    arns,
                    config.allowed_documents,
                    notification_role=ingestion.notification_role,
                    tag_conditions=[managed_tag],
                ),
                permissions.sessions(arns, terminate=config.session_termination),
                permissions.calendars(arns),
                permissions.cancel_commands(),
                permissions.describe_alarms(arns),
                permissions.create_schedules(arns, timers.group_name, timers.role),
                permissions.table_access(table_arn, write=True),
            ]

        self._function(
            "advance_wave",
            environment(**engine_env),
            *engine(),
            permissions.delete_schedules(arns, timers.group_name),
        )
        # Scheduler's target: it starts only the specs the stack schedules (their SHA-256 in SCHEDULED_SPECS).
        self._function(
            "start_rollout", environment(**engine_env, SCHEDULED_SPECS=config.scheduled_specs_json()), *engine()
        )

        track = self._function(
            "track_status",
            environment(**engine_env),
            *engine(),
            permissions.read_invocations(),
        )
        track.add_event_source(
            sources.SqsEventSource(
                ingestion.status_queue,
                batch_size=STATUS_BATCH_SIZE,
                max_batching_window=STATUS_BATCHING_WINDOW,
                report_batch_item_failures=True,
                max_concurrency=STATUS_MAX_CONCURRENCY,
            )
        )
        _no_mapping_destination(
            track, "the status queue's redrive policy moves a message that failed 5 receives to the status DLQ"
        )

        self._function(
            "reconcile",
            environment(**engine_env),
            *engine(),
            permissions.list_invocations(),
        )

        # Start (the engine's grants) and cancel (halt, CancelCommand, delete a pending bake timer) as the caller.
        operator = self._function(
            "operator",
            environment(**engine_env),
            *engine(),
            permissions.delete_schedules(arns, timers.group_name),
        )
        self.operator_url = operator.add_function_url(auth_type=lambda_.FunctionUrlAuthType.AWS_IAM)
        self.operator_policy = operator_policy(self, operator, table, Stack.of(self))

        notify_env = {
            "TABLE_NAME": table_name,
            "SUMMARY_TOPIC_ARN": notifications.summary_topic.topic_arn,
            "EVENT_BUS_NAME": notifications.event_bus.event_bus_name,
            "SLACK_WEBHOOK_HOSTS": ",".join(config.slack_webhook_hosts),
        }
        notify_grants: list[Grant] = [
            # Reads the ledger; writes only its own idempotency records (Powertools Idempotency, static key).
            permissions.table_access(table_arn, write=False),
            permissions.idempotency_records(table_arn, NOTIFY_IDEMPOTENCY_KEY),
            permissions.publish(notifications.summary_topic.topic_arn, key.key_arn, sid="PublishSummaries"),
            permissions.put_events(notifications.event_bus.event_bus_arn),
        ]
        if config.slack_secret_name:
            notify_env["SLACK_SECRET_NAME"] = config.slack_secret_name
            notify_grants.append(permissions.read_secret(arns, config.slack_secret_name))
        notify = self._function("notify", environment(**notify_env), *notify_grants)
        notify.add_event_source(
            sources.DynamoEventSource(
                table,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=STREAM_BATCH_SIZE,
                bisect_batch_on_error=True,
                report_batch_item_failures=True,
                retry_attempts=STREAM_RETRY_ATTEMPTS,
                max_record_age=STREAM_MAX_RECORD_AGE,
                on_failure=sources.SqsDlq(self.failed_invocations),
                # notify publishes only rollout, wave, remediation and notice changes: the rest never invokes it.
                filters=[lambda_.FilterCriteria.filter(constants.NOTIFY_STREAM_FILTER_PATTERN)],
            )
        )
        # The event source mapping lists the table's streams: dynamodb:ListStreams has no resource-level permission.
        self.grants["notify"].note_unscoped("dynamodb:ListStreams")

        self.remediation: Remediation | None = None
        if config.remediation_rules:
            self.remediation = Remediation(self, "Remediation", delivery_dlq=ingestion.delivery_dlq, timers=timers)
            remediation = self.remediation
            rules = config.remediation_rules
            documents = config.remediation_documents
            # IAM: the rules' documents only, on nodes carrying the managed tag and (per rule) the rule's target_tag;
            # the code checks each rule's own tags before acting.
            tag_conditions = [{**managed_tag, **rule.target_tag} for rule in rules]
            remediate_grants: list[Grant] = [
                permissions.dispatch(
                    arns,
                    documents,
                    notification_role=ingestion.notification_role,
                    tag_conditions=tag_conditions,
                ),
                permissions.describe_alarms(arns),
                permissions.alarm_tags(arns),
                permissions.node_tags(arns),
                # Its own rollouts (rem-...), locks, storm windows and records; never another rollout's items.
                permissions.table_access(table_arn, write=True, partitions=REMEDIATION_PARTITIONS),
            ]
            if any(rule.verify_minutes for rule in rules):
                remediate_grants.append(
                    permissions.create_schedules(
                        arns, timers.group_name, remediation.verify_role, name_prefix=constants.VERIFY_TIMER_PREFIX
                    )
                )
            remediate = self._function(
                "remediate",
                environment(
                    **{**engine_env, "ALLOWED_DOCUMENTS": ",".join(documents), "SESSION_TERMINATION": "false"},
                    REMEDIATION_RULES=config.remediation_rules_json(),
                    ALARM_QUEUE_ARN=remediation.queue.queue_arn,
                    VERIFY_SCHEDULER_ROLE_ARN=remediation.verify_role.role_arn,
                ),
                *remediate_grants,
            )
            remediation.connect(remediate)
            _no_mapping_destination(
                remediate, "the alarm queue's redrive policy moves a message that failed 5 receives to the alarm DLQ"
            )

        for grants in self.grants.values():
            grants.suppress()

    def _function(self, key: str, env: Mapping[str, str], *grants: Grant) -> lambda_.Function:
        settings = FUNCTIONS[key]
        construct_id = "".join(part.title() for part in key.split("_"))
        role = iam.Role(
            self,
            f"{construct_id}Role",
            description=f"fleetwave {key}",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        )
        log_group = logs.LogGroup(
            self,
            f"{construct_id}Logs",
            log_group_name=log_group_name(key),
            retention=LOG_RETENTION,
            removal_policy=RemovalPolicy.DESTROY,
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        role_grants = RoleGrants(role).add(*grants).note_unscoped(*XRAY_ACTIONS)
        self.grants[key] = role_grants

        is_async = settings.async_retries is not None
        function = lambda_.Function(
            self,
            construct_id,
            function_name=function_name(key),
            description=f"fleetwave: {settings.description}",
            code=self._code,
            handler=HANDLERS[key],
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            memory_size=settings.memory_size,
            timeout=settings.timeout,
            tracing=lambda_.Tracing.ACTIVE,
            role=role,
            log_group=log_group,
            layers=self._layers,
            environment=dict(env),
            reserved_concurrent_executions=settings.reserved_concurrency if self._config.reserved_concurrency else None,
            retry_attempts=settings.async_retries,
            max_event_age=settings.max_event_age,
            on_failure=destinations.SqsDestination(self.failed_invocations) if is_async else None,
        )
        NagSuppressions.add_resource_suppressions(
            function,
            [
                *(NagPackSuppression(id=rule, reason=_RUNTIME_REASON) for rule in _RUNTIME_RULES),
                NagPackSuppression(id="Serverless-LambdaDLQ", reason=_FAILURE_PATHS[key]),
            ],
        )
        self.functions[key] = function
        return function
