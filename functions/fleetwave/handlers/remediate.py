"""CloudWatch alarm entering ALARM (EventBridge) -> the rule's allow-listed runbook on the node; or a verification
timer (Scheduler) -> is the alarm back to OK."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import TypeAdapter, ValidationError

from fleetwave.core.remediation import AlarmStateChange
from fleetwave.observability import logger, metrics, tracer
from fleetwave.service.deps import Deps, default_deps
from fleetwave.service.remediate import VerifyEvent, remediate

_request: TypeAdapter[VerifyEvent | AlarmStateChange] = TypeAdapter(VerifyEvent | AlarmStateChange)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext, deps: Deps | None = None) -> dict[str, Any]:
    try:
        request = _request.validate_python(event)
    except ValidationError as error:
        # A retry cannot fix a malformed event: log it once (without its content) and let it go.
        logger.warning(
            "ignoring an event that is neither an alarm state change nor a verification: %d problem(s)",
            error.error_count(),
        )
        metrics.add_metric(name="MalformedEventsIgnored", unit="Count", value=1)
        return {"outcome": "ignored", "reason": "malformed event"}
    # The verification timer invokes this very function: its ARN comes from the invocation itself.
    result = remediate(deps or default_deps(), request, function_arn=context.invoked_function_arn)
    return result.as_dict()
