"""The alarm queue (SQS, fed by the alarm rule and by verification timers) -> remediation, one message at a time.

A message is a CloudWatch Alarm State Change event as EventBridge delivered it, or ``{"verify": ...}`` from a
verification timer. A message that is neither is dropped with one log line; a message whose handling failed
(throttling, a race to retry) is reported as a partial batch failure and comes back after the visibility timeout.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import TypeAdapter, ValidationError

from fleetwave.core.remediation import AlarmStateChange
from fleetwave.observability import logger, metrics, tracer
from fleetwave.service.deps import Deps, default_deps
from fleetwave.service.remediate import RemediationResult, VerifyEvent, remediate

_message: TypeAdapter[VerifyEvent | AlarmStateChange] = TypeAdapter(VerifyEvent | AlarmStateChange)


def handle_message(deps: Deps, body: str, *, function_arn: str) -> RemediationResult:
    try:
        request = _message.validate_json(body)
    except ValidationError as error:
        # A retry cannot fix a malformed message: log it once (without its content) and let it go.
        logger.warning(
            "ignoring a message that is neither an alarm state change nor a verification: %d problem(s)",
            error.error_count(),
        )
        metrics.add_metric(name="MalformedEventsIgnored", unit="Count", value=1)
        return RemediationResult("ignored", "malformed event")
    result = remediate(deps, request, function_arn=function_arn)
    logger.info("remediation decision: %s", result.outcome, extra=result.as_dict())
    return result


def process(
    event: dict[str, Any], context: LambdaContext, deps: Deps
) -> tuple[PartialItemFailureResponse, list[RemediationResult]]:
    """The batch, and what was decided for each message handled (the local twin reports these)."""
    results: list[RemediationResult] = []

    def record_handler(record: SQSRecord) -> None:
        results.append(handle_message(deps, record.body, function_arn=context.invoked_function_arn))

    # A batch whose every message failed is reported like any partial failure (each message comes back on its own).
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return response, results


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext, deps: Deps | None = None) -> PartialItemFailureResponse:
    response, _ = process(event, context, deps or default_deps())
    return response
