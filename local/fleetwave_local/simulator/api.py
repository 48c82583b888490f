"""SSM's JSON API on top of the simulator's model: request validation, filters, paging, response shapes."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import ClientError

from .botocore_hook import SsmApiError, error_response, forward_to_moto, internal_calls, json_response
from .model import (
    D_DELIVERY_TIMED_OUT,
    D_EXECUTION_TIMED_OUT,
    DEFAULT_EXECUTION_TIMEOUT,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_ERRORS,
    DEFAULT_TIMEOUT_SECONDS,
    INSTANCE_ID_PATTERN,
    MAX_COMMENT_LENGTH,
    MAX_CONCURRENCY_PATTERN,
    MAX_ERRORS_PATTERN,
    MAX_INSTANCE_IDS,
    MAX_TIMEOUT_SECONDS,
    MIN_TIMEOUT_SECONDS,
    PLATFORMS,
    Command,
    Invocation,
    ManagedNode,
    Session,
    resolve_rate,
)
from .run_command import RunCommandService
from .state import SsmState

T = TypeVar("T")

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
_INSTANCE_FILTER_KEYS: Final = frozenset(
    {"InstanceIds", "AgentVersion", "PingStatus", "PlatformTypes", "ActivationIds", "IamRole", "ResourceType"}
    | {"AssociationStatus"}
)
_SESSION_FILTER_KEYS: Final = frozenset({"InvokedAfter", "InvokedBefore", "Target", "Owner", "Status", "SessionId"})
_ACTIVE_SESSION_STATUSES: Final = frozenset({"Connected", "Connecting", "Disconnected", "Terminating"})
#: which platforms an action runs on (a document runs on the union over its steps)
_ACTION_PLATFORMS: Final[dict[str, frozenset[str]]] = {
    "aws:runShellScript": frozenset({"Linux", "MacOS"}),
    "aws:runPowerShellScript": frozenset({"Windows", "Linux"}),
    "aws:psModule": frozenset({"Windows"}),
    "aws:applications": frozenset({"Windows"}),
    "aws:updateSsmAgent": frozenset(PLATFORMS),
    "aws:runDocument": frozenset(PLATFORMS),
    "aws:downloadContent": frozenset(PLATFORMS),
}


@dataclass(frozen=True)
class _Document:
    name: str
    version: str
    parameters: dict[str, str | None]  # name -> default (None: required)
    plugin_name: str
    plugin_action: str
    platform_types: frozenset[str]


class SsmApi:
    """Translates SSM JSON requests into calls on the Run Command model, and the state into SSM JSON responses.

    `client_factory` gives clients whose calls bypass the simulator (documents are moto's); `visibility_delay` is how
    long invocations stay unlisted after SendCommand; `execution_timeout_seconds` overrides every document's default.
    """

    def __init__(
        self,
        state: SsmState,
        run_command: RunCommandService,
        *,
        client_factory: Callable[[str], Any],
        visibility_delay: float = 0,
        execution_timeout_seconds: int | None = None,
    ) -> None:
        self.state = state
        self.run_command = run_command
        self._client = client_factory
        self.visibility_delay = visibility_delay
        self.execution_timeout_seconds = execution_timeout_seconds
        self._handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "ListCommands": self._list_commands,
            "GetCommandInvocation": self._get_command_invocation,
            "ListCommandInvocations": self._list_command_invocations,
            "CancelCommand": self._cancel_command,
            "DescribeInstanceInformation": self._describe_instance_information,
            "DescribeSessions": self._describe_sessions,
            "TerminateSession": self._terminate_session,
            "GetConnectionStatus": self._get_connection_status,
            "GetCalendarState": state.calendars.get_calendar_state,
        }

    def handle(self, operation: str, event_name: str, request: AWSPreparedRequest) -> AWSResponse | None:
        if operation != "SendCommand" and operation not in self._handlers:
            return None  # documents and everything else: moto
        try:
            body = _json_body(request)
            if operation == "SendCommand":
                return self._send_command(body, event_name, request)
            return json_response(request.url, self._handlers[operation](body))
        except SsmApiError as error:
            return error_response(request.url, error)

    # --- SendCommand -----------------------------------------------------------------------------------------------

    def _send_command(self, body: dict[str, Any], event_name: str, request: AWSPreparedRequest) -> AWSResponse:
        state = self.state
        if body.get("Targets"):
            raise SsmApiError(
                "InvalidParameters",
                "The fleet simulator supports SendCommand with InstanceIds only; Targets are not supported.",
            )
        instance_ids = list(dict.fromkeys(body.get("InstanceIds") or []))
        if not instance_ids:
            raise SsmApiError("InvalidParameters", "InstanceIds must name at least one managed node.")
        if len(body.get("InstanceIds") or []) > MAX_INSTANCE_IDS:
            raise _validation("instanceIds", "Member must have length less than or equal to 50")
        for instance_id in instance_ids:
            if not INSTANCE_ID_PATTERN.match(str(instance_id)):
                raise _validation(
                    "instanceIds", r"Member must satisfy regular expression pattern: (^i-(\w{8}|\w{17})$)|(^mi-\w{17}$)"
                )
        comment = str(body.get("Comment", ""))
        if len(comment) > MAX_COMMENT_LENGTH:
            raise _validation("comment", "Member must have length less than or equal to 100")
        timeout_seconds = int(body.get("TimeoutSeconds", DEFAULT_TIMEOUT_SECONDS))
        if not MIN_TIMEOUT_SECONDS <= timeout_seconds <= MAX_TIMEOUT_SECONDS:
            raise _validation(
                "timeoutSeconds",
                f"Member must have value between {MIN_TIMEOUT_SECONDS} and {MAX_TIMEOUT_SECONDS}",
            )
        max_concurrency = str(body.get("MaxConcurrency", DEFAULT_MAX_CONCURRENCY))
        if not MAX_CONCURRENCY_PATTERN.match(max_concurrency):
            raise _validation("maxConcurrency", f"Member must satisfy regular expression pattern: {_pattern_text(1)}")
        max_errors = str(body.get("MaxErrors", DEFAULT_MAX_ERRORS))
        if not MAX_ERRORS_PATTERN.match(max_errors):
            raise _validation("maxErrors", f"Member must satisfy regular expression pattern: {_pattern_text(0)}")
        notification = body.get("NotificationConfig") or None
        if notification:
            arn = str(notification.get("NotificationArn", ""))
            if arn and not arn.startswith("arn:aws:sns:"):
                raise SsmApiError("InvalidNotificationConfig", f"{arn} is not an Amazon SNS topic ARN.")
            if notification.get("NotificationType", "Command") not in ("Command", "Invocation"):
                raise SsmApiError("InvalidNotificationConfig", "NotificationType must be Command or Invocation.")
            notification = {
                "NotificationArn": arn,
                "NotificationEvents": list(notification.get("NotificationEvents") or []),
                "NotificationType": notification.get("NotificationType", "Command"),
            }
        unknown = [i for i in instance_ids if i not in state.nodes]
        if unknown:
            raise SsmApiError("InvalidInstanceId", f"Instances {unknown} not in a valid state for account.")
        parameters = {str(k): [str(v) for v in vs] for k, vs in (body.get("Parameters") or {}).items()}
        document = self._resolve_document(
            str(body.get("DocumentName", "")), body.get("DocumentVersion"), body.get("DocumentHash")
        )
        missing = [p for p, default in document.parameters.items() if default is None and p not in parameters]
        extra = [p for p in parameters if p not in document.parameters]
        if missing or extra:
            raise SsmApiError(
                "InvalidParameters",
                f"document {document.name} parameters: missing required {missing}, not defined {extra}",
            )

        moto_response = forward_to_moto(event_name, request)
        if moto_response.status_code >= 300:
            return moto_response
        command_id = json.loads(moto_response.content)["Command"]["CommandId"]

        requested_at = state.clock.now()
        command = Command(
            command_id=command_id,
            document_name=document.name,
            document_version=str(body.get("DocumentVersion") or "$DEFAULT"),
            comment=comment,
            parameters=parameters,
            instance_ids=instance_ids,
            max_concurrency=max_concurrency,
            max_errors=max_errors,
            concurrency_limit=resolve_rate(max_concurrency, len(instance_ids), minimum=1),
            error_limit=resolve_rate(max_errors, len(instance_ids), minimum=0),
            timeout_seconds=timeout_seconds,
            execution_timeout_seconds=self._execution_timeout(parameters, document),
            requested_at=requested_at,
            expires_after=requested_at + timedelta(seconds=timeout_seconds),
            visible_at=requested_at + timedelta(seconds=self.visibility_delay),
            notification_config=notification,
            service_role_arn=str(body.get("ServiceRoleArn", "")),
            output_s3_bucket_name=str(body.get("OutputS3BucketName", "")),
            output_s3_key_prefix=str(body.get("OutputS3KeyPrefix", "")),
            cloudwatch_output_config=body.get("CloudWatchOutputConfig"),
            plugin_name=document.plugin_name,
            plugin_action=document.plugin_action,
            platform_types=document.platform_types,
        )
        self.run_command.register(command)
        return json_response(request.url, {"Command": self._command_shape(command)})

    def _execution_timeout(self, parameters: dict[str, list[str]], document: _Document) -> int:
        given = parameters.get("executionTimeout")
        raw: str | int | None
        if given:
            raw = given[0]
        elif self.execution_timeout_seconds is not None:
            raw = self.execution_timeout_seconds
        else:
            raw = document.parameters.get("executionTimeout") or DEFAULT_EXECUTION_TIMEOUT
        try:
            return max(1, int(raw))
        except ValueError:
            raise SsmApiError("InvalidParameters", f"executionTimeout {raw!r} is not a number of seconds") from None

    def _resolve_document(self, name: str, version: Any, document_hash: Any) -> _Document:
        ssm = self._client("ssm")
        with internal_calls():
            try:
                latest = ssm.describe_document(Name=name)["Document"]
            except ClientError as error:
                raise SsmApiError("InvalidDocument", "The specified document does not exist.") from error
            described = latest
            if version and version not in ("$DEFAULT", "$LATEST"):
                try:
                    described = ssm.describe_document(Name=name, DocumentVersion=str(version))["Document"]
                except ClientError as error:
                    raise SsmApiError(
                        "InvalidDocumentVersion", "The document version is not valid or does not exist."
                    ) from error
            elif version == "$LATEST":
                described = ssm.describe_document(Name=name, DocumentVersion=latest["LatestVersion"])["Document"]
            content = ssm.get_document(Name=name, DocumentVersion=described["DocumentVersion"], DocumentFormat="JSON")
        if described.get("DocumentType") != "Command":
            raise SsmApiError("InvalidDocument", f"Document type {described.get('DocumentType')} is not Command.")
        if document_hash and document_hash != described.get("Hash"):
            raise SsmApiError("InvalidDocument", "The document hash does not match the document.")
        parameters = {p["Name"]: p.get("DefaultValue") for p in described.get("Parameters", [])}
        plugin_name, plugin_action, platforms = _plugins(content.get("Content", "{}"))
        return _Document(
            name=name,
            version=str(described["DocumentVersion"]),
            parameters=parameters,
            plugin_name=plugin_name,
            plugin_action=plugin_action,
            platform_types=platforms,
        )

    # --- commands and invocations ----------------------------------------------------------------------------------

    def _list_commands(self, body: dict[str, Any]) -> dict[str, Any]:
        state = self.state
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
        page, token = _paginate(selected, body, "ListCommands", default=50, maximum=50)
        return _with_token({"Commands": [self._command_shape(c) for c in page]}, token)

    def _list_command_invocations(self, body: dict[str, Any]) -> dict[str, Any]:
        state = self.state
        command_id = body.get("CommandId")
        instance_id = body.get("InstanceId")
        if command_id is not None and len(str(command_id)) != 36:
            raise _validation("commandId", "Member must have length equal to 36")
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
        page, token = _paginate(selected, body, "ListCommandInvocations", default=50, maximum=50)
        details = bool(body.get("Details"))
        return _with_token({"CommandInvocations": [self._invocation_shape(i, details) for i in page]}, token)

    def _get_command_invocation(self, body: dict[str, Any]) -> dict[str, Any]:
        state = self.state
        command = state.commands.get(str(body.get("CommandId", "")))
        inv = command.invocations.get(str(body.get("InstanceId", ""))) if command else None
        if command is None or inv is None or state.clock.now() < command.visible_at:
            raise SsmApiError(
                "InvocationDoesNotExist", "An invocation with the given command and instance does not exist."
            )
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

    def _cancel_command(self, body: dict[str, Any]) -> dict[str, Any]:
        state = self.state
        command = state.commands.get(str(body.get("CommandId", "")))
        if command is None:
            raise SsmApiError("InvalidCommandId", f"Invalid command id {body.get('CommandId')}.")
        instance_ids = body.get("InstanceIds") or None
        self.run_command.cancel(command, [str(i) for i in instance_ids] if instance_ids else None, state.clock.now())
        return {}

    # --- nodes and sessions ----------------------------------------------------------------------------------------

    def _describe_instance_information(self, body: dict[str, Any]) -> dict[str, Any]:
        predicates: list[Callable[[ManagedNode], bool]] = []
        for f in body.get("InstanceInformationFilterList") or []:
            predicates.append(_node_filter(str(f.get("key", "")), [str(v) for v in f.get("valueSet") or []], False))
        for f in body.get("Filters") or []:
            predicates.append(_node_filter(str(f.get("Key", "")), [str(v) for v in f.get("Values") or []], True))
        now = self.state.clock.now()
        nodes = [n for n in self.state.nodes.values() if all(p(n) for p in predicates)]
        page, token = _paginate(nodes, body, "DescribeInstanceInformation", default=50, maximum=50)
        items = []
        for node in page:
            if node.ping_status == "Online":
                node.last_ping_at = now  # an online agent pings every few minutes
            items.append(
                {
                    "InstanceId": node.instance_id,
                    "PingStatus": node.ping_status,
                    "LastPingDateTime": node.last_ping_at.timestamp(),
                    "AgentVersion": node.agent_version,
                    "IsLatestVersion": True,
                    "PlatformType": node.platform,
                    "PlatformName": node.platform_name,
                    "PlatformVersion": node.platform_version,
                    "ResourceType": "EC2Instance" if node.instance_id.startswith("i-") else "ManagedInstance",
                    "RegistrationDate": node.registered_at.timestamp(),
                    "IPAddress": node.ip_address,
                    "ComputerName": node.computer_name,
                    "AssociationStatus": "Success",
                    "SourceId": node.instance_id,
                    "SourceType": "AWS::EC2::Instance"
                    if node.instance_id.startswith("i-")
                    else "AWS::SSM::ManagedInstance",
                }
            )
        return _with_token({"InstanceInformationList": items}, token)

    def _describe_sessions(self, body: dict[str, Any]) -> dict[str, Any]:
        state = body.get("State")
        if state not in ("Active", "History"):
            raise _validation("state", "Member must satisfy enum value set: [Active, History]")
        predicates: list[Callable[[Session], bool]] = []
        for f in body.get("Filters") or []:
            predicates.append(_session_filter(str(f.get("key", "")), str(f.get("value", ""))))
        sessions = [
            s
            for s in sorted(self.state.sessions.values(), key=lambda s: s.start_date, reverse=True)
            if (s.status in _ACTIVE_SESSION_STATUSES) == (state == "Active") and all(p(s) for p in predicates)
        ]
        page, token = _paginate(sessions, body, "DescribeSessions", default=20, maximum=200)
        items = []
        for s in page:
            item: dict[str, Any] = {
                "SessionId": s.session_id,
                "Target": s.target,
                "Status": s.status,
                "StartDate": s.start_date.timestamp(),
                "DocumentName": s.document_name,
                "Owner": s.owner,
            }
            if s.end_date is not None:
                item["EndDate"] = s.end_date.timestamp()
            if s.reason:
                item["Reason"] = s.reason
            items.append(item)
        return _with_token({"Sessions": items}, token)

    def _terminate_session(self, body: dict[str, Any]) -> dict[str, Any]:
        session_id = str(body.get("SessionId", ""))
        session = self.state.sessions.get(session_id)
        if session is None:
            raise SsmApiError("DoesNotExistException", f"Session {session_id} does not exist.")
        if session.active:
            session.status = "Terminated"
            session.end_date = self.state.clock.now()
        return {"SessionId": session_id}

    def _get_connection_status(self, body: dict[str, Any]) -> dict[str, Any]:
        target = str(body.get("Target", ""))
        node = self.state.nodes.get(target)
        return {"Target": target, "Status": "connected" if node is not None and node.connected else "notconnected"}

    # --- shapes ----------------------------------------------------------------------------------------------------

    def _command_shape(self, command: Command) -> dict[str, Any]:
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
            "OutputS3Region": self.state.region,
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

    def _invocation_shape(self, inv: Invocation, details: bool) -> dict[str, Any]:
        command = inv.command
        stdout_url, stderr_url = _output_urls(self.state.region, inv)
        shape: dict[str, Any] = {
            "CommandId": command.command_id,
            "InstanceId": inv.instance_id,
            "InstanceName": self.state.nodes[inv.instance_id].computer_name,
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
                "OutputS3Region": self.state.region,
                "OutputS3BucketName": command.output_s3_bucket_name,
                "OutputS3KeyPrefix": command.output_s3_key_prefix,
            }
            if inv.started_at is not None:
                plugin["ResponseStartDateTime"] = inv.started_at.timestamp()
            if inv.ended_at is not None and inv.started_at is not None:
                plugin["ResponseFinishDateTime"] = inv.ended_at.timestamp()
            shape["CommandPlugins"] = [plugin]
        return shape


# --- helpers ------------------------------------------------------------------------------------------------------


def _json_body(request: AWSPreparedRequest) -> dict[str, Any]:
    raw = request.body
    if raw is None or raw in (b"", ""):
        return {}
    if hasattr(raw, "read"):
        raw = raw.read()
    text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    body = json.loads(text) if text else {}
    return body if isinstance(body, dict) else {}


def _validation(member: str, constraint: str) -> SsmApiError:
    return SsmApiError(
        "ValidationException",
        f"1 validation error detected: Value at '{member}' failed to satisfy constraint: {constraint}",
    )


def _pattern_text(minimum_errors: int) -> str:
    return MAX_ERRORS_PATTERN.pattern if minimum_errors == 0 else MAX_CONCURRENCY_PATTERN.pattern


def _iso(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SsmApiError("InvalidFilterValue", f"{value} is not a valid timestamp.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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


def _plugins(content: str) -> tuple[str, str, frozenset[str]]:
    """The first step's name and action, and the platforms the document runs on."""
    try:
        document = json.loads(content)
    except ValueError:
        return "", "", frozenset(PLATFORMS)
    steps: list[tuple[str, str]] = []
    for step in document.get("mainSteps") or []:
        steps.append((str(step.get("name", "")), str(step.get("action", ""))))
    for action in document.get("runtimeConfig") or {}:  # schema 1.2
        steps.append((str(action), str(action)))
    if not steps:
        return "", "", frozenset(PLATFORMS)
    platforms: set[str] = set()
    for _, action in steps:
        platforms |= _ACTION_PLATFORMS.get(action, frozenset(PLATFORMS))
    return steps[0][0], steps[0][1], frozenset(platforms)


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
        after = _parse_time(value)
        return lambda obj: command_of(obj).requested_at >= after
    if key == "InvokedBefore":
        before = _parse_time(value)
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


def _node_filter(key: str, values: list[str], tags_allowed: bool) -> Callable[[ManagedNode], bool]:
    if not values:
        raise SsmApiError("InvalidInstanceInformationFilterValue", f"Filter {key} needs at least one value.")
    if tags_allowed and key.startswith("tag:"):
        tag = key[4:]
        return lambda n: n.tags.get(tag) in values
    if tags_allowed and key == "tag-key":
        return lambda n: any(k in n.tags for k in values)
    if key not in _INSTANCE_FILTER_KEYS:
        raise SsmApiError("InvalidFilterKey", f"{key} is not a valid filter key.")
    getters: dict[str, Callable[[ManagedNode], str]] = {
        "InstanceIds": lambda n: n.instance_id,
        "PingStatus": lambda n: n.ping_status,
        "PlatformTypes": lambda n: n.platform,
        "AgentVersion": lambda n: n.agent_version,
        "ResourceType": lambda n: "EC2Instance" if n.instance_id.startswith("i-") else "ManagedInstance",
        "AssociationStatus": lambda n: "Success",
    }
    getter = getters.get(key)
    if getter is None:  # ActivationIds, IamRole: simulated nodes have none
        return lambda n: False
    return lambda n: getter(n) in values


def _session_filter(key: str, value: str) -> Callable[[Session], bool]:
    if key not in _SESSION_FILTER_KEYS:
        raise SsmApiError("InvalidFilterKey", f"{key} is not a valid filter key.")
    if key == "InvokedAfter":
        after = _parse_time(value)
        return lambda s: s.start_date >= after
    if key == "InvokedBefore":
        before = _parse_time(value)
        return lambda s: s.start_date <= before
    getters: dict[str, Callable[[Session], str]] = {
        "Target": lambda s: s.target,
        "Owner": lambda s: s.owner,
        "Status": lambda s: s.status,
        "SessionId": lambda s: s.session_id,
    }
    getter = getters[key]
    return lambda s: getter(s) == value


def _paginate(
    items: list[T], body: dict[str, Any], scope: str, *, default: int, maximum: int
) -> tuple[list[T], str | None]:
    max_results = int(body.get("MaxResults") or default)
    if max_results > maximum:
        raise _validation("maxResults", f"Member must have value less than or equal to {maximum}")
    if max_results < 1:
        raise _validation("maxResults", "Member must have value greater than or equal to 1")
    offset = 0
    token = body.get("NextToken")
    if token:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(str(token).encode()).decode())
            if decoded["s"] != scope:
                raise ValueError(scope)
            offset = int(decoded["o"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise SsmApiError("InvalidNextToken", "The specified token isn't valid.") from None
    page = items[offset : offset + max_results]
    end = offset + len(page)
    next_token = None
    if end < len(items):
        next_token = base64.urlsafe_b64encode(json.dumps({"s": scope, "o": end}).encode()).decode()
    return page, next_token


def _with_token(response: dict[str, Any], token: str | None) -> dict[str, Any]:
    if token is not None:
        response["NextToken"] = token
    return response
