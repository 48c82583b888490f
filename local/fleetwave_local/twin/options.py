"""What a twin is made of: the fleet's seed and failure modes, the cloud's timings, and the functions' configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fleetwave.constants import DEFAULT_MANAGED_TAG_KEY, DEFAULT_MANAGED_TAG_VALUE, RECONCILE_EVERY_MINUTES

from fleetwave_local.twin.account import TWIN_OPERATOR_ARN


@dataclass
class TwinOptions:
    seed: int = 1
    fail_rate: float = 0.0
    execution_timeout_rate: float = 0.0
    delivery_timeout_rate: float = 0.0
    undeliverable_rate: float = 0.0
    slow_rate: float = 0.0
    offline_rate: float = 0.0
    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    cancel_race_rate: float = 0.2
    run_seconds: tuple[int, int] = (30, 120)
    shuffle: bool = True
    # Lambda's SQS poller gathers messages for up to this long before invoking (MaximumBatchingWindow).
    batching_window: timedelta = timedelta(seconds=10)
    reconcile_every: timedelta = timedelta(minutes=RECONCILE_EVERY_MINUTES)
    start: datetime | None = None
    allowed_documents: tuple[str, ...] = ()
    # Remediation rules as cdk.json's fleetwave:remediationRules holds them (REMEDIATION_RULES of every function).
    remediation_rules: list[dict[str, Any]] = field(default_factory=list)
    # Slack: the webhook URL the twin's secret holds (loopback only), as the plain URL or as JSON {"webhook_url": ..}.
    slack_webhook_url: str | None = field(default=None, repr=False)  # a credential: kept out of reprs and logs
    slack_secret_json: bool = False
    # The tag every simulated node carries and the functions require (fleetwave:instanceTagCondition); None: none.
    managed_tag: dict[str, str] | None = field(
        default_factory=lambda: {DEFAULT_MANAGED_TAG_KEY: DEFAULT_MANAGED_TAG_VALUE}
    )
    # fleetwave:sessionTermination (the twin simulates every session mode by default).
    session_termination: bool = True
    # Who the twin's operator requests come from.
    operator_arn: str = TWIN_OPERATOR_ARN
