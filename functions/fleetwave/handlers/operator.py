"""The operators' entry point: a Lambda function URL with AWS_IAM auth (payload format 2.0).

  POST /rollouts                        {"spec": {...}}            start a rollout        201, 200 skipped, 422
  POST /rollouts/<rollout_id>/cancel    {"reason": "..."}          cancel a rollout       200, 404

Who asks comes from the request context (Lambda verified the caller's SigV4 signature), never from the body; the
trigger is "operator". Answers are JSON; errors are {"error": "..."} (or the spec's problems) with a 4xx status.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver, Response, content_types
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleetwave.core.spec import SpecError, parse_spec
from fleetwave.errors import NotFoundError, SpecRejectedError
from fleetwave.observability import logger, metrics, tracer
from fleetwave.service.deps import Deps, default_deps
from fleetwave.service.operator import Caller, NotAuthorizedError, authorize, cancel_as, start_as

app = LambdaFunctionUrlResolver()


class StartBody(BaseModel):
    # Only the spec: who starts and how (trigger) are fleetwave's to say.
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any]


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="cancelled by operator", min_length=1, max_length=500)


def _caller() -> Caller:
    """The authenticated caller, checked against this function's own account."""
    context = app.current_event.request_context
    iam = context.authorizer.iam if context.authorizer else None
    caller = Caller(arn=iam.user_arn or "", account=iam.account_id or "") if iam else None
    own_account = str(app.context["function_arn"]).split(":")[4]
    return authorize(caller, own_account=own_account)


def _deps() -> Deps:
    deps: Deps = app.context["deps"]
    return deps


def _body(model: type[BaseModel]) -> Any:
    return model.model_validate(app.current_event.json_body or {})


@app.post("/rollouts")
def start() -> tuple[dict[str, Any], int]:
    caller = _caller()
    body: StartBody = _body(StartBody)
    try:
        result = start_as(_deps(), caller, parse_spec(body.spec))
    except (SpecError, SpecRejectedError) as error:
        metrics.add_metric(name="RolloutsRejected", unit="Count", value=1)
        logger.warning("rollout rejected: %s", error, extra={"caller": caller.arn})
        return {"rejected": True, "problems": error.problems}, HTTPStatus.UNPROCESSABLE_ENTITY
    answer = result.as_dict()
    if "rollout_id" not in answer:
        return answer, HTTPStatus.OK  # skipped: a notice says why (and who asked)
    answer["started_by"] = caller.arn
    metrics.add_metric(name="RolloutsStarted", unit="Count", value=1)
    logger.info("rollout started", extra={"rollout_id": answer["rollout_id"], "caller": caller.arn})
    return answer, HTTPStatus.CREATED


@app.post("/rollouts/<rollout_id>/cancel")
def cancel(rollout_id: str) -> tuple[dict[str, Any], int]:
    caller = _caller()
    body: CancelBody = _body(CancelBody)
    rollout = cancel_as(_deps(), caller, rollout_id, body.reason)
    metrics.add_metric(name="CancelRequests", unit="Count", value=1)
    logger.info("cancel requested", extra={"rollout_id": rollout_id, "caller": caller.arn})
    answer = {"rollout_id": rollout.rollout_id, "state": rollout.state.value, "reason": rollout.reason}
    return {**answer, "cancelled_by": rollout.cancelled_by}, HTTPStatus.OK


@app.exception_handler(NotAuthorizedError)
def _forbidden(error: NotAuthorizedError) -> Any:
    metrics.add_metric(name="OperatorRequestsRefused", unit="Count", value=1)
    logger.warning("operator request refused: %s", error)
    return _error(HTTPStatus.FORBIDDEN, str(error))


@app.exception_handler(NotFoundError)
def _not_found(error: NotFoundError) -> Any:
    return _error(HTTPStatus.NOT_FOUND, str(error))


@app.exception_handler(ValidationError)
def _bad_body(error: ValidationError) -> Any:
    problems = [f"{'.'.join(map(str, e['loc'])) or '(body)'}: {e['msg']}" for e in error.errors()]
    return _error(HTTPStatus.BAD_REQUEST, "; ".join(problems))


@app.exception_handler(json.JSONDecodeError)
def _not_json(error: json.JSONDecodeError) -> Any:
    return _error(HTTPStatus.BAD_REQUEST, "the body is not a JSON object")


def _error(status: HTTPStatus, message: str) -> Response[Any]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body={"error": message})


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext, deps: Deps | None = None) -> dict[str, Any]:
    app.append_context(deps=deps or default_deps(), function_arn=context.invoked_function_arn)
    return app.resolve(event, context)
