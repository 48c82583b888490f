"""The reconciler: polls what events never told, so every rollout ends (invariant 4)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from aws_lambda_powertools import Logger

from fleetwave.constants import STALE_AFTER_SECONDS
from fleetwave.core.model import ChunkState, Rollout, RolloutState
from fleetwave.core.tracking import Placement
from fleetwave.errors import FleetwaveError, RetryLaterError
from fleetwave.service.deps import Deps
from fleetwave.service.rollouts import advance, recover_intent, settle
from fleetwave.service.track import poll_command

logger = Logger(service="fleetwave", child=True)

# Halted or cancelled rollouts keep being polled for this long: CancelCommand may let invocations finish.
AFTER_HALT_WINDOW = timedelta(days=1)
# A bake timer that has not fired this long after it was due is presumed lost.
LOST_TIMER_GRACE = timedelta(minutes=2)


@dataclass
class ReconcileResult:
    rollouts: int = 0
    commands_polled: int = 0
    invocations_updated: int = 0
    intents_recovered: int = 0
    timers_recovered: int = 0
    errors: list[str] = field(default_factory=list)


def reconcile(deps: Deps, *, stale_after_seconds: int = STALE_AFTER_SECONDS) -> ReconcileResult:
    now = deps.now()
    result = ReconcileResult()
    candidates: list[Rollout] = []
    for state in (RolloutState.RUNNING, RolloutState.BAKING, RolloutState.PENDING):
        candidates.extend(deps.ledger.rollouts.find(state=state.value, limit=500))
    for state in (RolloutState.HALTED, RolloutState.CANCELLED, RolloutState.FAILED):
        candidates.extend(
            r
            for r in deps.ledger.rollouts.find(state=state.value, limit=100)
            if r.ended_at is None or now - r.ended_at < AFTER_HALT_WINDOW
        )
    for rollout in candidates:
        result.rollouts += 1
        try:
            _reconcile_one(deps, rollout, stale_after_seconds, result)
        except FleetwaveError as error:
            result.errors.append(f"{rollout.rollout_id}: {error}")
            logger.warning("reconcile failed: %s", error, extra={"rollout_id": rollout.rollout_id})
    return result


def _reconcile_one(deps: Deps, rollout: Rollout, stale_after_seconds: int, result: ReconcileResult) -> None:
    now = deps.now()
    cutoff = now - timedelta(seconds=stale_after_seconds)
    for chunk in deps.ledger.dispatch.chunks(rollout.rollout_id, rollout.current_wave, with_ids=True):
        if chunk.state is ChunkState.INTENT:
            try:
                recover_intent(deps, rollout, chunk)
                result.intents_recovered += 1
            except RetryLaterError:
                pass
            continue
        if chunk.open <= 0 or not chunk.command_id:
            continue
        if chunk.last_news_at is not None and chunk.last_news_at > cutoff:
            continue
        placement = Placement(rollout.rollout_id, chunk.wave, chunk.index)
        applied = poll_command(deps, rollout.rollout_id, chunk.command_id, placements={chunk.command_id: placement})
        result.commands_polled += 1
        result.invocations_updated += applied
        if not applied:
            deps.ledger.dispatch.touch_chunk(rollout.rollout_id, chunk, now)
    if rollout.state is RolloutState.BAKING and rollout.bake_until and now >= rollout.bake_until + LOST_TIMER_GRACE:
        result.timers_recovered += 1
        advance(deps, rollout.rollout_id, rollout.current_wave + 1)
    elif rollout.state is RolloutState.PENDING and now - rollout.started_at >= LOST_TIMER_GRACE:
        advance(deps, rollout.rollout_id, 0)
    settle(deps, rollout.rollout_id)
