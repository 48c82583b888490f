"""The twin's account: its region and ID, the ARNs of its functions and alarms, and the names of its own resources."""

from __future__ import annotations

from fleetwave.constants import HANDLERS, function_name

REGION = "us-east-1"
ACCOUNT = "123456789012"
# The twin's Slack webhook secret and the rule that copies every fleetwave event into an inbox queue.
SLACK_SECRET_NAME = "fleetwave/slack-webhook"  # noqa: S105 (a secret's name, not a secret)
EVENTS_CAPTURE_RULE_NAME = "fleetwave-twin-events-capture"
EVENTS_INBOX_NAME = "fleetwave-twin-events-inbox"
# The queue subscribed to the summary topic: what notify published there, for the twin to read.
SUMMARY_INBOX_NAME = "fleetwave-twin-summary-inbox"
# Where Scheduler dead-letters timers it could not deliver (the stack's delivery DLQ).
DELIVERY_DLQ_NAME = "fleetwave-delivery-dlq"
# The operator the twin's starts and cancels are made by (the identity a function URL's request context carries).
TWIN_OPERATOR_ARN = f"arn:aws:iam::{ACCOUNT}:user/twin-operator"


def function_arn(key: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name(key)}"


#: deployed function name -> handler key (what a schedule's target names -> what the twin invokes)
FUNCTION_KEYS = {function_name(key): key for key in HANDLERS}


def alarm_arn(name: str) -> str:
    return f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"
