"""SQS (SSM status events from EventBridge and SNS) -> the ledger. Partial batch failures are reported."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from fleetwave.events import InvalidEventError, parse_status_message
from fleetwave.observability import logger, metrics, tracer
from fleetwave.service.deps import Deps, default_deps
from fleetwave.service.track import Observation, track


class RecordFailedError(Exception):
    """This record's observation could not be recorded yet; SQS redelivers it."""


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext, deps: Deps | None = None) -> PartialItemFailureResponse:
    deps = deps or default_deps()
    metrics.add_metric(name="StatusMessages", unit="Count", value=len(event.get("Records", [])))
    observations: list[Observation] = []
    for record in event.get("Records", []):
        try:
            observations.append(parse_status_message(record["messageId"], record["body"]))
        except InvalidEventError as error:
            # Retrying a malformed message cannot help: log it once and let it go.
            logger.warning("ignoring a message that is not an SSM status event: %s", error)
    result = track(deps, observations)
    processor = BatchProcessor(event_type=EventType.SQS)

    def record_handler(record: SQSRecord) -> None:
        if record.message_id in result.failed_message_ids:
            raise RecordFailedError(record.message_id)

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
