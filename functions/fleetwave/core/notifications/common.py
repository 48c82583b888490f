"""What every notification channel shares: the ledger records notify reads, the report of a rollout with links to
its command output, deterministic event IDs, and the text formatting of times, durations, counts and budgets."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ConfigDict, Field

from fleetwave.core.model import Rollout, RolloutState, Wave
from fleetwave.core.spec import OutputSpec
from fleetwave.core.status import HALT_CONSEQUENCES, InvocationStatus
from fleetwave.core.summary import FailedInvocation

# Deterministic event IDs: the same ledger change always gets the same ID, so subscribers can deduplicate.
_EVENT_ID_NAMESPACE = uuid.UUID("6f1c2a4e-9d1b-5c3e-8a7f-0b1e2d3c4f50")

FINISHED_STATES = frozenset({RolloutState.SUCCEEDED, RolloutState.COMPLETED_WITH_ERRORS})
# The order a person reads counts in: outcomes first, the good one first; what is still open last.
_DISPLAY_ORDER = (
    InvocationStatus.SUCCESS,
    InvocationStatus.FAILED,
    InvocationStatus.EXECUTION_TIMED_OUT,
    InvocationStatus.DELIVERY_TIMED_OUT,
    InvocationStatus.UNDELIVERABLE,
    InvocationStatus.INVALID_PLATFORM,
    InvocationStatus.ACCESS_DENIED,
    InvocationStatus.CANCELLED,
    InvocationStatus.TERMINATED,
    InvocationStatus.CANCELLING,
    InvocationStatus.IN_PROGRESS,
    InvocationStatus.DELAYED,
    InvocationStatus.PENDING,
)


# ---------------------------------------------------------------------------------------------------- what notify reads
class RemediationRecord(BaseModel):
    """A ``type: "remediation"`` ledger item: what remediate decided for one alarm on one node."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    rule: str
    outcome: Literal["started", "skipped", "verification_failed"]
    alarm_name: str = ""
    instance_id: str = ""
    reason: str = ""
    rollout_id: str | None = None
    document: str | None = None


class NoticeRecord(BaseModel):
    """A ``type: "notice"`` ledger item: something a person should know that is not a rollout (a skipped start)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: str = Field(min_length=1)
    spec_name: str = ""
    reason: str = ""


def event_id(identity: str) -> str:
    """A UUID that depends only on the ledger change (item key and new state), never on the delivery."""
    return str(uuid.uuid5(_EVENT_ID_NAMESPACE, identity))


# ---------------------------------------------------------------------------------------------------- formatting
def iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def format_duration(seconds: float | None) -> str:
    """``45s``, ``12m 05s``, ``3h 02m``, ``2d 03h``."""
    if seconds is None:
        return "-"
    total = max(0, round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def counts_json(counts: Mapping[InvocationStatus, int]) -> dict[str, int]:
    """Per-status counts as event details carry them: non-zero only, by status name."""
    return {status.value: n for status, n in sorted(counts.items()) if n}


def counts_text(counts: Mapping[InvocationStatus, int], *, empty: str = "none yet") -> str:
    parts = [f"{counts[status]} {status.value}" for status in _DISPLAY_ORDER if counts.get(status)]
    return ", ".join(parts) or empty


def budget_text(rollout: Rollout) -> str:
    text = f"{rollout.budget_used} of {rollout.budget_allowed} used"
    if rollout.budget_exceeded:
        text += " (exceeded)"
    return text


# ---------------------------------------------------------------------------------------------------- output links
@dataclass(frozen=True)
class OutputLocation:
    """Where the command output of a rollout lands, to link failed instances to it."""

    region: str = ""
    s3_bucket: str | None = None
    s3_prefix: str | None = None
    # Set when output goes to CloudWatch Logs: the spec's group, or SSM's default /aws/ssm/<document>.
    log_group: str | None = None

    @classmethod
    def of(cls, output: OutputSpec | None, document_name: str, region: str) -> OutputLocation:
        if output is None:
            return cls(region=region)
        log_group = output.cloudwatch_log_group
        if not log_group and output.cloudwatch_enabled:
            log_group = f"/aws/ssm/{document_name.rsplit('/', 1)[-1]}"
        return cls(region=region, s3_bucket=output.s3_bucket, s3_prefix=output.s3_prefix, log_group=log_group)


def _console_host(region: str) -> str:
    return f"https://{region}.console.aws.amazon.com" if region else "https://console.aws.amazon.com"


def _region_query(region: str) -> str:
    return f"region={region}" if region else ""


def _console_fragment(text: str) -> str:
    """The CloudWatch console's encoding of values inside its #fragment (``/`` becomes ``$252F``)."""
    return quote(text, safe="").replace("%", "$25")


def s3_console_url_for_object(url: str, region: str) -> str:
    """An S3 object URL (SSM's StandardOutputUrl) -> the S3 console page of that object; other URLs unchanged."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "https" or not host.endswith(".amazonaws.com") or ".s3" not in f".{host}":
        return url
    path = parts.path.lstrip("/")
    if host.startswith(("s3.", "s3-")):
        bucket, _, key = path.partition("/")  # path style: s3.<region>.amazonaws.com/<bucket>/<key>
    else:
        bucket, key = host.split(".s3", 1)[0], path  # virtual-hosted style: <bucket>.s3.<region>.amazonaws.com/<key>
    if not bucket or not key:
        return url
    query = "&".join(q for q in (_region_query(region), f"prefix={quote(key, safe='')}") if q)
    return f"https://s3.console.aws.amazon.com/s3/object/{quote(bucket, safe='')}?{query}"


def output_link(failed: FailedInvocation, location: OutputLocation) -> str:
    """The best console page for one invocation's output: its recorded S3 object, the spec's S3 prefix, its
    CloudWatch Logs streams, or else the Run Command page of the invocation."""
    region = location.region
    if failed.output_url:
        return s3_console_url_for_object(failed.output_url, region)
    if location.s3_bucket:
        parts = ((location.s3_prefix or "").strip("/"), failed.command_id, failed.instance_id)
        prefix = "/".join(part for part in parts if part)
        query = "&".join(q for q in (_region_query(region), f"prefix={quote(prefix + '/', safe='')}") if q)
        return f"https://s3.console.aws.amazon.com/s3/buckets/{quote(location.s3_bucket, safe='')}?{query}"
    if location.log_group:
        # SSM names the streams <command-id>/<instance-id>/<plugin>/stdout|stderr.
        streams = _console_fragment(f"{failed.command_id}/{failed.instance_id}/")
        return (
            f"{_console_host(region)}/cloudwatch/home?{_region_query(region)}#logsV2:log-groups/log-group/"
            f"{_console_fragment(location.log_group)}$3FlogStreamNameFilter$3D{streams}"
        )
    suffix = f"?{_region_query(region)}" if region else ""
    return f"{_console_host(region)}/systems-manager/run-command/{failed.command_id}/{failed.instance_id}{suffix}"


def top_failed(
    failed: Iterable[FailedInvocation], budget_statuses: Iterable[InvocationStatus], limit: int
) -> list[FailedInvocation]:
    """The failures worth a look first: those that spent the budget, then other failures, then the halt's
    consequences (Cancelled, Terminated); by wave, then instance ID."""
    spending = frozenset(budget_statuses)

    def rank(item: FailedInvocation) -> tuple[int, int, str]:
        group = 0 if item.status in spending else 2 if item.status in HALT_CONSEQUENCES else 1
        return group, item.wave, item.instance_id

    return sorted(failed, key=rank)[:limit]


# ---------------------------------------------------------------------------------------------------- what is known
@dataclass(frozen=True)
class RolloutReport:
    """A rollout as notify reads it when it publishes: the rollout, its waves, its failures, where output lands."""

    rollout: Rollout
    waves: Sequence[Wave]
    failed: Sequence[FailedInvocation] = ()
    location: OutputLocation = field(default_factory=OutputLocation)

    @property
    def wave_range(self) -> str:
        return f"waves 0-{self.rollout.wave_count - 1}" if self.rollout.wave_count > 1 else "1 wave"

    def top_failed(self, limit: int) -> list[FailedInvocation]:
        return top_failed(self.failed, self.rollout.budget_statuses, limit)


def duration_seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None
