"""ListCommands, ListCommandInvocations, GetCommandInvocation and CancelCommand, and the shapes they answer with."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final

from ..botocore_hook import SsmApiError
from ..model import D_DELIVERY_TIMED_OUT, D_EXECUTION_TIMED_OUT, Command, Invocation
from ..run_command import RunCommandService
from ..state import SsmState
from .wire import paginate, parse_time, validation_error, with_token

#: Status filter values that are StatusDetails, not Status (ListCommands / ListCommandInvocations "Status" filter)
_DETAIL_FILTERS: Final = {
    "DeliveryTimedOut": D_DELIVERY_TIMED_OUT,
    "ExecutionTimedOut": D_EXECUTION_TIMED_OUT,
    "Incomplete": "Incomplete",
    "Undeliverable": "Undeliverable",
    "Terminated": "Terminated",
    "InvalidPlatform": "InvalidPlatform",
    "AccessDenied": "AccessDenied",
    "NoInstancesInTag": "NoInstancesInTag",
    "LimitExceeded": "Rate Exceeded",
}
_COMMAND_STATUS_FILTERS: Final = frozenset(
    {"Pending", "InProgress", "Success", "Cancelled", "Failed", "TimedOut", "Cancelling"}
    | {"AccessDenied", "DeliveryTimedOut", "ExecutionTimedOut", "Incomplete", "NoInstancesInTag", "LimitExceeded"}
)
_INVOCATION_STATUS_FILTERS: Final = frozenset(
    {"Pending", "InProgress", "Delayed", "Success", "Cancelled", "Failed", "TimedOut", "Cancelling"}
    | {"AccessDenied", "DeliveryTimedOut", "ExecutionTimedOut", "Undeliverable", "InvalidPlatform", "Terminated"}
)
_COMMAND_FILTER_KEYS: Final = frozenset({"InvokedAfter", "InvokedBefore", "Status", "ExecutionStage", "DocumentName"})


def list_commands(state: SsmState, body: dict[str, Any]) -> dict[str, Any]:
    command_id = body.get("CommandId")
    instance_id = body.get("InstanceId")
    if command_id and command_id not in state.commands:
        raise SsmApiError("InvalidCommandId", f"Invalid command id {command_id}.")
    predicates = _command_filters(body.get("Filters") or [], _COMMAND_STATUS_FILTERS)
    commands = sorted(state.commands.values(), key=lambda c: c.requested_at, reverse=True)
    selected = [
        c
        for c in commands
        if (not command_id or c.command_id == command_id)
        and (not instance_id or instance_id in c.invocations)
        and all(p(c) for p in predicates)
    ]
    page, token = paginate(selected, body, "ListCommands", default=50, maximum=50)
    return with_token({"Commands": [command_shape(state, c) for c in page]}, token)


def list_command_invocations(state: SsmState, body: dict[str, Any]) -> dict[str, Any]:
    command_id = body.get("CommandId")
    instance_id = body.get("InstanceId")
    if command_id is not None and len(str(command_id)) != 36:
        raise validation_error("commandId", "Member must have length equal to 36")
    predicates = _command_filters(body.get("Filters") or [], _INVOCATION_STATUS_FILTERS)
    now = state.clock.now()
    commands = sorted(state.commands.values(), key=lambda c: c.requested_at, reverse=True)
    selected: list[Invocation] = []
    for command in commands:
        # eventual consistency: right after SendCommand the invocations are not listed yet
        if (command_id and command.command_id != command_id) or now < command.visible_at:
            continue
        for inv in command.invocations.values():
            if (not instance_id or inv.instance_id == instance_id) and all(p(inv) for p in predicates):
                selected.append(inv)
    page, token = paginate(selected, body, "ListCommandInvocations", default=50, maximum=50)
    details = bool(body.get("Details"))
    return with_token({"CommandInvocations": [_invocation_shape(state, i, details) for i in page]}, token)


def get_command_invocation(state: SsmState, body: dict[str, Any]) -> dict[str, Any]:
    command = state.commands.get(str(body.get("CommandId", "")))
    inv = command.invocations.get(str(body.get("InstanceId", ""))) if command else None
    if command is None or inv is None or state.clock.now() < command.visible_at:
        raise SsmApiError("InvocationDoesNotExist", "An invocation with the given command and instance does not exist.")
    plugin = body.get("PluginName")
    if plugin and plugin != command.plugin_name:
        raise SsmApiError("InvalidPluginName", f"Plugin {plugin} is not a step of {command.document_name}.")
    stdout_url, stderr_url = _output_urls(state.region, inv)
    elapsed = ""
    if inv.started_at is not None:
        end = inv.ended_at or state.clock.now()
        elapsed = f"PT{(end - inv.started_at).total_seconds():.3f}S"
    return {
        "CommandId": command.command_id,
        "InstanceId": inv.instance_id,
        "Comment": command.comment,
        "DocumentName": command.document_name,
        "DocumentVersion": command.document_version,
        "PluginName": command.plugin_name,
        "ResponseCode": inv.response_code,
        "ExecutionStartDateTime": _iso(inv.started_at),
        "ExecutionElapsedTime": elapsed,
        "ExecutionEndDateTime": _iso(inv.ended_at if inv.started_at else None),
        "Status": inv.status,
        "StatusDetails": inv.status_details,
        "StandardOutputContent": inv.stdout,
        "StandardOutputUrl": stdout_url,
        "StandardErrorContent": inv.stderr,
        "StandardErrorUrl": stderr_url,
        "CloudWatchOutputConfig": _cloudwatch(command),
    }


def cancel_command(state: SsmState, run_command: RunCommandService, body: dict[str, Any]) -> dict[str, Any]:
    command = state.commands.get(str(body.get("CommandId", "")))
    if command is None:
        raise SsmApiError("InvalidCommandId", f"Invalid command id {body.get('CommandId')}.")
    instance_ids = body.get("InstanceIds") or None
    run_command.cancel(command, [str(i) for i in instance_ids] if instance_ids else None, state.clock.now())
    return {}


def command_shape(state: SsmState, command: Command) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "CommandId": command.command_id,
        "DocumentName": command.document_name,
        "DocumentVersion": command.document_version,
        "Comment": command.comment,
        "ExpiresAfter": command.expires_after.timestamp(),
        "Parameters": command.parameters,
        "InstanceIds": list(command.instance_ids),
        "Targets": [],
        "RequestedDateTime": command.requested_at.timestamp(),
        "Status": command.status,
        "StatusDetails": command.status_details,
        "OutputS3Region": state.region,
        "OutputS3BucketName": command.output_s3_bucket_name,
        "OutputS3KeyPrefix": command.output_s3_key_prefix,
        "MaxConcurrency": command.max_concurrency,
        "MaxErrors": command.max_errors,
        "TargetCount": command.target_count,
        "CompletedCount": command.completed_count,
        "ErrorCount": command.error_count,
        "DeliveryTimedOutCount": command.delivery_timed_out_count,
        "ServiceRole": command.service_role_arn,
        "NotificationConfig": _notification(command),
        "CloudWatchOutputConfig": _cloudwatch(command),
        "TimeoutSeconds": command.timeout_seconds,
    }
    return shape


def _invocation_shape(state: SsmState, inv: Invocation, details: bool) -> dict[str, Any]:
    command = inv.command
    stdout_url, stderr_url = _output_urls(state.region, inv)
    shape: dict[str, Any] = {
        "CommandId": command.command_id,
        "InstanceId": inv.instance_id,
        "InstanceName": state.nodes[inv.instance_id].computer_name,
        "Comment": command.comment,
        "DocumentName": command.document_name,
        "DocumentVersion": command.document_version,
        "RequestedDateTime": command.requested_at.timestamp(),
        "Status": inv.status,
        "StatusDetails": inv.status_details,
        "TraceOutput": "",
        "StandardOutputUrl": stdout_url,
        "StandardErrorUrl": stderr_url,
        "CommandPlugins": [],
        "ServiceRole": command.service_role_arn,
        "NotificationConfig": _notification(command),
        "CloudWatchOutputConfig": _cloudwatch(command),
    }
    if details:
        plugin: dict[str, Any] = {
            "Name": command.plugin_name,
            "Status": inv.status,
            "StatusDetails": inv.status_details,
            "ResponseCode": inv.response_code,
            "Output": (inv.stdout + inv.stderr)[:2500],
            "StandardOutputUrl": stdout_url,
            "StandardErrorUrl": stderr_url,
            "OutputS3Region": state.region,
            "OutputS3BucketName": command.output_s3_bucket_name,
            "OutputS3KeyPrefix": command.output_s3_key_prefix,
        }
        if inv.started_at is not None:
            plugin["ResponseStartDateTime"] = inv.started_at.timestamp()
        if inv.ended_at is not None and inv.started_at is not None:
            plugin["ResponseFinishDateTime"] = inv.ended_at.timestamp()
        shape["CommandPlugins"] = [plugin]
    return shape


def _iso(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _notification(command: Command) -> dict[str, Any]:
    return dict(
        command.notification_config or {"NotificationArn": "", "NotificationEvents": [], "NotificationType": ""}
    )


def _cloudwatch(command: Command) -> dict[str, Any]:
    return dict(command.cloudwatch_output_config or {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False})


def _output_urls(region: str, inv: Invocation) -> tuple[str, str]:
    command = inv.command
    if not command.output_s3_bucket_name:
        return "", ""
    prefix = command.output_s3_key_prefix.strip("/")
    plugin_dir = command.plugin_action.replace(":", "")
    parts = [p for p in (prefix, command.command_id, inv.instance_id, plugin_dir, command.plugin_name) if p]
    base = f"https://s3.{region}.amazonaws.com/{command.output_s3_bucket_name}/" + "/".join(parts)
    return f"{base}/stdout", f"{base}/stderr"


def _matches_status(status: str, details: str, wanted: str) -> bool:
    if wanted in _DETAIL_FILTERS:
        return details == _DETAIL_FILTERS[wanted]
    return status == wanted


def _command_filters(
    filters: Sequence[dict[str, Any]], allowed_statuses: frozenset[str]
) -> list[Callable[[Command | Invocation], bool]]:
    """Predicates for ListCommands (on Command) / ListCommandInvocations (on Invocation) filters."""
    return [_command_filter(str(f.get("key", "")), str(f.get("value", "")), allowed_statuses) for f in filters]


def _command_filter(key: str, value: str, allowed_statuses: frozenset[str]) -> Callable[[Command | Invocation], bool]:
    def command_of(obj: Command | Invocation) -> Command:
        return obj if isinstance(obj, Command) else obj.command

    if key not in _COMMAND_FILTER_KEYS:
        raise SsmApiError("InvalidFilterKey", f"{key} is not a valid filter key.")
    if key == "InvokedAfter":
        after = parse_time(value)
        return lambda obj: command_of(obj).requested_at >= after
    if key == "InvokedBefore":
        before = parse_time(value)
        return lambda obj: command_of(obj).requested_at <= before
    if key == "DocumentName":
        return lambda obj: command_of(obj).document_name == value
    if key == "Status":
        if value not in allowed_statuses:
            raise SsmApiError("InvalidFilterValue", f"{value} is not a valid status.")
        return lambda obj: _matches_status(obj.status, obj.status_details, value)
    # ExecutionStage
    if value not in ("Executing", "Complete"):
        raise SsmApiError("InvalidFilterValue", f"{value} is not a valid execution stage.")
    return lambda obj: obj.terminal == (value == "Complete")
