"""Fixed rollouts for format tests: every ID and time is a constant, so golden files are stable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fleetwave.core.model import Rollout, RolloutState, Wave, WaveState, empty_counts
from fleetwave.core.notifications.common import OutputLocation, RolloutReport
from fleetwave.core.status import DEFAULT_BUDGET_STATUSES, InvocationStatus
from fleetwave.core.summary import FailedInvocation

T0 = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
ROLLOUT_ID = "20260310T020000-a1b2c3"
S = InvocationStatus


def counts(**by_name: int) -> dict[InvocationStatus, int]:
    result = empty_counts()
    for name, n in by_name.items():
        result[InvocationStatus(name)] = n
    return result


def rollout(state: RolloutState = RolloutState.SUCCEEDED, **changes: Any) -> Rollout:
    base: dict[str, Any] = {
        "rollout_id": ROLLOUT_ID,
        "spec_name": "monthly-patching",
        "state": state,
        "current_wave": 2,
        "wave_count": 3,
        "target_count": 120,
        "skipped_count": 2,
        "budget_allowed": 3,
        "budget_statuses": DEFAULT_BUDGET_STATUSES,
        "document_name": "AWS-RunPatchBaseline",
        "document_version": "4",
        "document_hash": "9f2c" * 16,
        "started_at": T0,
        "bake_time": 1800,
        "alarm_gates": ("web-5xx",),
        "counts": counts(Success=120),
        "ended_at": T0 + timedelta(hours=1, minutes=52, seconds=7),
        "reason": "",
        "trigger": "schedule",
        "started_by": "scheduler.amazonaws.com",
    }
    base.update(changes)
    return Rollout(**base)


def wave(index: int, size: int, state: WaveState, **changes: Any) -> Wave:
    started = T0 + timedelta(minutes=45 * index)
    base: dict[str, Any] = {
        "index": index,
        "size": size,
        "max_concurrency": min(size, 20),
        "state": state,
        "dispatched": size if state is not WaveState.PENDING else 0,
        "counts": counts(Success=size) if state is WaveState.COMPLETE else empty_counts(),
        "started_at": started if state is not WaveState.PENDING else None,
        "completed_at": started + timedelta(minutes=14, seconds=30) if state is WaveState.COMPLETE else None,
    }
    base.update(changes)
    return Wave(**base)


def succeeded_waves() -> list[Wave]:
    return [wave(0, 1, WaveState.COMPLETE), wave(1, 12, WaveState.COMPLETE), wave(2, 107, WaveState.COMPLETE)]


def halted() -> RolloutReport:
    """Wave 1 spent the budget (4 failures > 3 allowed); its in-flight invocations were cancelled."""
    failed_wave = wave(
        1,
        59,
        WaveState.HALTED,
        counts=counts(Success=40, Failed=3, ExecutionTimedOut=1, Cancelled=15),
        completed_at=T0 + timedelta(minutes=58),
    )
    r = rollout(
        RolloutState.HALTED,
        current_wave=1,
        target_count=120,
        counts=counts(Success=41, Failed=3, ExecutionTimedOut=1, Cancelled=15),
        ended_at=T0 + timedelta(minutes=58, seconds=12),
        reason="error budget exceeded: 4 errors, 3 allowed",
    )
    failed = [
        FailedInvocation("i-0aa0000000000000c", S.CANCELLED, "Cancelled", 1, "cmd-2222", ""),
        FailedInvocation(
            "i-0aa0000000000000a",
            S.FAILED,
            "Failed",
            1,
            "cmd-2222",
            "https://s3.eu-west-1.amazonaws.com/patch-logs/fleetwave/cmd-2222/i-0aa0000000000000a/"
            "awsrunShellScript/0.awsrunShellScript/stdout",
        ),
        FailedInvocation("i-0aa0000000000000b", S.EXECUTION_TIMED_OUT, "ExecutionTimedOut", 1, "cmd-2222", ""),
        FailedInvocation("i-0aa0000000000000d", S.FAILED, "Failed", 1, "cmd-2223", ""),
        FailedInvocation("i-0aa0000000000000e", S.FAILED, "Failed", 1, "cmd-2223", ""),
        FailedInvocation("i-0aa0000000000000f", S.CANCELLED, "Cancelled", 1, "cmd-2223", ""),
    ]
    waves = [wave(0, 1, WaveState.COMPLETE), failed_wave, wave(2, 60, WaveState.PENDING)]
    location = OutputLocation(region="eu-west-1", s3_bucket="patch-logs", s3_prefix="fleetwave/")
    return RolloutReport(rollout=r, waves=waves, failed=failed, location=location)
