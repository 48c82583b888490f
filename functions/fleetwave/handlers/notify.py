"""DynamoDB Streams (the ledger's outbox) -> fleetwave events, SNS summaries and notices, Slack messages."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from fleetwave.observability import logger, metrics, tracer
from fleetwave.service.deps import Deps, default_deps
from fleetwave.service.notify import Channels, Outbox, default_channels


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(
    event: dict[str, Any], context: LambdaContext, deps: Deps | None = None, channels: Channels | None = None
) -> dict[str, Any]:
    deps = deps or default_deps()
    metrics.add_metric(name="StreamRecords", unit="Count", value=len(event.get("Records", [])))
    outbox = Outbox(deps, channels or default_channels(deps), context)
    # A batch whose every record failed is reported like any partial failure: the stream retries from the first.
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)
    return dict(
        process_partial_response(event=event, record_handler=outbox.handle, processor=processor, context=context)
    )
