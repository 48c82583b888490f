"""The adapters a handler needs, built once per cold start; tests and the local twin pass their own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from fleetwave.adapters.alarms import Gates
from fleetwave.adapters.aws import client
from fleetwave.adapters.ledger import Ledger
from fleetwave.adapters.notifier import SummaryPublisher
from fleetwave.adapters.scheduler import Timers
from fleetwave.adapters.ssm import SsmGateway
from fleetwave.settings import Settings, get_settings


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Deps:
    settings: Settings
    ledger: Ledger
    ssm: SsmGateway
    timers: Timers
    gates: Gates
    summaries: SummaryPublisher
    clock: Callable[[], datetime] = utc_now

    def now(self) -> datetime:
        return self.clock()


def build_deps(settings: Settings | None = None, clock: Callable[[], datetime] = utc_now) -> Deps:
    settings = settings or get_settings()
    return Deps(
        settings=settings,
        ledger=Ledger(settings.TABLE_NAME, client("dynamodb")),
        ssm=SsmGateway(client("ssm"), client("ec2")),
        timers=Timers(
            client("scheduler"),
            group=settings.SCHEDULER_GROUP_NAME,
            role_arn=settings.SCHEDULER_ROLE_ARN,
            target_arn=settings.ADVANCE_WAVE_FUNCTION_ARN,
            dead_letter_arn=settings.TIMER_DLQ_ARN,
        ),
        gates=Gates(client("cloudwatch"), client("ssm")),
        summaries=SummaryPublisher(client("sns"), settings.SUMMARY_TOPIC_ARN),
        clock=clock,
    )


_default: Deps | None = None


def default_deps() -> Deps:
    """The process-wide dependencies of a deployed function (lazily built on first use, not at import)."""
    global _default
    if _default is None:
        _default = build_deps()
    return _default
