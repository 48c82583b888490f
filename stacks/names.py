"""Names the stack adds to those in fleetwave.constants (which stays the one place for names the code reads)."""

from __future__ import annotations

import hashlib
from typing import Final

from fleetwave import constants

HANDLERS: Final[dict[str, str]] = dict(constants.HANDLERS)

# Queues that only the stack and operators look at (the code never names them).
DELIVERY_DLQ_NAME: Final = f"{constants.RESOURCE_PREFIX}-delivery-dlq"
FAILED_INVOCATIONS_QUEUE_NAME: Final = f"{constants.RESOURCE_PREFIX}-failed-invocations"
KEY_ALIAS: Final = f"alias/{constants.RESOURCE_PREFIX}"
DASHBOARD_NAME: Final = constants.RESOURCE_PREFIX
RECONCILE_SCHEDULE_NAME: Final = "reconcile"
SPEC_SCHEDULE_PREFIX: Final = "spec-"
_MAX_SCHEDULE_NAME: Final = 64


function_name = constants.function_name


def log_group_name(key: str) -> str:
    return f"/aws/lambda/{function_name(key)}"


def alarm_name(subject: str) -> str:
    return f"{constants.RESOURCE_PREFIX}-{subject}"


def spec_schedule_name(spec_name: str) -> str:
    """Scheduler names are at most 64 characters: long spec names keep a hash suffix so they stay unique."""
    name = f"{SPEC_SCHEDULE_PREFIX}{spec_name}"
    if len(name) <= _MAX_SCHEDULE_NAME:
        return name
    digest = hashlib.sha256(spec_name.encode()).hexdigest()[:8]
    return f"{name[: _MAX_SCHEDULE_NAME - 9]}-{digest}"
