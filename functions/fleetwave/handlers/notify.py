"""DynamoDB Streams (the ledger's outbox) -> one summary per rollout final state."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from fleetwave.constants import PK, SK, TTL_ATTRIBUTE
from fleetwave.observability import logger, metrics, tracer
from fleetwave.service.deps import Deps, default_deps
from fleetwave.service.notify import publish_summary, state_change

_idempotency_config = IdempotencyConfig(event_key_jmespath="[rollout_id, state]", expires_after_seconds=7 * 86400)
_persistence: DynamoDBPersistenceLayer | None = None


def _persistence_layer(deps: Deps) -> DynamoDBPersistenceLayer:
    global _persistence
    if _persistence is None or _persistence.table_name != deps.settings.TABLE_NAME:
        _persistence = DynamoDBPersistenceLayer(
            table_name=deps.settings.TABLE_NAME,
            key_attr=PK,
            sort_key_attr=SK,
            static_pk_value="IDEMPOTENCY#notify",
            expiry_attr=TTL_ATTRIBUTE,
            boto3_client=deps.ledger.db,
        )
    return _persistence


def publish_once(deps: Deps, rollout_id: str, state: str) -> dict[str, Any]:
    @idempotent_function(
        data_keyword_argument="change", config=_idempotency_config, persistence_store=_persistence_layer(deps)
    )
    def _publish(change: dict[str, str]) -> dict[str, Any]:
        summary = publish_summary(deps, change["rollout_id"])
        metrics.add_metric(name="SummariesPublished", unit="Count", value=1)
        return {"rollout_id": summary["rollout_id"], "state": summary["state"]}

    return _publish(change={"rollout_id": rollout_id, "state": state})


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext, deps: Deps | None = None) -> PartialItemFailureResponse:
    deps = deps or default_deps()
    metrics.add_metric(name="StreamRecords", unit="Count", value=len(event.get("Records", [])))
    _idempotency_config.register_lambda_context(context)

    def record_handler(record: DynamoDBRecord) -> None:
        change = state_change(record.raw_event)
        if change is None or not change.became_terminal:
            return
        logger.append_keys(rollout_id=change.rollout_id)
        publish_once(deps, change.rollout_id, change.new_state)

    processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
