"""One-time Scheduler timer after a bake: start the next wave if the gates allow it."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from fleetwave.observability import logger, metrics, tracer
from fleetwave.service.deps import Deps, default_deps
from fleetwave.service.rollouts import advance


class AdvanceRequest(BaseModel):
    rollout_id: str
    wave: int


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext, deps: Deps | None = None) -> dict[str, Any]:
    request = AdvanceRequest.model_validate(event)
    logger.set_correlation_id(request.rollout_id)
    rollout = advance(deps or default_deps(), request.rollout_id, request.wave)
    metrics.add_metric(name="BudgetLeft", unit="Count", value=max(0, rollout.remaining_budget))
    return {"rollout_id": rollout.rollout_id, "state": rollout.state.value, "wave": rollout.current_wave}
