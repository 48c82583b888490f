"""Applying observed invocation statuses to the ledger: from events (track_status) and from polls (reconcile)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from aws_lambda_powertools import Logger

from fleetwave.core.model import StatusUpdate
from fleetwave.core.status import UnknownStatusError, classify
from fleetwave.core.tracking import Placement, Transition, plan_transitions
from fleetwave.errors import ConflictError, FleetwaveError, NotFoundError
from fleetwave.observability import metrics
from fleetwave.service.deps import Deps
from fleetwave.service.rollouts import settle

logger = Logger(service="fleetwave", child=True)
_CONFLICT_RETRIES = 4


@dataclass(frozen=True)
class Observation:
    """A raw status report, as an event or a poll gave it (not yet classified)."""

    message_id: str
    command_id: str
    instance_id: str | None
    status: str
    status_details: str = ""
    source: str = ""
    output_url: str = ""

    @property
    def is_command_level(self) -> bool:
        return self.instance_id is None


@dataclass
class TrackResult:
    failed_message_ids: set[str]
    transitions: int = 0
    ignored: int = 0


def track(deps: Deps, observations: Sequence[Observation]) -> TrackResult:
    """Record a batch of observations; returns the message IDs that must be retried."""
    result = TrackResult(failed_message_ids=set())
    placements = deps.ledger.dispatch.lookup_commands({o.command_id for o in observations})
    ours = [o for o in observations if o.command_id in placements]
    result.ignored = len(observations) - len(ours)
    if result.ignored:
        metrics.add_metric(name="ForeignEventsIgnored", unit="Count", value=result.ignored)

    updates: list[tuple[Observation, StatusUpdate]] = []
    for observation in ours:
        if observation.is_command_level:
            _poll_if_open(deps, observation, placements[observation.command_id], result)
            continue
        try:
            update = _classify(deps, observation)
        except NotFoundError:
            # The event says "timed out" or "failed" but SSM cannot tell which kind yet: ask again later.
            result.failed_message_ids.add(observation.message_id)
            continue
        except UnknownStatusError as error:
            logger.warning("dropping an event with an undocumented status: %s", error)
            continue
        updates.append((observation, update))

    messages_by_rollout: dict[str, set[str]] = defaultdict(set)
    for observation, _update in updates:
        messages_by_rollout[placements[observation.command_id].rollout_id].add(observation.message_id)
    for rollout_id, message_ids in messages_by_rollout.items():
        rollout_updates = [u for o, u in updates if o.message_id in message_ids]
        try:
            applied = apply_updates(deps, rollout_id, rollout_updates, placements)
            result.transitions += len(applied)
            # Only an invocation that ends can free capacity, finish a wave or spend budget.
            if any(t.closes for t in applied):
                logger.set_correlation_id(rollout_id)
                rollout = settle(deps, rollout_id)
                metrics.add_metric(name="BudgetLeft", unit="Count", value=max(0, rollout.remaining_budget))
        except (ConflictError, FleetwaveError) as error:
            logger.warning("will retry %d messages: %s", len(message_ids), error, extra={"rollout_id": rollout_id})
            result.failed_message_ids |= message_ids
    return result


def apply_updates(
    deps: Deps, rollout_id: str, updates: Sequence[StatusUpdate], placements: dict[str, Placement]
) -> list[Transition]:
    """Record monotonic transitions with exact counters, re-reading and retrying when a concurrent batch wins."""
    for attempt in range(_CONFLICT_RETRIES):
        keys = [(rollout_id, (u.command_id, u.instance_id)) for u in updates]
        current = deps.ledger.invocations.statuses(keys)
        transitions: list[Transition] = plan_transitions(current, placements, updates)
        if not transitions:
            return []
        try:
            deps.ledger.invocations.apply_transitions(transitions, deps.now())
        except ConflictError:
            if attempt == _CONFLICT_RETRIES - 1:
                raise
            continue
        for transition in transitions:
            if transition.new.is_terminal:
                metrics.add_metric(name=f"Invocations{transition.new.value}", unit="Count", value=1)
        return transitions
    return []


def _classify(deps: Deps, observation: Observation) -> StatusUpdate:
    assert observation.instance_id is not None
    status = classify(observation.status, observation.status_details or None)
    output_url = observation.output_url
    details = observation.status_details
    if status is None:
        info = deps.ssm.get_invocation(observation.command_id, observation.instance_id)
        status = classify(info.status, info.status_details)
        details, output_url = info.status_details, info.output_url or output_url
        if status is None:
            raise NotFoundError("SSM gave no details for an ambiguous status yet")
    return StatusUpdate(
        command_id=observation.command_id,
        instance_id=observation.instance_id,
        status=status,
        status_details=details,
        observed_at=deps.now(),
        source=observation.source,
        output_url=output_url,
    )


_COMMAND_DONE = {"success", "failed", "cancelled", "timedout", "incomplete", "canceled"}


def _poll_if_open(deps: Deps, observation: Observation, placement: Placement, result: TrackResult) -> None:
    """A command finished: if the ledger still has open invocations of it, their events were lost: poll them now."""
    if observation.status.strip().lower() not in _COMMAND_DONE:
        return
    chunks = deps.ledger.dispatch.chunks(placement.rollout_id, placement.wave)
    chunk = next((c for c in chunks if c.index == placement.chunk), None)
    if chunk is None or chunk.open <= 0:
        return
    try:
        poll_command(deps, placement.rollout_id, observation.command_id, placements={observation.command_id: placement})
    except FleetwaveError as error:
        logger.warning("poll after command end failed: %s", error)
        result.failed_message_ids.add(observation.message_id)


def poll_command(deps: Deps, rollout_id: str, command_id: str, *, placements: dict[str, Placement]) -> int:
    """ListCommandInvocations for one command and feed what it says through the same transition path."""
    infos = deps.ssm.list_invocations(command_id)
    updates: list[StatusUpdate] = []
    for info in infos:
        try:
            status = classify(info.status, info.status_details)
        except UnknownStatusError:
            continue
        if status is None:
            continue
        updates.append(
            StatusUpdate(
                command_id=command_id,
                instance_id=info.instance_id,
                status=status,
                status_details=info.status_details,
                observed_at=deps.now(),
                source="poll",
                output_url=info.output_url,
            )
        )
    applied = len(apply_updates(deps, rollout_id, updates, placements)) if updates else 0
    if applied:
        metrics.add_metric(name="InvocationsReconciled", unit="Count", value=applied)
        settle(deps, rollout_id)
    return applied
