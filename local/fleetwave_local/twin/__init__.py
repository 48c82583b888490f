"""The local twin: fleetwave's cloud wiring in process, on moto, the fleet simulator and a virtual clock."""

from fleetwave_local.twin.twin import (
    ACCOUNT,
    REGION,
    FakeLambdaContext,
    Resources,
    Snapshot,
    Twin,
    TwinOptions,
    TwinTimeoutError,
    alarm_arn,
    alarm_state_change_event,
    function_arn,
)

__all__ = [
    "ACCOUNT",
    "REGION",
    "FakeLambdaContext",
    "Resources",
    "Snapshot",
    "Twin",
    "TwinOptions",
    "TwinTimeoutError",
    "alarm_arn",
    "alarm_state_change_event",
    "function_arn",
]
