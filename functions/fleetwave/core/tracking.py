"""Turning observed statuses into ledger transitions and exact counter deltas. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fleetwave.core.model import StatusUpdate
from fleetwave.core.status import InvocationStatus, is_allowed_transition

InvocationKey = tuple[str, str]  # (command_id, instance_id)


@dataclass(frozen=True)
class Transition:
    rollout_id: str
    wave: int
    chunk: int
    command_id: str
    instance_id: str
    old: InvocationStatus
    new: InvocationStatus
    update: StatusUpdate

    @property
    def closes(self) -> bool:
        """The invocation leaves the open set (its command frees a concurrency slot)."""
        return self.new.is_terminal and not self.old.is_terminal


@dataclass(frozen=True)
class Placement:
    """Where an invocation belongs in the ledger."""

    rollout_id: str
    wave: int
    chunk: int


def plan_transitions(
    current: Mapping[InvocationKey, InvocationStatus],
    placements: Mapping[str, Placement],
    updates: Iterable[StatusUpdate],
) -> list[Transition]:
    """Collapse a batch of observations into at most one monotonic transition per invocation.

    ``current`` holds the recorded status of each known invocation; an observation for an invocation that is not
    recorded, or for a command that is not ours (not in ``placements``), changes nothing. Duplicates and late
    events lose against what is already recorded, so the result depends only on the set of observations.
    """
    best: dict[InvocationKey, StatusUpdate] = {}
    for update in updates:
        key = (update.command_id, update.instance_id)
        if key not in current or update.command_id not in placements:
            continue
        seen = best.get(key)
        if seen is None or update.status.rank > seen.status.rank or _more_detailed(update, seen):
            best[key] = update
    transitions = []
    for key, update in best.items():
        old = current[key]
        if not is_allowed_transition(old, update.status):
            continue
        place = placements[update.command_id]
        transitions.append(
            Transition(place.rollout_id, place.wave, place.chunk, key[0], key[1], old, update.status, update)
        )
    transitions.sort(key=lambda t: (t.rollout_id, t.command_id, t.instance_id))
    return transitions


def _more_detailed(candidate: StatusUpdate, seen: StatusUpdate) -> bool:
    # Two terminal observations of equal rank: keep the first one unless they are the same status with details.
    return candidate.status == seen.status and bool(candidate.status_details) and not seen.status_details


def counter_deltas(transitions: Iterable[Transition]) -> Counter[InvocationStatus]:
    """Per-status change of the counters: one out of the old status, one into the new."""
    deltas: Counter[InvocationStatus] = Counter()
    for transition in transitions:
        deltas[transition.old] -= 1
        deltas[transition.new] += 1
    return Counter({status: n for status, n in deltas.items() if n})
