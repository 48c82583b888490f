"""Start a scheduled rollout (EventBridge Scheduler is this function's only caller; operators start rollouts through
the operator entry point, fleetwave.handlers.operator)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict

from fleetwave.core.spec import SpecError, parse_spec
from fleetwave.errors import SpecRejectedError
from fleetwave.observability import logger, metrics, tracer
from fleetwave.service.deps import Deps, default_deps
from fleetwave.service.start import start_scheduled


class StartRequest(BaseModel):
    # Anything else in the event (a "trigger" of the caller's choosing, say) is ignored: fleetwave sets the trigger.
    model_config = ConfigDict(extra="ignore")

    spec: dict[str, Any]


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext, deps: Deps | None = None) -> dict[str, Any]:
    request = StartRequest.model_validate(event)
    try:
        result = start_scheduled(deps or default_deps(), parse_spec(request.spec))
    except (SpecError, SpecRejectedError) as error:
        # Rejections are answers, not failures: a retry would be rejected again.
        logger.warning("rollout rejected: %s", error)
        metrics.add_metric(name="RolloutsRejected", unit="Count", value=1)
        return {"rejected": True, "problems": error.problems}
    answer = result.as_dict()
    if "rollout_id" in answer:  # a skipped start (blackout, closed calendar, already running) counts elsewhere
        metrics.add_metric(name="RolloutsStarted", unit="Count", value=1)
    return answer
