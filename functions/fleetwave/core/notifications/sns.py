"""SNS messages: the summary of a rollout's final state (subject, plain-text body, JSON payload, attributes) and
notices. A subject is what an e-mail subscriber sees first: at most 100 printable ASCII characters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fleetwave.constants import NOTIFICATION_SCHEMA_VERSION
from fleetwave.core.model import Rollout, RolloutState
from fleetwave.core.notifications.common import (
    FINISHED_STATES,
    NoticeRecord,
    RolloutReport,
    budget_text,
    counts_text,
    duration_seconds,
    format_duration,
    iso,
    output_link,
)
from fleetwave.core.status import InvocationStatus

# The SNS e-mail body lists a few more failed instances than a Slack message.
TOP_FAILED_EMAIL = 10
# SNS: a subject is at most 100 printable ASCII characters.
MAX_SUBJECT_LENGTH = 100

SEVERITY: Mapping[RolloutState, str] = {
    RolloutState.SUCCEEDED: "info",
    RolloutState.COMPLETED_WITH_ERRORS: "warning",
    RolloutState.CANCELLED: "warning",
    RolloutState.HALTED: "critical",
    RolloutState.FAILED: "critical",
}


def _ascii_line(text: str, limit: int) -> str:
    line = " ".join(text.encode("ascii", "replace").decode("ascii").split())
    return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."


# ---------------------------------------------------------------------------------------------------- messages
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
    duration = format_duration(duration_seconds(rollout.started_at, rollout.ended_at))
    head = f"[fleetwave] {rollout.spec_name} {state.value}"
    if state in FINISHED_STATES:
        text = f"{head}: {succeeded}/{rollout.target_count} succeeded in {duration}"
    else:
        text = f"{head} at wave {rollout.current_wave}"
        if rollout.reason:
            text += f": {rollout.reason}"
    return _ascii_line(text, MAX_SUBJECT_LENGTH)


def _summary_lead(rollout: Rollout) -> str:
    state = rollout.state
    if state in FINISHED_STATES:
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
            f"{format_duration(duration_seconds(rollout.started_at, rollout.ended_at))} "
            f"({iso(rollout.started_at)} to {iso(rollout.ended_at) or '-'})",
        ),
        ("Trigger", rollout.trigger or "-"),
        ("Started by", rollout.started_by or "-"),
    ]
    if rollout.cancelled_by:
        rows.append(("Cancelled by", rollout.cancelled_by))
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
