"""SendCommand: the request checked as SSM checks it, the document resolved (moto's), the command given to the model."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import ClientError

from ..botocore_hook import SsmApiError, forward_to_moto, internal_calls, json_response
from ..model import (
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
    resolve_rate,
)
from ..run_command import RunCommandService
from ..state import SsmState
from .commands import command_shape
from .wire import validation_error

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


class SendCommand:
    """The SendCommand operation.

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

    def __call__(self, body: dict[str, Any], event_name: str, request: AWSPreparedRequest) -> AWSResponse:
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
            raise validation_error("instanceIds", "Member must have length less than or equal to 50")
        for instance_id in instance_ids:
            if not INSTANCE_ID_PATTERN.match(str(instance_id)):
                raise validation_error(
                    "instanceIds", r"Member must satisfy regular expression pattern: (^i-(\w{8}|\w{17})$)|(^mi-\w{17}$)"
                )
        comment = str(body.get("Comment", ""))
        if len(comment) > MAX_COMMENT_LENGTH:
            raise validation_error("comment", "Member must have length less than or equal to 100")
        timeout_seconds = int(body.get("TimeoutSeconds", DEFAULT_TIMEOUT_SECONDS))
        if not MIN_TIMEOUT_SECONDS <= timeout_seconds <= MAX_TIMEOUT_SECONDS:
            raise validation_error(
                "timeoutSeconds",
                f"Member must have value between {MIN_TIMEOUT_SECONDS} and {MAX_TIMEOUT_SECONDS}",
            )
        max_concurrency = str(body.get("MaxConcurrency", DEFAULT_MAX_CONCURRENCY))
        if not MAX_CONCURRENCY_PATTERN.match(max_concurrency):
            raise validation_error(
                "maxConcurrency", f"Member must satisfy regular expression pattern: {_pattern_text(1)}"
            )
        max_errors = str(body.get("MaxErrors", DEFAULT_MAX_ERRORS))
        if not MAX_ERRORS_PATTERN.match(max_errors):
            raise validation_error("maxErrors", f"Member must satisfy regular expression pattern: {_pattern_text(0)}")
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
        return json_response(request.url, {"Command": command_shape(self.state, command)})

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


def _pattern_text(minimum_errors: int) -> str:
    return MAX_ERRORS_PATTERN.pattern if minimum_errors == 0 else MAX_CONCURRENCY_PATTERN.pattern


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
