"""Scheduled every few minutes: poll what status events never told (ListCommandInvocations)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from fleetwave.observability import logger, metrics, tracer
from fleetwave.service.deps import Deps, default_deps
from fleetwave.service.reconcile import reconcile


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext, deps: Deps | None = None) -> dict[str, Any]:
    result = reconcile(deps or default_deps())
    metrics.add_metric(name="ReconciledInvocations", unit="Count", value=result.invocations_updated)
    logger.info("reconciled", extra=asdict(result))
    return asdict(result)
