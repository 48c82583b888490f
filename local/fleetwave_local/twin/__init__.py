"""The local twin: fleetwave's cloud wiring in process, on moto, the fleet simulator and a virtual clock."""

from fleetwave_local.twin.account import ACCOUNT, REGION, TWIN_OPERATOR_ARN, alarm_arn, function_arn
from fleetwave_local.twin.alarms import alarm_state_change_event
from fleetwave_local.twin.lambdas import FakeLambdaContext, function_url_event
from fleetwave_local.twin.options import TwinOptions
from fleetwave_local.twin.resources import Resources
from fleetwave_local.twin.twin import Snapshot, Twin, TwinTimeoutError

__all__ = [
    "ACCOUNT",
    "REGION",
    "TWIN_OPERATOR_ARN",
    "FakeLambdaContext",
    "Resources",
    "Snapshot",
    "Twin",
    "TwinOptions",
    "TwinTimeoutError",
    "alarm_arn",
    "alarm_state_change_event",
    "function_arn",
    "function_url_event",
]
