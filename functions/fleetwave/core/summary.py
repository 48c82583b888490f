"""The rollout summary: the one document a person (or a subscriber) reads when a rollout ends. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fleetwave.core.model import Rollout, SkippedTarget, Wave
from fleetwave.core.status import InvocationStatus

MAX_FAILED_LISTED = 50


@dataclass(frozen=True)
class FailedInvocation:
    instance_id: str
    status: InvocationStatus
    status_details: str
    wave: int
    command_id: str
    output_url: str = ""


def _counts(counts: dict[InvocationStatus, int]) -> dict[str, int]:
    return {status.value: n for status, n in sorted(counts.items()) if n}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def build_summary(
    rollout: Rollout,
    waves: Sequence[Wave],
    failed: Iterable[FailedInvocation],
    skipped: Sequence[SkippedTarget] = (),
) -> dict[str, Any]:
    failed = list(failed)
    duration = (rollout.ended_at - rollout.started_at).total_seconds() if rollout.ended_at else None
    return {
        "rollout_id": rollout.rollout_id,
        "spec": rollout.spec_name,
        "state": rollout.state.value,
        "reason": rollout.reason,
        "document": {
            "name": rollout.document_name,
            "version": rollout.document_version,
            "hash": rollout.document_hash,
        },
        "targets": rollout.target_count,
        "wave_count": rollout.wave_count,
        "trigger": rollout.trigger,
        "started_by": rollout.started_by or None,
        "cancelled_by": rollout.cancelled_by or None,
        "skipped": rollout.skipped_count,
        "skipped_instances": [{"instance_id": s.instance_id, "reason": s.reason} for s in skipped[:MAX_FAILED_LISTED]],
        "counts": _counts(rollout.counts),
        "waves": [
            {
                "wave": wave.index,
                "size": wave.size,
                "dispatched": wave.dispatched,
                "state": wave.state.value,
                "counts": _counts(wave.counts),
            }
            for wave in waves
        ],
        "budget": {
            "allowed": rollout.budget_allowed,
            "used": rollout.budget_used,
            "counts": sorted(status.value for status in rollout.budget_statuses),
        },
        "failed_instances": [
            {
                "instance_id": item.instance_id,
                "status": item.status.value,
                "status_details": item.status_details,
                "wave": item.wave,
                "command_id": item.command_id,
                **({"output_url": item.output_url} if item.output_url else {}),
            }
            for item in failed[:MAX_FAILED_LISTED]
        ],
        "failed_total": len(failed),
        "started_at": _iso(rollout.started_at),
        "ended_at": _iso(rollout.ended_at),
        "duration_seconds": duration,
    }
