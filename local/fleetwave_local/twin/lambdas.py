"""Running fleetwave's handlers as Lambda runs them: the real handler function, a Lambda context, the twin's deps."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable
from typing import Any

from fleetwave.constants import HANDLERS, function_name

from fleetwave_local.twin.account import function_arn


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
