"""One place for each fact shared by the stack, the handlers, the local twin and the tests.

Nothing here touches AWS or the environment: it is safe to import from anywhere.
"""

from __future__ import annotations

from typing import Final

# --- DynamoDB table -------------------------------------------------------------------------
PK: Final = "pk"
SK: Final = "sk"
TTL_ATTRIBUTE: Final = "expires_at"

# Sparse GSI over rollout items: partition = rollout state, sort = start time.
GSI_BY_STATE: Final = "by-state"
GSI_BY_STATE_PK: Final = "gsi_state"
GSI_BY_STATE_SK: Final = "started_at"

# Sparse GSI over invocation items: one node's history across rollouts.
GSI_BY_INSTANCE: Final = "by-instance"
GSI_BY_INSTANCE_PK: Final = "instance_id"
GSI_BY_INSTANCE_SK: Final = "requested_at"

# Sparse GSI over rollout items: partition = spec name, sort = start time (dev-before-prod checks, `list --spec`).
GSI_BY_SPEC: Final = "by-spec"
GSI_BY_SPEC_PK: Final = "spec_name"
GSI_BY_SPEC_SK: Final = "started_at"

# --- SSM limits (shared/seeds: SendCommand, ListCommandInvocations) -------------------------
MAX_IDS_PER_COMMAND: Final = 50
MAX_COMMENT_LENGTH: Final = 100
MAX_LIST_INVOCATIONS_PAGE: Final = 50
MIN_TIMEOUT_SECONDS: Final = 30
MAX_TIMEOUT_SECONDS: Final = 2_592_000
# --- Payload limits of the paths a start request travels (Lambda Invoke, Scheduler CreateSchedule) ------
# `fleetwave start` invokes start_rollout synchronously (RequestResponse): at most 6 MB of request.
MAX_SYNC_INVOKE_BYTES: Final = 6 * 1024 * 1024
# A scheduled spec travels in its schedule's Target.Input, which Scheduler caps at 256 KB (Lambda's asynchronous
# invoke, which Scheduler then makes, takes more).
MAX_SCHEDULE_INPUT_BYTES: Final = 256 * 1024
# Instance IDs per plan shard item: 500 ids * ~20 bytes keeps each item far below DynamoDB's 400 KB.
SHARD_SIZE: Final = 500
# DynamoDB TransactWriteItems accepts at most 100 items.
MAX_TRANSACTION_ITEMS: Final = 100

# --- SSM events ------------------------------------------------------------------------------
SSM_EVENT_SOURCE: Final = "aws.ssm"
DETAIL_TYPE_COMMAND: Final = "EC2 Command Status-change Notification"
DETAIL_TYPE_INVOCATION: Final = "EC2 Command Invocation Status-change Notification"
SSM_STATUS_EVENT_PATTERN: Final = {
    "source": [SSM_EVENT_SOURCE],
    "detail-type": [DETAIL_TYPE_COMMAND, DETAIL_TYPE_INVOCATION],
}
# SendCommand NotificationConfig: per-invocation messages, every status change.
SNS_NOTIFICATION_TYPE: Final = "Invocation"
SNS_NOTIFICATION_EVENTS: Final = ("All",)

# CloudWatch alarm state changes (auto-remediation).
CLOUDWATCH_EVENT_SOURCE: Final = "aws.cloudwatch"
DETAIL_TYPE_ALARM: Final = "CloudWatch Alarm State Change"
ALARM_EVENT_PATTERN: Final = {
    "source": [CLOUDWATCH_EVENT_SOURCE],
    "detail-type": [DETAIL_TYPE_ALARM],
    "detail": {"state": {"value": ["ALARM"]}},
}


def alarm_event_pattern(account: str, region: str) -> dict[str, object]:
    """The remediation rule's pattern: alarm state changes of this account and region only."""
    return {**ALARM_EVENT_PATTERN, "account": [account], "region": [region]}


# --- fleetwave's own events --------------------------------------------------------------------
FLEETWAVE_EVENT_SOURCE: Final = "fleetwave"
COMMENT_PREFIX: Final = "fleetwave"
# Detail-types of the events notify puts on the fleetwave bus (schemas: docs/notifications.md).
DETAIL_TYPE_ROLLOUT_STARTED: Final = "Rollout Started"
DETAIL_TYPE_WAVE_STARTED: Final = "Wave Started"
DETAIL_TYPE_WAVE_COMPLETED: Final = "Wave Completed"
DETAIL_TYPE_ROLLOUT_HALTED: Final = "Rollout Halted"
DETAIL_TYPE_ROLLOUT_FINISHED: Final = "Rollout Finished"
DETAIL_TYPE_REMEDIATION_STARTED: Final = "Remediation Started"
DETAIL_TYPE_REMEDIATION_SKIPPED: Final = "Remediation Skipped"
# The runbook ran, but its alarm was not back to OK in time: not a skip, a remediation that did not work.
DETAIL_TYPE_REMEDIATION_VERIFICATION_FAILED: Final = "Remediation Verification Failed"
FLEETWAVE_DETAIL_TYPES: Final = (
    DETAIL_TYPE_ROLLOUT_STARTED,
    DETAIL_TYPE_WAVE_STARTED,
    DETAIL_TYPE_WAVE_COMPLETED,
    DETAIL_TYPE_ROLLOUT_HALTED,
    DETAIL_TYPE_ROLLOUT_FINISHED,
    DETAIL_TYPE_REMEDIATION_STARTED,
    DETAIL_TYPE_REMEDIATION_SKIPPED,
    DETAIL_TYPE_REMEDIATION_VERIFICATION_FAILED,
)
# Every fleetwave event (a rule with this pattern on the fleetwave bus sees them all).
FLEETWAVE_EVENT_PATTERN: Final = {"source": [FLEETWAVE_EVENT_SOURCE]}
# Version of the event details and the SNS payload; bumped only for changes that are not additive.
NOTIFICATION_SCHEMA_VERSION: Final = "1"

# --- Names of the resources (the stack and the local twin use the same ones) -----------------
RESOURCE_PREFIX: Final = "fleetwave"
TABLE_NAME: Final = "fleetwave-ledger"
STATUS_TOPIC_NAME: Final = "fleetwave-ssm-status"
SUMMARY_TOPIC_NAME: Final = "fleetwave-summaries"
STATUS_QUEUE_NAME: Final = "fleetwave-status"
STATUS_DLQ_NAME: Final = "fleetwave-status-dlq"
EVENT_BUS_NAME: Final = "fleetwave"
SCHEDULER_GROUP_NAME: Final = "fleetwave"
STATUS_RULE_NAME: Final = "fleetwave-ssm-status"
# Remediation: the alarm rule delivers to this queue (buffering a storm); remediate reads it in batches.
ALARM_QUEUE_NAME: Final = "fleetwave-alarms"
ALARM_DLQ_NAME: Final = "fleetwave-alarms-dlq"
ALARM_RULE_NAME: Final = "fleetwave-alarm-remediation"

# Lambda functions: logical name -> handler path inside the functions/ asset.
HANDLERS: Final = {
    "start_rollout": "fleetwave.handlers.start_rollout.handler",
    "track_status": "fleetwave.handlers.track_status.handler",
    "advance_wave": "fleetwave.handlers.advance_wave.handler",
    "reconcile": "fleetwave.handlers.reconcile.handler",
    # The operators' entry point (a function URL with AWS_IAM auth): start, cancel, with the caller's identity.
    "operator": "fleetwave.handlers.operator.handler",
    "notify": "fleetwave.handlers.notify.handler",
    "remediate": "fleetwave.handlers.remediate.handler",
}


def function_name(key: str) -> str:
    """``start_rollout`` -> ``fleetwave-start-rollout``: the deployed name of a function (the CLI invokes these)."""
    return f"{RESOURCE_PREFIX}-{key.replace('_', '-')}"


# Reconciler cadence and how long an open invocation may go without news before it is polled.
RECONCILE_EVERY_MINUTES: Final = 5
STALE_AFTER_SECONDS: Final = 300
# A dispatch intent younger than this is not re-sent when ListCommands does not show it yet
# (ListCommands is eventually consistent).
DISPATCH_CONSISTENCY_WINDOW_SECONDS: Final = 120

# CloudFormation outputs of the stack: the CLI finds the deployed resources by these names.
DEFAULT_STACK_NAME: Final = "fleetwave"
OUTPUT_TABLE_NAME: Final = "LedgerTableName"
OUTPUT_START_FUNCTION: Final = "StartRolloutFunctionName"
OUTPUT_CANCEL_FUNCTION: Final = "CancelRolloutFunctionName"
OUTPUT_SUMMARY_TOPIC: Final = "SummaryTopicArn"
OUTPUT_EVENT_BUS: Final = "EventBusName"
OUTPUT_OPERATOR_URL: Final = "OperatorUrl"
OUTPUT_OPERATOR_POLICY: Final = "OperatorPolicyArn"

# --- Who started what: ``trigger`` is set by fleetwave from the path a request came by, never by the caller ------
TRIGGER_OPERATOR: Final = "operator"  # the operator entry point (the CLI signs its requests)
TRIGGER_SCHEDULE: Final = "schedule"  # EventBridge Scheduler (a spec the stack schedules)
TRIGGER_REMEDIATION: Final = "remediation"  # a verified alarm
# What started_by holds for starts no person made.
SCHEDULER_PRINCIPAL: Final = "scheduler.amazonaws.com"
REMEDIATION_PRINCIPAL_PREFIX: Final = "alarm:"
# Remediation rollouts have IDs of their own form, so IAM can confine the remediate role's ledger writes to them.
REMEDIATION_ROLLOUT_PREFIX: Final = "rem-"
# Verification timers (one-time schedules) of remediations are named with this prefix.
VERIFY_TIMER_PREFIX: Final = "fw-verify-"

# --- Safe defaults -----------------------------------------------------------------------------------------------
# SendCommand is allowed only to nodes carrying this tag unless the deployment opts out explicitly.
DEFAULT_MANAGED_TAG_KEY: Final = "fleetwave:managed"
DEFAULT_MANAGED_TAG_VALUE: Final = "true"
# Hosts a Slack incoming-webhook URL may point at, unless configured otherwise.
DEFAULT_SLACK_WEBHOOK_HOSTS: Final = ("hooks.slack.com",)

# --- Start guards, notices and remediation (ledger items other than rollouts) ------------------
# One item per spec: the rollout that holds it (never released: free once that rollout ended; see core.windows).
SPEC_LOCK_PK_PREFIX: Final = "SPECLOCK#"
# A lock whose holder never got recorded (its starter crashed) is free after this long (start_rollout: 2 min).
SPEC_LOCK_GRACE_SECONDS: Final = 600
# Notices ("notifies instead"): pk NOTICE#<spec>, sk <iso time>; notify publishes items of these types.
NOTICE_PK_PREFIX: Final = "NOTICE#"
ITEM_TYPE_NOTICE: Final = "notice"
NOTICE_KIND_START_SKIPPED: Final = "start_skipped"
# Remediation decisions: pk REMEDIATION#<rule>, sk <iso time>#<instance id>.
REMEDIATION_PK_PREFIX: Final = "REMEDIATION#"
ITEM_TYPE_REMEDIATION: Final = "remediation"
# Cooldown locks (REMLOCK#<rule>#<instance>) and storm windows (REMRATE#<rule>, sk WINDOW), both with TTL.
REMEDIATION_LOCK_PK_PREFIX: Final = "REMLOCK#"
REMEDIATION_RATE_PK_PREFIX: Final = "REMRATE#"
NOTICE_TTL_DAYS: Final = 90
# Managed node IDs as remediation accepts them from an alarm's dimension or tag (EC2 and hybrid nodes).
# \Z, not $: "$" also matches before a trailing newline.
MANAGED_NODE_ID_PATTERN: Final = r"^(i-[0-9a-f]{8}|i-[0-9a-f]{17}|mi-[0-9a-f]{17})\Z"
# The remediate function's timeout (the stack sets it): a cooldown claim older than this has no live claimer.
REMEDIATE_TIMEOUT_SECONDS: Final = 60

# --- The outbox (notify reads the ledger's DynamoDB stream) -----------------------------------
# Ledger item types notify publishes for; every other item (invocations, chunks, shards, ...) is skipped.
ITEM_TYPE_ROLLOUT: Final = "rollout"
ITEM_TYPE_WAVE: Final = "wave"
NOTIFY_ITEM_TYPES: Final = (ITEM_TYPE_ROLLOUT, ITEM_TYPE_WAVE, ITEM_TYPE_REMEDIATION, ITEM_TYPE_NOTICE)
# Lambda event filter for the stream event source: only those item types invoke notify at all.
NOTIFY_STREAM_FILTER_PATTERN: Final = {"dynamodb": {"NewImage": {"type": {"S": list(NOTIFY_ITEM_TYPES)}}}}
# notify's Powertools Idempotency records live in the ledger under this partition key.
NOTIFY_IDEMPOTENCY_PK: Final = "IDEMPOTENCY#notify"

# At a wave start, GetConnectionStatus (one call per node) checks waves up to this size; a larger wave refreshes
# PingStatus instead (DescribeInstanceInformation, 50 nodes per call), so the check fits a wave start's time budget.
MAX_CONNECTION_CHECKS_PER_WAVE: Final = 500
