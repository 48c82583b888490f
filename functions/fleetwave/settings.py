"""Environment settings, parsed once per cold start into a model that fails fast with a clear message."""

from __future__ import annotations

import json
import os
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fleetwave.constants import DEFAULT_SLACK_WEBHOOK_HOSTS


class SettingsError(RuntimeError):
    """The function's environment is missing or malformed (a deployment problem, not a runtime one)."""


class Settings(BaseModel):
    """Everything a fleetwave function reads from its environment. Field names are the variable names."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    TABLE_NAME: str = Field(min_length=3)
    STATUS_TOPIC_ARN: str = ""
    NOTIFICATION_ROLE_ARN: str = ""
    SUMMARY_TOPIC_ARN: str = ""
    EVENT_BUS_NAME: str = ""
    SCHEDULER_GROUP_NAME: str = ""
    SCHEDULER_ROLE_ARN: str = ""
    ADVANCE_WAVE_FUNCTION_ARN: str = ""
    # Documents rollouts may run (names); empty means "any" (the IAM policy is the real fence).
    ALLOWED_DOCUMENTS: tuple[str, ...] = ()
    # Secrets Manager secret holding the Slack incoming-webhook URL (plain, or JSON {"webhook_url": ...}); empty: off.
    SLACK_SECRET_NAME: str = ""
    # Set by Lambda itself: the region console links in notifications point at.
    AWS_REGION: str = ""
    # JSON: remediation rules (see fleetwave.core.remediation).
    REMEDIATION_RULES: str = "[]"
    # JSON {"key": "value"}: the tag every node must carry for fleetwave to send it a command (IAM enforces it on
    # SendCommand; remediation checks it before acting). {}: no tag condition (an explicit opt-out at deploy time).
    MANAGED_NODE_TAG: dict[str, str] = {}
    # Remediation: the queue alarm events arrive on (its verification timers are sent there too), and the role
    # Scheduler assumes to send them.
    ALARM_QUEUE_ARN: str = ""
    VERIFY_SCHEDULER_ROLE_ARN: str = ""
    # Where Scheduler puts a one-time timer it could not deliver.
    TIMER_DLQ_ARN: str = ""
    # JSON {spec name: sha256 of the spec}: the only specs start_rollout (Scheduler's target) may start.
    SCHEDULED_SPECS: dict[str, str] = {}
    # Whether specs may end Session Manager sessions (sessions.mode: terminate_older_than); the deployment decides.
    SESSION_TERMINATION: bool = False
    # Hosts a Slack webhook URL may point at (comma-separated).
    SLACK_WEBHOOK_HOSTS: tuple[str, ...] = DEFAULT_SLACK_WEBHOOK_HOSTS

    @field_validator("ALLOWED_DOCUMENTS", "SLACK_WEBHOOK_HOSTS", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("MANAGED_NODE_TAG", "SCHEDULED_SPECS", mode="before")
    @classmethod
    def _json_object(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return json.loads(value or "{}")
            except json.JSONDecodeError as error:
                raise ValueError(f"not JSON ({error.msg})") from None
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Read the environment once; call ``get_settings.cache_clear()`` in tests that change it."""
    known = {name: os.environ[name] for name in Settings.model_fields if name in os.environ}
    try:
        return Settings.model_validate(known)
    except ValidationError as error:
        problems = ", ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise SettingsError(f"fleetwave environment is incomplete: {problems}") from None
