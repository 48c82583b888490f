"""What fleetwave tells people and other systems about rollouts: which ledger changes are news, the EventBridge event
details, the SNS subjects and bodies, and the Slack Block Kit messages. Pure: no I/O, no clock, no environment.

The schemas are documented in docs/notifications.md; the golden files under tests/notifications/golden/ pin them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ConfigDict, Field

from fleetwave.constants import (
    DETAIL_TYPE_REMEDIATION_SKIPPED,
    DETAIL_TYPE_REMEDIATION_STARTED,
    DETAIL_TYPE_REMEDIATION_VERIFICATION_FAILED,
    DETAIL_TYPE_ROLLOUT_FINISHED,
    DETAIL_TYPE_ROLLOUT_HALTED,
    DETAIL_TYPE_ROLLOUT_STARTED,
    DETAIL_TYPE_WAVE_COMPLETED,
    DETAIL_TYPE_WAVE_STARTED,
    NOTIFICATION_SCHEMA_VERSION,
)
from fleetwave.core.model import Rollout, RolloutState, Wave, WaveState
from fleetwave.core.spec import OutputSpec
from fleetwave.core.status import InvocationStatus
from fleetwave.core.summary import FailedInvocation

# Failed instances a Slack message lists (with links); the SNS e-mail body lists a few more.
TOP_FAILED_SLACK = 5
TOP_FAILED_EMAIL = 10
# SNS: a subject is at most 100 printable ASCII characters.
MAX_SUBJECT_LENGTH = 100
# Slack: a section's text is at most 3,000 characters, a header's 150.
_MAX_SECTION_TEXT = 2900
_MAX_HEADER_TEXT = 150
_BAR_CELLS = 10

# Deterministic event IDs: the same ledger change always gets the same ID, so subscribers can deduplicate.
_EVENT_ID_NAMESPACE = uuid.UUID("6f1c2a4e-9d1b-5c3e-8a7f-0b1e2d3c4f50")

_FINISHED = frozenset({RolloutState.SUCCEEDED, RolloutState.COMPLETED_WITH_ERRORS})
_HALTED = frozenset({RolloutState.HALTED, RolloutState.CANCELLED, RolloutState.FAILED})
# A halt's consequences: listed after the failures that caused it.
_CONSEQUENCES = frozenset({InvocationStatus.CANCELLED, InvocationStatus.TERMINATED})
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

SEVERITY: Mapping[RolloutState, str] = {
    RolloutState.SUCCEEDED: "info",
    RolloutState.COMPLETED_WITH_ERRORS: "warning",
    RolloutState.CANCELLED: "warning",
    RolloutState.HALTED: "critical",
    RolloutState.FAILED: "critical",
}
# Slack's own palette: green, yellow, red, grey, blue.
COLOR_GOOD = "#2EB67D"
COLOR_WARNING = "#ECB22E"
COLOR_DANGER = "#E01E5A"
COLOR_NEUTRAL = "#868686"
COLOR_ACTIVE = "#36C5F0"
STATE_COLOR: Mapping[RolloutState, str] = {
    RolloutState.SUCCEEDED: COLOR_GOOD,
    RolloutState.COMPLETED_WITH_ERRORS: COLOR_WARNING,
    RolloutState.HALTED: COLOR_DANGER,
    RolloutState.FAILED: COLOR_DANGER,
    RolloutState.CANCELLED: COLOR_NEUTRAL,
    RolloutState.PENDING: COLOR_ACTIVE,
    RolloutState.RUNNING: COLOR_ACTIVE,
    RolloutState.BAKING: COLOR_ACTIVE,
}
_STATE_EMOJI: Mapping[RolloutState, str] = {
    RolloutState.SUCCEEDED: ":white_check_mark:",
    RolloutState.COMPLETED_WITH_ERRORS: ":warning:",
    RolloutState.HALTED: ":octagonal_sign:",
    RolloutState.FAILED: ":x:",
    RolloutState.CANCELLED: ":no_entry_sign:",
}
_WAVE_EMOJI: Mapping[WaveState, str] = {
    WaveState.PENDING: ":white_circle:",
    WaveState.RUNNING: ":large_blue_circle:",
    WaveState.COMPLETE: ":white_check_mark:",
    WaveState.HALTED: ":octagonal_sign:",
    WaveState.CANCELLED: ":no_entry_sign:",
}


# ---------------------------------------------------------------------------------------------------- ledger changes
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


def rollout_detail_type(old: RolloutState | None, new: RolloutState) -> str | None:
    """The event a rollout's state change makes, or None: only the start and the end are news."""
    if old is RolloutState.PENDING and new is RolloutState.RUNNING:
        return DETAIL_TYPE_ROLLOUT_STARTED
    if old is not None and old.is_terminal:
        return None  # a terminal state never changes; a repeated image is not a second end
    if new in _HALTED:
        return DETAIL_TYPE_ROLLOUT_HALTED
    if new in _FINISHED:
        return DETAIL_TYPE_ROLLOUT_FINISHED
    return None


def wave_detail_type(old: WaveState | None, new: WaveState) -> str | None:
    """The event a wave's state change makes, or None (a halted wave is told by Rollout Halted)."""
    if new is WaveState.RUNNING and old is not WaveState.RUNNING:
        return DETAIL_TYPE_WAVE_STARTED
    if new is WaveState.COMPLETE and old is not WaveState.COMPLETE:
        return DETAIL_TYPE_WAVE_COMPLETED
    return None


_REMEDIATION_DETAIL_TYPES: Mapping[str, str] = {
    "started": DETAIL_TYPE_REMEDIATION_STARTED,
    "skipped": DETAIL_TYPE_REMEDIATION_SKIPPED,
    "verification_failed": DETAIL_TYPE_REMEDIATION_VERIFICATION_FAILED,
}


def remediation_detail_type(record: RemediationRecord) -> str:
    """``started``: a runbook was started; ``skipped``: nothing ran (cooldown, storm breaker, ...);
    ``verification_failed``: the runbook ran but its alarm was not back to OK in time. The last one is not told as
    a skip: something did run, and it did not help, which is what a subscriber needs to act on."""
    return _REMEDIATION_DETAIL_TYPES[record.outcome]


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


def _failures_in(counts: Mapping[InvocationStatus, int]) -> int:
    return sum(n for status, n in counts.items() if status.is_terminal and status is not InvocationStatus.SUCCESS)


def _escape(text: str) -> str:
    """Slack mrkdwn: &, < and > are control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _ascii_line(text: str, limit: int) -> str:
    line = " ".join(text.encode("ascii", "replace").decode("ascii").split())
    return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."


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
        group = 0 if item.status in spending else 2 if item.status in _CONSEQUENCES else 1
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


def _duration_seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


def _budget_json(rollout: Rollout) -> dict[str, Any]:
    return {
        "allowed": rollout.budget_allowed,
        "used": rollout.budget_used,
        "remaining": rollout.remaining_budget,
        "counts": sorted(status.value for status in rollout.budget_statuses),
    }


# ---------------------------------------------------------------------------------------------------- event details
def rollout_event_detail(
    detail_type: str, rollout: Rollout, previous_state: RolloutState | None, *, event_id: str
) -> dict[str, Any]:
    """Detail of Rollout Started, Rollout Halted and Rollout Finished (from the rollout item as it changed)."""
    started = detail_type == DETAIL_TYPE_ROLLOUT_STARTED
    detail: dict[str, Any] = {
        "schema_version": NOTIFICATION_SCHEMA_VERSION,
        "event_id": event_id,
        "occurred_at": iso(rollout.started_at if started else rollout.ended_at or rollout.started_at),
        "rollout_id": rollout.rollout_id,
        "spec": rollout.spec_name,
        "state": rollout.state.value,
        "previous_state": previous_state.value if previous_state else None,
        "trigger": rollout.trigger,
        "document": {
            "name": rollout.document_name,
            "version": rollout.document_version,
            "hash": rollout.document_hash,
        },
        "targets": rollout.target_count,
        "skipped": rollout.skipped_count,
        "wave_count": rollout.wave_count,
        "current_wave": rollout.current_wave,
        "budget": _budget_json(rollout),
        "started_at": iso(rollout.started_at),
    }
    if started:
        detail["bake_time_seconds"] = rollout.bake_time
        detail["alarm_gates"] = list(rollout.alarm_gates)
    else:
        detail["reason"] = rollout.reason
        detail["counts"] = counts_json(rollout.counts)
        detail["ended_at"] = iso(rollout.ended_at)
        detail["duration_seconds"] = _duration_seconds(rollout.started_at, rollout.ended_at)
    return detail


def wave_event_detail(detail_type: str, rollout: Rollout, wave: Wave, *, event_id: str) -> dict[str, Any]:
    """Detail of Wave Started and Wave Completed (the wave as it changed; the rollout as read at publication)."""
    last = wave.index >= rollout.wave_count - 1
    completed = detail_type == DETAIL_TYPE_WAVE_COMPLETED
    detail: dict[str, Any] = {
        "schema_version": NOTIFICATION_SCHEMA_VERSION,
        "event_id": event_id,
        "occurred_at": iso(wave.completed_at if completed else wave.started_at),
        "rollout_id": rollout.rollout_id,
        "spec": rollout.spec_name,
        "wave": wave.index,
        "wave_count": rollout.wave_count,
        "last_wave": last,
        "size": wave.size,
        "max_concurrency": wave.max_concurrency,
        "started_at": iso(wave.started_at),
        "budget": _budget_json(rollout),
    }
    if completed:
        detail["dispatched"] = wave.dispatched
        detail["counts"] = counts_json(wave.counts)
        detail["completed_at"] = iso(wave.completed_at)
        detail["duration_seconds"] = _duration_seconds(wave.started_at, wave.completed_at)
        detail["next_wave"] = None if last else wave.index + 1
        detail["bake_time_seconds"] = 0 if last else rollout.bake_time
    return detail


def remediation_event_detail(
    record: RemediationRecord, *, event_id: str, occurred_at: datetime | None
) -> dict[str, Any]:
    """Detail of Remediation Started and Remediation Skipped."""
    detail: dict[str, Any] = {
        "schema_version": NOTIFICATION_SCHEMA_VERSION,
        "event_id": event_id,
        "occurred_at": iso(occurred_at),
        "rule": record.rule,
        "alarm_name": record.alarm_name,
        "instance_id": record.instance_id,
        "outcome": record.outcome,
        "reason": record.reason,
        "rollout_id": record.rollout_id,
    }
    if record.document:
        detail["document"] = record.document
    return detail


# ---------------------------------------------------------------------------------------------------- SNS
@dataclass(frozen=True)
class SnsMessage:
    subject: str
    body: str
    payload: dict[str, Any]
    attributes: dict[str, str]


def summary_subject(rollout: Rollout) -> str:
    """``[fleetwave] patching SUCCEEDED: 20/20 succeeded in 24m 10s`` (at most 100 ASCII characters)."""
    state = rollout.state
    succeeded = rollout.counts.get(InvocationStatus.SUCCESS, 0)
    duration = format_duration(_duration_seconds(rollout.started_at, rollout.ended_at))
    head = f"[fleetwave] {rollout.spec_name} {state.value}"
    if state in _FINISHED:
        text = f"{head}: {succeeded}/{rollout.target_count} succeeded in {duration}"
    else:
        text = f"{head} at wave {rollout.current_wave}"
        if rollout.reason:
            text += f": {rollout.reason}"
    return _ascii_line(text, MAX_SUBJECT_LENGTH)


def _summary_lead(rollout: Rollout) -> str:
    state = rollout.state
    if state in _FINISHED:
        return f"Rollout {rollout.rollout_id} of spec {rollout.spec_name} ended {state.value}."
    waves = f"waves 0-{rollout.wave_count - 1}" if rollout.wave_count > 1 else "its only wave"
    return (
        f"Rollout {rollout.rollout_id} of spec {rollout.spec_name} ended {state.value} "
        f"in wave {rollout.current_wave} ({waves})."
    )


def summary_body(report: RolloutReport) -> str:
    """The plain-text body an e-mail subscriber reads at a glance: outcome first, then detail."""
    rollout = report.rollout
    lines = [_summary_lead(rollout)]
    if rollout.reason:
        lines.append(f"Reason: {rollout.reason}")
    lines.append("")
    skipped = f" ({rollout.skipped_count} skipped)" if rollout.skipped_count else ""
    budget_counts = ", ".join(sorted(status.value for status in rollout.budget_statuses)) or "nothing"
    rows = [
        ("Targets", f"{rollout.target_count}{skipped}"),
        ("Result", counts_text(rollout.counts, empty="nothing dispatched")),
        ("Error budget", f"{budget_text(rollout)}; counts {budget_counts}"),
        ("Document", f"{rollout.document_name} version {rollout.document_version}"),
        (
            "Duration",
            f"{format_duration(_duration_seconds(rollout.started_at, rollout.ended_at))} "
            f"({iso(rollout.started_at)} to {iso(rollout.ended_at) or '-'})",
        ),
        ("Trigger", rollout.trigger or "-"),
    ]
    lines.extend(f"{label:<13}{value}" for label, value in rows)
    lines.append("")
    lines.append("Waves")
    for wave in report.waves:
        progress = f"{wave.terminal_count}/{wave.size}"
        counts = counts_text(wave.counts, empty="not dispatched")
        lines.append(f"  {wave.index:>2}  {wave.state.value:<9} {progress:>11}  {counts}")
    if report.failed:
        shown = report.top_failed(TOP_FAILED_EMAIL)
        lines.append("")
        lines.append(f"Failed instances ({len(shown)} of {len(report.failed)})")
        for item in shown:
            details = f" ({item.status_details})" if item.status_details and item.status_details != item.status else ""
            lines.append(f"  {item.instance_id}  {item.status.value}{details}, wave {item.wave}")
            lines.append(f"    {output_link(item, report.location)}")
    return "\n".join(lines)


def summary_message(report: RolloutReport, payload: dict[str, Any]) -> SnsMessage:
    """The one SNS summary of a rollout's final state. ``payload`` is fleetwave.core.summary.build_summary's."""
    rollout = report.rollout
    return SnsMessage(
        subject=summary_subject(rollout),
        body=summary_body(report),
        payload={"schema_version": NOTIFICATION_SCHEMA_VERSION, "kind": "summary", **payload},
        attributes={
            "kind": "summary",
            "rollout_id": rollout.rollout_id,
            "spec": rollout.spec_name,
            "state": rollout.state.value,
            "severity": SEVERITY.get(rollout.state, "critical"),
        },
    )


_NOTICE_TITLES: Mapping[str, str] = {"start_skipped": "start skipped"}


def notice_message(notice: NoticeRecord, *, event_id: str, occurred_at: datetime | None) -> SnsMessage:
    """An SNS notice: not a rollout, but something a person should know (e.g. a scheduled start that did not run)."""
    title = _NOTICE_TITLES.get(notice.kind, notice.kind.replace("_", " "))
    spec = notice.spec_name or "(no spec)"
    lines = [f"fleetwave: {title} for spec {spec}."]
    if notice.kind == "start_skipped":
        lines = [f"fleetwave did not start a rollout of spec {spec}: nothing was dispatched."]
    if notice.reason:
        lines.append(f"Reason: {notice.reason}")
    if occurred_at:
        lines.append(f"When: {iso(occurred_at)}")
    return SnsMessage(
        subject=_ascii_line(f"[fleetwave] {spec}: {title}", MAX_SUBJECT_LENGTH),
        body="\n".join(lines),
        payload={
            "schema_version": NOTIFICATION_SCHEMA_VERSION,
            "kind": "notice",
            "notice": notice.kind,
            "event_id": event_id,
            "spec": notice.spec_name,
            "reason": notice.reason,
            "occurred_at": iso(occurred_at),
        },
        attributes={"kind": "notice", "notice": notice.kind, "spec": notice.spec_name, "severity": "warning"},
    )


# ---------------------------------------------------------------------------------------------------- Slack
def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:_MAX_HEADER_TEXT], "emoji": True}}


def _sections(title: str, lines: Sequence[str]) -> list[dict[str, Any]]:
    """Lines under a bold title, split into as many sections as Slack's 3,000-character limit needs."""
    blocks: list[dict[str, Any]] = []
    current = f"*{title}*"
    for line in lines:
        if len(current) + 1 + len(line) > _MAX_SECTION_TEXT:
            blocks.append({"type": "section", "text": _mrkdwn(current)})
            current = line
        else:
            current = f"{current}\n{line}"
    blocks.append({"type": "section", "text": _mrkdwn(current)})
    return blocks


def progress_bar(done: int, total: int) -> str:
    filled = _BAR_CELLS if total and done >= total else (_BAR_CELLS * done // total if total else 0)
    return "█" * filled + "░" * (_BAR_CELLS - filled)


def wave_progress_line(wave: Wave) -> str:
    """One wave at a glance: ``:white_check_mark: *wave 1*  `██████████`  9/9  COMPLETE · 9 Success``."""
    emoji = _WAVE_EMOJI.get(wave.state, ":white_circle:")
    if wave.state is WaveState.COMPLETE and _failures_in(wave.counts):
        emoji = ":warning:"
    counts = counts_text(wave.counts, empty="not dispatched" if not wave.dispatched else "none yet")
    return (
        f"{emoji} *wave {wave.index}*  `{progress_bar(wave.terminal_count, wave.size)}`  "
        f"{wave.terminal_count}/{wave.size}  {wave.state.value} · {counts}"
    )


def _failed_lines(report: RolloutReport) -> list[str]:
    lines = []
    for item in report.top_failed(TOP_FAILED_SLACK):
        details = f" ({item.status_details})" if item.status_details and item.status_details != item.status else ""
        link = output_link(item, report.location)
        lines.append(f"• <{link}|{item.instance_id}>  {item.status.value}{_escape(details)} · wave {item.wave}")
    more = len(report.failed) - len(lines)
    if more > 0:
        lines.append(f"_and {more} more_")
    return lines


def _context(rollout: Rollout) -> dict[str, Any]:
    text = (
        f"fleetwave · `{rollout.rollout_id}` · {_escape(rollout.document_name)} v{rollout.document_version} · "
        f"trigger {_escape(rollout.trigger or '-')}"
    )
    return {"type": "context", "elements": [_mrkdwn(text)]}


def _slack_payload(text: str, color: str, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    # Blocks inside an attachment get the colour bar; ``text`` is what notifications and old clients show.
    return {"text": text, "attachments": [{"color": color, "blocks": blocks}]}


def _body_blocks(report: RolloutReport, lead: str, elapsed_label: str, elapsed: float | None) -> list[dict[str, Any]]:
    rollout = report.rollout
    skipped = f" ({rollout.skipped_count} skipped)" if rollout.skipped_count else ""
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": _mrkdwn(lead)},
        {
            "type": "section",
            "fields": [
                _mrkdwn(f"*State*\n{rollout.state.value}"),
                _mrkdwn(f"*Error budget*\n{budget_text(rollout)}"),
                _mrkdwn(f"*Targets*\n{rollout.target_count}{skipped}"),
                _mrkdwn(f"*{elapsed_label}*\n{format_duration(elapsed)}"),
            ],
        },
        *_sections("Waves", [wave_progress_line(wave) for wave in report.waves]),
    ]
    if report.failed:
        blocks.extend(_sections(f"Top failed instances ({len(report.failed)} in all)", _failed_lines(report)))
    blocks.append(_context(rollout))
    return blocks


def slack_final_message(report: RolloutReport) -> dict[str, Any]:
    """The Slack message of a rollout's final state."""
    rollout = report.rollout
    state = rollout.state
    spec = rollout.spec_name
    lead = f"Rollout of *{_escape(spec)}* ended *{state.value}*: {counts_text(rollout.counts, empty='nothing ran')}."
    if rollout.reason:
        lead += f"\n>{_escape(rollout.reason)}"
    text = f"fleetwave: {spec} {state.value}"
    if rollout.reason:
        text += f": {rollout.reason}"
    blocks = [
        _header(f"{_STATE_EMOJI.get(state, '')} {spec} {state.value}".strip()),
        *_body_blocks(report, lead, "Duration", _duration_seconds(rollout.started_at, rollout.ended_at)),
    ]
    return _slack_payload(text, STATE_COLOR.get(state, COLOR_NEUTRAL), blocks)


def slack_wave_message(report: RolloutReport, detail_type: str, wave: Wave) -> dict[str, Any]:
    """The Slack message of a wave transition (``wave`` as it changed; the report as read at publication)."""
    rollout = report.rollout
    spec = rollout.spec_name
    if detail_type == DETAIL_TYPE_WAVE_STARTED:
        at = wave.started_at
        header = f":arrow_forward: {spec}: wave {wave.index} started ({report.wave_range})"
        concurrency = f", {wave.max_concurrency} at a time" if wave.max_concurrency < wave.size else ""
        lead = f"Wave {wave.index} of *{_escape(spec)}* started: {wave.size} targets{concurrency}."
        text = f"fleetwave: {spec} wave {wave.index} started ({wave.size} targets)"
        color = COLOR_ACTIVE
    else:
        at = wave.completed_at
        failures = _failures_in(wave.counts)
        header = f"{':warning:' if failures else ':white_check_mark:'} {spec}: wave {wave.index} complete"
        header += f" ({report.wave_range})"
        lead = f"Wave {wave.index} of *{_escape(spec)}* complete: {counts_text(wave.counts)}."
        if wave.index < rollout.wave_count - 1:
            bake = f" after a {format_duration(rollout.bake_time)} bake" if rollout.bake_time else ""
            lead += f"\nNext: wave {wave.index + 1}{bake}."
        text = f"fleetwave: {spec} wave {wave.index} complete: {counts_text(wave.counts)}"
        color = COLOR_WARNING if failures else COLOR_GOOD
    blocks = [_header(header), *_body_blocks(report, lead, "Elapsed", _duration_seconds(rollout.started_at, at))]
    return _slack_payload(text, color, blocks)


def slack_wants_wave_message(detail_type: str, wave: Wave, wave_count: int) -> bool:
    """One Slack message per wave transition, except the last wave's completion: the final message tells it."""
    return not (detail_type == DETAIL_TYPE_WAVE_COMPLETED and wave.index >= wave_count - 1)
