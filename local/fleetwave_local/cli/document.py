"""The result document: the JSON that ``simulate --json``, ``status --json``, ``watch --json`` and ``report --json``
print, and what the HTML report and the summary table are drawn from (docs/cli.md describes it); and the formats of
counts and durations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fleetwave.core.model import Rollout, SkippedTarget, Wave
from fleetwave.core.notifications.common import OutputLocation, output_link, top_failed
from fleetwave.core.status import HALT_CONSEQUENCES, InvocationStatus
from fleetwave.core.summary import FailedInvocation

from fleetwave_local.cli.errors import exit_code_for

DOCUMENT_SCHEMA = "fleetwave.rollout/v1"


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def all_counts(counts: Mapping[InvocationStatus, int]) -> dict[str, int]:
    """Every status, zeros included, in the order SSM moves through them: consumers never miss a key."""
    return {status.value: int(counts.get(status, 0)) for status in InvocationStatus}


def wave_document(wave: Wave) -> dict[str, Any]:
    return {
        "index": wave.index,
        "size": wave.size,
        "max_concurrency": wave.max_concurrency,
        "dispatched": wave.dispatched,
        "state": wave.state.value,
        "counts": all_counts(wave.counts),
        "started_at": iso(wave.started_at),
        "completed_at": iso(wave.completed_at),
    }


def failed_document(item: FailedInvocation, location: OutputLocation) -> dict[str, Any]:
    return {
        "instance_id": item.instance_id,
        "wave": item.wave,
        "status": item.status.value,
        "group": "stopped" if item.status in HALT_CONSEQUENCES else "failed",
        "status_details": item.status_details,
        "command_id": item.command_id,
        "output_url": item.output_url,
        "output_link": output_link(item, location),
    }


def api_calls_document(calls: Mapping[str, int]) -> dict[str, Any]:
    """``{"total": n, "by_service": {"ssm": {"SendCommand": 4, ...}, ...}}`` from ``service:Operation`` counts."""
    by_service: dict[str, dict[str, int]] = {}
    for key in sorted(calls):
        service, _, operation = key.partition(":")
        by_service.setdefault(service, {})[operation] = int(calls[key])
    return {"total": sum(int(n) for n in calls.values()), "by_service": by_service}


@dataclass
class RolloutView:
    """Everything read about one rollout, before it becomes the JSON document."""

    rollout: Rollout
    waves: list[Wave]
    skipped: list[SkippedTarget] = field(default_factory=list)
    failed: list[FailedInvocation] = field(default_factory=list)
    # Where the rollout's command output lands (the spec's output settings, the region): links to each output.
    location: OutputLocation = field(default_factory=OutputLocation)


def rollout_document(view: RolloutView, *, failed_limit: int | None = None) -> dict[str, Any]:
    rollout = view.rollout
    code = exit_code_for(rollout.state)
    duration = (rollout.ended_at - rollout.started_at).total_seconds() if rollout.ended_at else None
    # Failures first (those that spent the budget, then the others), the halt's cancellations and terminations last.
    limit = len(view.failed) if failed_limit is None else failed_limit
    failed = top_failed(view.failed, rollout.budget_statuses, limit)
    return {
        "schema": DOCUMENT_SCHEMA,
        "rollout_id": rollout.rollout_id,
        "spec": rollout.spec_name,
        "state": rollout.state.value,
        "reason": rollout.reason,
        "exit_code": int(code) if code is not None else None,
        "document": {
            "name": rollout.document_name,
            "version": rollout.document_version,
            "hash": rollout.document_hash,
        },
        "trigger": rollout.trigger,
        "started_by": rollout.started_by or None,
        "cancelled_by": rollout.cancelled_by or None,
        "target_count": rollout.target_count,
        "skipped_count": rollout.skipped_count,
        "skipped": [{"instance_id": s.instance_id, "reason": s.reason} for s in view.skipped],
        "counts": all_counts(rollout.counts),
        "current_wave": rollout.current_wave,
        "wave_count": rollout.wave_count,
        "waves": [wave_document(wave) for wave in sorted(view.waves, key=lambda w: w.index)],
        "budget": {
            "allowed": rollout.budget_allowed,
            "used": rollout.budget_used,
            "remaining": rollout.remaining_budget,
            "statuses": sorted(status.value for status in rollout.budget_statuses),
        },
        "failed_total": len(view.failed),
        "stopped_total": sum(1 for item in view.failed if item.status in HALT_CONSEQUENCES),
        "failed_instances": [failed_document(item, view.location) for item in failed],
        "started_at": iso(rollout.started_at),
        "ended_at": iso(rollout.ended_at),
        "duration_seconds": duration,
    }


# ------------------------------------------------------------------------------------------------- formatting
def format_duration(seconds: float | None) -> str:
    """``1h52m06s``, ``7m03s``, ``45s``."""
    if seconds is None:
        return "-"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def format_counts(counts: Mapping[str, int]) -> str:
    """Non-zero statuses, e.g. ``Success 29, Failed 1``; ``-`` when nothing was recorded."""
    parts = [f"{status} {n}" for status, n in counts.items() if n]
    return ", ".join(parts) or "-"
