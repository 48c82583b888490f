"""Rollout decisions: (state, observation) -> actions. Every rule of a rollout lives here; nothing here does I/O.

The service layer (fleetwave.service) loads state, calls these functions, and carries the actions out with
conditional writes, so two Lambda invocations that decide the same thing at once cannot both act on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from fleetwave.constants import MAX_IDS_PER_COMMAND
from fleetwave.core.model import Chunk, ChunkState, Rollout, RolloutState, Wave
from fleetwave.core.status import InvocationStatus

# How long a wave start waits before checking a CLOSED change calendar again.
CALENDAR_RECHECK = timedelta(minutes=15)


@dataclass(frozen=True)
class DispatchChunk:
    """Send chunk ``chunk`` of wave ``wave`` (at most 50 IDs) as one SendCommand."""

    wave: int
    chunk: int
    max_concurrency: int
    max_errors: int


@dataclass(frozen=True)
class CancelCommands:
    command_ids: tuple[str, ...]


@dataclass(frozen=True)
class Halt:
    reason: str
    state: RolloutState = RolloutState.HALTED


@dataclass(frozen=True)
class StartBake:
    """The wave is done and within budget: wait ``bake_time`` before the next one (a one-time timer)."""

    completed_wave: int
    next_wave: int
    until: datetime


@dataclass(frozen=True)
class StartWave:
    wave: int


@dataclass(frozen=True)
class Postpone:
    """Check again later (a change calendar is CLOSED)."""

    wave: int
    until: datetime
    reason: str


@dataclass(frozen=True)
class Finish:
    state: RolloutState
    reason: str = ""


Action = DispatchChunk | CancelCommands | Halt | StartBake | StartWave | Postpone | Finish


def chunk_size(wave: Wave, chunk: int) -> int:
    return max(0, min(MAX_IDS_PER_COMMAND, wave.size - chunk * MAX_IDS_PER_COMMAND))


def chunk_bounds(chunk: int, wave_size: int) -> tuple[int, int]:
    """Positions [start, end) of a chunk within its wave's ordered target list."""
    start = chunk * MAX_IDS_PER_COMMAND
    return start, min(wave_size, start + MAX_IDS_PER_COMMAND)


def open_commands(chunks: Iterable[Chunk], *, only_uncancelled: bool = False) -> tuple[str, ...]:
    return tuple(
        chunk.command_id
        for chunk in chunks
        if chunk.command_id and chunk.open > 0 and not (only_uncancelled and chunk.cancel_requested)
    )


def budget_reason(rollout: Rollout) -> str:
    return f"error budget exceeded: {rollout.budget_used} errors, {rollout.budget_allowed} allowed"


def final_state(rollout: Rollout) -> RolloutState:
    """SUCCEEDED only when every target succeeded; otherwise COMPLETED_WITH_ERRORS (SSM's 'Incomplete')."""
    if rollout.counts.get(InvocationStatus.SUCCESS, 0) >= rollout.target_count:
        return RolloutState.SUCCEEDED
    return RolloutState.COMPLETED_WITH_ERRORS


def plan_dispatch(rollout: Rollout, wave: Wave, chunks: Iterable[Chunk]) -> list[DispatchChunk]:
    """Chunks to send now so that the wave's in-flight invocations never exceed its max_concurrency.

    Concurrency is fleet-wide: every open command holds min(its MaxConcurrency, its open invocations) slots. A new
    command is sent only when it can run at full width (min(max_concurrency, chunk size) free slots), because a
    command's MaxConcurrency is fixed when it is sent: a narrow command would crawl after capacity frees up.
    """
    if rollout.budget_exceeded:
        return []
    in_use = sum(chunk.slots_in_use for chunk in chunks if chunk.wave == wave.index)
    free = wave.max_concurrency - in_use
    actions: list[DispatchChunk] = []
    next_chunk = wave.next_chunk
    while next_chunk < wave.chunk_count:
        size = chunk_size(wave, next_chunk)
        if free < min(wave.max_concurrency, size):
            break
        concurrency = min(free, size)
        actions.append(
            DispatchChunk(
                wave=wave.index,
                chunk=next_chunk,
                max_concurrency=concurrency,
                max_errors=max(0, rollout.remaining_budget),
            )
        )
        free -= concurrency
        next_chunk += 1
    return actions


def decide(rollout: Rollout, wave: Wave | None, chunks: Iterable[Chunk], now: datetime) -> list[Action]:
    """What to do after the ledger changed (new statuses, a sent command, a started wave)."""
    chunks = list(chunks)
    if rollout.state in (RolloutState.HALTED, RolloutState.CANCELLED):
        # CancelCommand may not have reached every open command (a crash right after the halt): ask again.
        pending = open_commands(chunks, only_uncancelled=True)
        return [CancelCommands(pending)] if pending else []
    if rollout.state is not RolloutState.RUNNING or wave is None:
        return []
    if rollout.budget_exceeded:
        return [Halt(budget_reason(rollout)), *_cancel(chunks)]
    if wave.settled:
        if wave.index >= rollout.wave_count - 1:
            return [Finish(final_state(rollout))]
        return [StartBake(wave.index, wave.index + 1, now + timedelta(seconds=rollout.bake_time))]
    return list(plan_dispatch(rollout, wave, chunks))


def _cancel(chunks: list[Chunk]) -> list[Action]:
    ids = open_commands(chunks)
    return [CancelCommands(ids)] if ids else []


def decide_wave_start(
    rollout: Rollout,
    wave_index: int,
    now: datetime,
    *,
    alarm_states: Mapping[str, str | None],
    closed_calendars: Iterable[str] = (),
) -> list[Action]:
    """Whether wave ``wave_index`` may start now (invariant 3: no wave while the budget is spent, an alarm gate is in
    ALARM, or a change calendar is CLOSED). ``alarm_states`` maps each gate to its state, or None when missing."""
    if wave_index > 0 and (rollout.state is not RolloutState.BAKING or rollout.current_wave != wave_index - 1):
        return []  # a repeated or stale timer: the wave already started, or the rollout ended
    if wave_index == 0 and rollout.state is not RolloutState.PENDING:
        return []
    if rollout.bake_until is not None and now < rollout.bake_until:
        return []  # fired early (e.g. the reconciler): the bake is not over
    if rollout.budget_exceeded:
        return [Halt(budget_reason(rollout))]
    for alarm in rollout.alarm_gates:
        state = alarm_states.get(alarm)
        if state is None:
            return [Halt(f"alarm gate {alarm!r} does not exist: refusing to start wave {wave_index} unguarded")]
        if state == "ALARM":
            return [Halt(f"alarm gate {alarm!r} is in ALARM before wave {wave_index}")]
    closed = sorted(closed_calendars)
    if closed:
        return [Postpone(wave_index, now + CALENDAR_RECHECK, f"change calendar {', '.join(closed)} is CLOSED")]
    return [StartWave(wave_index)]


def intent_is_stale(chunk: Chunk, now: datetime, window_seconds: int) -> bool:
    """A dispatch intent old enough that ListCommands would show its command if it had been sent."""
    return (
        chunk.state is ChunkState.INTENT
        and chunk.requested_at is not None
        and (now - chunk.requested_at).total_seconds() >= window_seconds
    )
