"""Operator cancellation: stop a rollout, cancel its in-flight commands, keep recording what really happens."""

from __future__ import annotations

from fleetwave.core.model import Rollout, RolloutState
from fleetwave.errors import ConflictError
from fleetwave.service.deps import Deps
from fleetwave.service.rollouts import settle


def cancel_rollout(deps: Deps, rollout_id: str, reason: str, *, cancelled_by: str) -> Rollout:
    """Idempotent: cancelling an ended rollout changes nothing and returns it as it is. ``cancelled_by`` is the
    identity AWS authenticated for the request (recorded on the rollout)."""
    for _ in range(3):
        rollout = deps.ledger.rollouts.get(rollout_id)
        if rollout.state.is_terminal:
            return rollout
        try:
            deps.ledger.rollouts.halt(rollout, RolloutState.CANCELLED, reason, deps.now(), cancelled_by=cancelled_by)
        except ConflictError:
            continue
        if rollout.state is RolloutState.BAKING:
            deps.timers.cancel(deps.timers.name_for(rollout_id, rollout.current_wave + 1))
        break
    return settle(deps, rollout_id)
