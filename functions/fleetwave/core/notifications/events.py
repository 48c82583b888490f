"""fleetwave's own EventBridge events: which ledger changes are news (their detail types) and the event details."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

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
from fleetwave.core.notifications.common import FINISHED_STATES, RemediationRecord, duration_seconds, iso
from fleetwave.core.status import InvocationStatus

_HALTED = frozenset({RolloutState.HALTED, RolloutState.CANCELLED, RolloutState.FAILED})


# ---------------------------------------------------------------------------------------------------- what is news
def rollout_detail_type(old: RolloutState | None, new: RolloutState) -> str | None:
    """The event a rollout's state change makes, or None: only the start and the end are news."""
    if old is RolloutState.PENDING and new is RolloutState.RUNNING:
        return DETAIL_TYPE_ROLLOUT_STARTED
    if old is not None and old.is_terminal:
        return None  # a terminal state never changes; a repeated image is not a second end
    if new in _HALTED:
        return DETAIL_TYPE_ROLLOUT_HALTED
    if new in FINISHED_STATES:
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


def counts_json(counts: Mapping[InvocationStatus, int]) -> dict[str, int]:
    """Per-status counts as event details carry them: non-zero only, by status name."""
    return {status.value: n for status, n in sorted(counts.items()) if n}


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
        "started_by": rollout.started_by or None,
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
        detail["cancelled_by"] = rollout.cancelled_by or None
        detail["counts"] = counts_json(rollout.counts)
        detail["ended_at"] = iso(rollout.ended_at)
        detail["duration_seconds"] = duration_seconds(rollout.started_at, rollout.ended_at)
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
        detail["duration_seconds"] = duration_seconds(wave.started_at, wave.completed_at)
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
