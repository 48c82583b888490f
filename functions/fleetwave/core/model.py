"""Domain records of a rollout as the ledger holds them. Pure data: no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from fleetwave.core.status import InvocationStatus


class RolloutState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    BAKING = "BAKING"
    SUCCEEDED = "SUCCEEDED"
    COMPLETED_WITH_ERRORS = "COMPLETED_WITH_ERRORS"
    HALTED = "HALTED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_ROLLOUT_STATES


ACTIVE_ROLLOUT_STATES = frozenset({RolloutState.PENDING, RolloutState.RUNNING, RolloutState.BAKING})
TERMINAL_ROLLOUT_STATES = frozenset(set(RolloutState) - ACTIVE_ROLLOUT_STATES)


class WaveState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    HALTED = "HALTED"
    CANCELLED = "CANCELLED"


class ChunkState(StrEnum):
    INTENT = "INTENT"  # recorded before SendCommand: the only protection SendCommand's lack of a token allows
    SENT = "SENT"


Counts = dict[InvocationStatus, int]


def empty_counts() -> Counts:
    return {status: 0 for status in InvocationStatus}


@dataclass
class Rollout:
    rollout_id: str
    spec_name: str
    state: RolloutState
    current_wave: int
    wave_count: int
    target_count: int
    skipped_count: int
    budget_allowed: int
    budget_statuses: frozenset[InvocationStatus]
    document_name: str
    document_version: str
    document_hash: str
    started_at: datetime
    bake_time: int
    alarm_gates: tuple[str, ...] = ()
    counts: Counts = field(default_factory=empty_counts)
    ended_at: datetime | None = None
    reason: str = ""
    bake_until: datetime | None = None
    # Set by fleetwave from the path the start came by (operator, schedule, remediation), never by the caller.
    trigger: str = "operator"
    # Who: the IAM principal ARN AWS authenticated (operator), the scheduler, or the alarm (remediation).
    started_by: str = ""
    cancelled_by: str = ""

    @property
    def budget_used(self) -> int:
        return sum(self.counts.get(status, 0) for status in self.budget_statuses)

    @property
    def remaining_budget(self) -> int:
        """Errors still tolerated; negative once the budget is exceeded."""
        return self.budget_allowed - self.budget_used

    @property
    def budget_exceeded(self) -> bool:
        return self.budget_used > self.budget_allowed


@dataclass
class Wave:
    index: int
    size: int
    max_concurrency: int
    state: WaveState
    next_chunk: int = 0
    dispatched: int = 0
    counts: Counts = field(default_factory=empty_counts)
    started_at: datetime | None = None
    completed_at: datetime | None = None

    @property
    def chunk_count(self) -> int:
        from fleetwave.constants import MAX_IDS_PER_COMMAND

        return -(-self.size // MAX_IDS_PER_COMMAND)

    @property
    def terminal_count(self) -> int:
        return sum(n for status, n in self.counts.items() if status.is_terminal)

    @property
    def fully_dispatched(self) -> bool:
        return self.dispatched >= self.size

    @property
    def settled(self) -> bool:
        """Every target of the wave was dispatched and reached a terminal status."""
        return self.fully_dispatched and self.terminal_count >= self.size


@dataclass
class Chunk:
    wave: int
    index: int
    instance_ids: tuple[str, ...]
    state: ChunkState
    max_concurrency: int
    command_id: str | None = None
    open: int = 0
    requested_at: datetime | None = None
    last_news_at: datetime | None = None
    cancel_requested: bool = False
    comment: str = ""

    @property
    def slots_in_use(self) -> int:
        """Invocations SSM may be running for this command right now: its MaxConcurrency caps its open ones."""
        if self.state is ChunkState.INTENT:
            return self.max_concurrency
        return min(self.max_concurrency, self.open)


@dataclass(frozen=True)
class StatusUpdate:
    """One observed invocation status, from an event or a poll, already classified."""

    command_id: str
    instance_id: str
    status: InvocationStatus
    status_details: str = ""
    observed_at: datetime | None = None
    source: str = ""
    output_url: str = ""


@dataclass(frozen=True)
class SkippedTarget:
    instance_id: str
    reason: str
