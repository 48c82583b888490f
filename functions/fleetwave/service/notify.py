"""The outbox: ledger changes (DynamoDB Streams) become summaries. A crash never loses one; a redelivered stream
batch does not repeat one (the publication is idempotent on rollout and final state)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from fleetwave.core.model import RolloutState
from fleetwave.core.summary import build_summary
from fleetwave.service.deps import Deps

_deserializer = TypeDeserializer()


@dataclass(frozen=True)
class StateChange:
    rollout_id: str
    old_state: str | None
    new_state: str

    @property
    def became_terminal(self) -> bool:
        new = RolloutState(self.new_state)
        old = RolloutState(self.old_state) if self.old_state else None
        return new.is_terminal and (old is None or not old.is_terminal)


def state_change(record: Mapping[str, Any]) -> StateChange | None:
    """A rollout item's state change in a stream record, or None for any other change."""
    data = record.get("dynamodb", {})
    new = {k: _deserializer.deserialize(v) for k, v in (data.get("NewImage") or {}).items()}
    old = {k: _deserializer.deserialize(v) for k, v in (data.get("OldImage") or {}).items()}
    if new.get("type") != "rollout":
        return None
    if new.get("state") == old.get("state"):
        return None
    return StateChange(str(new["rollout_id"]), old.get("state"), str(new["state"]))


def summary_for(deps: Deps, rollout_id: str) -> dict[str, Any]:
    ledger = deps.ledger
    rollout = ledger.get_rollout(rollout_id)
    return build_summary(
        rollout, ledger.get_waves(rollout_id), ledger.failed_invocations(rollout_id), ledger.get_skipped(rollout_id)
    )


def summary_text(summary: Mapping[str, Any]) -> tuple[str, str]:
    """Subject and plain-text body a person reads at a glance."""
    counts = summary["counts"]
    succeeded = counts.get("Success", 0)
    subject = f"fleetwave: {summary['spec']} {summary['state']} ({succeeded}/{summary['targets']} succeeded)"
    lines = [
        f"Rollout {summary['rollout_id']} of spec {summary['spec']} ended {summary['state']}.",
    ]
    if summary.get("reason"):
        lines.append(f"Reason: {summary['reason']}")
    document = summary["document"]
    lines.append(f"Document: {document['name']} version {document['version']}")
    lines.append(f"Targets: {summary['targets']} ({summary['skipped']} skipped)")
    lines.append("Counts: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    budget = summary["budget"]
    lines.append(f"Error budget: {budget['used']} used of {budget['allowed']} allowed")
    for wave in summary["waves"]:
        wave_counts = ", ".join(f"{k} {v}" for k, v in wave["counts"].items()) or "not dispatched"
        lines.append(f"  wave {wave['wave']}: {wave['size']} targets, {wave['state']}: {wave_counts}")
    if summary["failed_instances"]:
        lines.append(f"Failed instances ({summary['failed_total']}):")
        lines.extend(
            f"  {f['instance_id']} {f['status']} {f['status_details']}".rstrip() for f in summary["failed_instances"]
        )
    if summary.get("duration_seconds") is not None:
        lines.append(
            f"Duration: {summary['duration_seconds']:.0f} s ({summary['started_at']} to {summary['ended_at']})"
        )
    return subject, "\n".join(lines)


def severity(state: str) -> str:
    return {"SUCCEEDED": "info", "COMPLETED_WITH_ERRORS": "warning"}.get(state, "critical")


def publish_summary(deps: Deps, rollout_id: str) -> dict[str, Any]:
    summary = summary_for(deps, rollout_id)
    subject, body = summary_text(summary)
    deps.summaries.publish(
        subject,
        body,
        summary,
        {
            "rollout_id": rollout_id,
            "spec": summary["spec"],
            "state": summary["state"],
            "severity": severity(summary["state"]),
        },
    )
    return summary
