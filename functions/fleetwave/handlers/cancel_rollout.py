"""Operator cancel (invoked by `fleetwave cancel`)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from fleetwave.observability import logger, metrics, tracer
from fleetwave.service.cancel import cancel_rollout
from fleetwave.service.deps import Deps, default_deps


class CancelRequest(BaseModel):
    rollout_id: str
    reason: str = "cancelled by operator"


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext, deps: Deps | None = None) -> dict[str, Any]:
    request = CancelRequest.model_validate(event)
    logger.set_correlation_id(request.rollout_id)
    rollout = cancel_rollout(deps or default_deps(), request.rollout_id, request.reason)
    metrics.add_metric(name="CancelRequests", unit="Count", value=1)
    return {"rollout_id": rollout.rollout_id, "state": rollout.state.value, "reason": rollout.reason}
