"""Running fleetwave's handlers as Lambda runs them: the real handler function, a Lambda context, the twin's deps,
and the events Lambda hands a function (an SQS poller's batch, a function URL request)."""

from __future__ import annotations

import importlib
import json
import uuid
from collections.abc import Callable
from typing import Any

from fleetwave.constants import HANDLERS, function_name

from fleetwave_local.twin.account import ACCOUNT, REGION, function_arn


class FakeLambdaContext:
    """What Powertools reads from a Lambda context."""

    def __init__(self, name: str) -> None:
        self.function_name = function_name(name)
        self.function_version = "$LATEST"
        self.invoked_function_arn = function_arn(name)
        self.memory_limit_in_mb = 512
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "twin"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 300_000


def invoke_handler(name: str, event: dict[str, Any], deps: Any) -> Any:
    """Call the handler of function `name` (a key of HANDLERS) with `event`, as Lambda would; returns its answer."""
    module_name, _, function = HANDLERS[name].rpartition(".")
    # Imported here: fleetwave.observability reads the Powertools environment, which the twin sets on entering.
    from fleetwave.observability import metrics

    handler: Callable[..., Any] = getattr(importlib.import_module(module_name), function)
    try:
        return handler(event, FakeLambdaContext(name), deps=deps)
    finally:
        # Metrics are disabled in the twin; Powertools then keeps them in memory, so drop them per invocation.
        metrics.clear_metrics()


def process_alarm_batch(event: dict[str, Any], deps: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """remediate's handler on an alarm-queue batch, as Lambda runs it: its answer (the partial batch failures) and
    what it decided for each message it handled (its log lines, as dicts)."""
    from fleetwave.handlers.remediate import process
    from fleetwave.observability import metrics

    try:
        response, results = process(event, FakeLambdaContext("remediate"), deps)  # type: ignore[arg-type]
    finally:
        metrics.clear_metrics()
    return dict(response), [result.as_dict() for result in results]


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """What Lambda's SQS poller hands a function: ReceiveMessage's messages as event records."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def function_url_event(
    method: str,
    path: str,
    body: Any = None,
    *,
    caller_arn: str | None,
    caller_account: str = ACCOUNT,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Lambda function URL request (payload format 2.0) as Lambda hands it to the function after AWS_IAM auth:
    the caller's identity is in requestContext.authorizer.iam. ``caller_arn=None``: no IAM identity (AuthType NONE)."""
    text = body if isinstance(body, str) or body is None else json.dumps(body)
    context: dict[str, Any] = {
        "accountId": ACCOUNT,
        "apiId": "twinoperatorurl",
        "domainName": f"twinoperatorurl.lambda-url.{REGION}.on.aws",
        "domainPrefix": "twinoperatorurl",
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "twin"},
        "requestId": str(uuid.uuid4()),
        "routeKey": "$default",
        "stage": "$default",
        "time": "01/Jan/2026:00:00:00 +0000",
        "timeEpoch": 0,
    }
    if caller_arn is not None:
        context["authorizer"] = {
            "iam": {
                "accessKey": "ASIATWINOPERATOR",
                "accountId": caller_account,
                "callerId": "AIDATWINOPERATOR",
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": caller_arn,
                "userId": "AIDATWINOPERATOR",
            }
        }
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", **(headers or {})},
        "requestContext": context,
        "body": text,
        "isBase64Encoded": False,
    }
