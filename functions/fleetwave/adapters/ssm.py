"""Systems Manager and EC2 calls: documents, node inventory, SendCommand, invocation reads, cancellation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from fleetwave.adapters.aws import error_code
from fleetwave.constants import MAX_IDS_PER_COMMAND, MAX_LIST_INVOCATIONS_PAGE
from fleetwave.core.planner import ActiveSession, NodeInfo
from fleetwave.errors import NotFoundError, SpecRejectedError

_INSTANCE_INFO_PAGE = 50


@dataclass(frozen=True)
class DocumentParameter:
    name: str
    type: str
    required: bool
    default: str | None = None


@dataclass(frozen=True)
class DocumentInfo:
    name: str
    version: str
    hash: str
    hash_type: str
    document_type: str
    status: str
    parameters: Mapping[str, DocumentParameter] = field(default_factory=dict)


@dataclass(frozen=True)
class InvocationInfo:
    command_id: str
    instance_id: str
    status: str
    status_details: str
    output_url: str = ""


@dataclass(frozen=True)
class CommandRequest:
    document_name: str
    document_version: str
    document_hash: str
    instance_ids: Sequence[str]
    parameters: Mapping[str, Sequence[str]]
    comment: str
    max_concurrency: int
    max_errors: int
    timeout_seconds: int
    notification_topic_arn: str = ""
    notification_role_arn: str = ""
    output_s3_bucket: str | None = None
    output_s3_prefix: str | None = None
    cloudwatch_log_group: str | None = None
    cloudwatch_enabled: bool = False


class SsmGateway:
    """Thin wrapper over the SSM and EC2 clients that speaks fleetwave's types and errors."""

    def __init__(self, ssm: Any, ec2: Any) -> None:
        self.ssm = ssm
        self.ec2 = ec2

    # ------------------------------------------------------------------ documents
    def describe_document(self, name: str, version: str) -> DocumentInfo:
        kwargs: dict[str, Any] = {"Name": name}
        if version not in ("$DEFAULT",):
            kwargs["DocumentVersion"] = version
        try:
            document = self.ssm.describe_document(**kwargs)["Document"]
        except ClientError as error:
            code = error_code(error)
            if code == "InvalidDocument":
                raise SpecRejectedError(
                    [f"document.name: document {name!r} does not exist or is not shared with this account"]
                ) from None
            if code == "InvalidDocumentVersion":
                raise SpecRejectedError([f"document.version: document {name!r} has no version {version!r}"]) from None
            raise
        if version == "$LATEST":
            resolved = str(document.get("LatestVersion") or document.get("DocumentVersion"))
        else:
            resolved = str(document.get("DocumentVersion") or document.get("DefaultVersion") or "1")
        parameters = {
            p["Name"]: DocumentParameter(
                name=p["Name"],
                type=str(p.get("Type", "String")),
                required="DefaultValue" not in p,
                default=p.get("DefaultValue"),
            )
            for p in document.get("Parameters", [])
        }
        return DocumentInfo(
            name=str(document.get("Name", name)),
            version=resolved,
            hash=str(document.get("Hash", "")),
            hash_type=str(document.get("HashType", "Sha256")),
            document_type=str(document.get("DocumentType", "")),
            status=str(document.get("Status", "Active")),
            parameters=parameters,
        )

    # ------------------------------------------------------------------ targets
    def instances_by_tags(self, tags: Mapping[str, Sequence[str]]) -> list[str]:
        """EC2 instances (not terminated) carrying every tag key with one of its values."""
        filters = [{"Name": f"tag:{key}", "Values": list(values)} for key, values in tags.items()]
        filters.append({"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]})
        ids: list[str] = []
        for page in self.ec2.get_paginator("describe_instances").paginate(Filters=filters):
            for reservation in page.get("Reservations", []):
                ids.extend(instance["InstanceId"] for instance in reservation.get("Instances", []))
        return ids

    def node_tags(self, instance_id: str) -> dict[str, str]:
        """A managed node's own tags: EC2 DescribeTags for an instance, ListTagsForResource for a hybrid (mi-) node.
        A node that does not exist has none."""
        tags: dict[str, str] = {}
        if instance_id.startswith("mi-"):
            try:
                response = self.ssm.list_tags_for_resource(ResourceType="ManagedInstance", ResourceId=instance_id)
            except ClientError as error:
                if error_code(error) in {"InvalidResourceId", "InvalidResourceType"}:
                    return tags
                raise
            return {str(tag["Key"]): str(tag["Value"]) for tag in response.get("TagList", [])}
        filters = [
            {"Name": "resource-id", "Values": [instance_id]},
            {"Name": "resource-type", "Values": ["instance"]},
        ]
        for page in self.ec2.get_paginator("describe_tags").paginate(Filters=filters):
            for tag in page.get("Tags", []):
                tags[str(tag["Key"])] = str(tag.get("Value", ""))
        return tags

    def describe_nodes(self, instance_ids: Sequence[str]) -> dict[str, NodeInfo]:
        """SSM's view of each candidate; IDs SSM does not know are reported as unmanaged."""
        found: dict[str, NodeInfo] = {}
        for start in range(0, len(instance_ids), _INSTANCE_INFO_PAGE):
            batch = list(instance_ids[start : start + _INSTANCE_INFO_PAGE])
            kwargs: dict[str, Any] = {"Filters": [{"Key": "InstanceIds", "Values": batch}], "MaxResults": 50}
            while True:
                response = self.ssm.describe_instance_information(**kwargs)
                for info in response.get("InstanceInformationList", []):
                    found[info["InstanceId"]] = NodeInfo(
                        instance_id=info["InstanceId"],
                        ping_status=str(info.get("PingStatus", "Inactive")),
                        platform=str(info.get("PlatformType", "")),
                    )
                token = response.get("NextToken")
                if not token:
                    break
                kwargs["NextToken"] = token
        return {
            instance_id: found.get(instance_id, NodeInfo(instance_id=instance_id, managed=False, ping_status="Unknown"))
            for instance_id in instance_ids
        }

    def active_session_targets(self, instance_ids: Iterable[str]) -> set[str]:
        """Nodes with an active Session Manager session (DescribeSessions, State=Active)."""
        return {session.target for session in self.active_sessions(instance_ids)}

    def active_sessions(self, instance_ids: Iterable[str]) -> list[ActiveSession]:
        """Active Session Manager sessions on these nodes.

        One DescribeSessions page (200 sessions) lists every active session of the account and region; its Target
        filter takes one node per call. Listing and intersecting costs ceil(active sessions / 200) calls whatever
        the number of nodes, where filtering would cost one call per node.
        """
        wanted = set(instance_ids)
        found: list[ActiveSession] = []
        if not wanted:
            return found
        kwargs: dict[str, Any] = {"State": "Active", "MaxResults": 200}
        while True:
            response = self.ssm.describe_sessions(**kwargs)
            for session in response.get("Sessions", []):
                if session.get("Target") in wanted:
                    found.append(
                        ActiveSession(
                            session_id=str(session["SessionId"]),
                            target=str(session["Target"]),
                            started_at=_aware(session["StartDate"]),
                        )
                    )
            token = response.get("NextToken")
            if not token:
                return found
            kwargs["NextToken"] = token

    def terminate_session(self, session_id: str) -> None:
        try:
            self.ssm.terminate_session(SessionId=session_id)
        except ClientError as error:
            # The session ended on its own meanwhile: what was asked for is done.
            if error_code(error) != "DoesNotExistException":
                raise

    def is_connected(self, instance_id: str) -> bool:
        """GetConnectionStatus: whether the node's agent is connected now (one call per node)."""
        status = self.ssm.get_connection_status(Target=instance_id).get("Status", "")
        return str(status).lower() == "connected"

    # ------------------------------------------------------------------ commands
    def send_command(self, request: CommandRequest) -> str:
        if len(request.instance_ids) > MAX_IDS_PER_COMMAND:
            raise ValueError(f"SendCommand takes at most {MAX_IDS_PER_COMMAND} instance IDs")
        kwargs: dict[str, Any] = {
            "DocumentName": request.document_name,
            "DocumentVersion": request.document_version,
            "InstanceIds": list(request.instance_ids),
            "Parameters": {key: list(values) for key, values in request.parameters.items()},
            "Comment": request.comment,
            "MaxConcurrency": str(request.max_concurrency),
            "MaxErrors": str(request.max_errors),
            "TimeoutSeconds": request.timeout_seconds,
        }
        if request.document_hash:
            kwargs["DocumentHash"] = request.document_hash
            kwargs["DocumentHashType"] = "Sha256"
        if request.notification_topic_arn:
            kwargs["NotificationConfig"] = {
                "NotificationArn": request.notification_topic_arn,
                "NotificationEvents": ["All"],
                "NotificationType": "Invocation",
            }
            if request.notification_role_arn:
                kwargs["ServiceRoleArn"] = request.notification_role_arn
        if request.output_s3_bucket:
            kwargs["OutputS3BucketName"] = request.output_s3_bucket
            if request.output_s3_prefix:
                kwargs["OutputS3KeyPrefix"] = request.output_s3_prefix
        if request.cloudwatch_enabled or request.cloudwatch_log_group:
            config: dict[str, Any] = {"CloudWatchOutputEnabled": True}
            if request.cloudwatch_log_group:
                config["CloudWatchLogGroupName"] = request.cloudwatch_log_group
            kwargs["CloudWatchOutputConfig"] = config
        return str(self.ssm.send_command(**kwargs)["Command"]["CommandId"])

    def find_command(self, document_name: str, comment: str, invoked_after: datetime) -> str | None:
        """The command carrying ``comment``, if SSM lists it yet (ListCommands is eventually consistent)."""
        kwargs: dict[str, Any] = {
            "Filters": [
                {"key": "DocumentName", "value": document_name},
                {"key": "InvokedAfter", "value": invoked_after.strftime("%Y-%m-%dT%H:%M:%SZ")},
            ],
            "MaxResults": 50,
        }
        while True:
            response = self.ssm.list_commands(**kwargs)
            for command in response.get("Commands", []):
                if command.get("Comment") == comment:
                    return str(command["CommandId"])
            token = response.get("NextToken")
            if not token:
                return None
            kwargs["NextToken"] = token

    def cancel_command(self, command_id: str) -> None:
        try:
            self.ssm.cancel_command(CommandId=command_id)
        except ClientError as error:
            # A command that already finished cannot be cancelled; nothing is lost.
            if error_code(error) not in {"InvalidCommandId", "DuplicateInstanceId"}:
                raise

    def get_invocation(self, command_id: str, instance_id: str) -> InvocationInfo:
        try:
            response = self.ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
        except ClientError as error:
            if error_code(error) in {"InvocationDoesNotExist", "InvalidCommandId"}:
                raise NotFoundError(f"invocation {command_id}/{instance_id} not visible yet") from None
            raise
        return InvocationInfo(
            command_id=command_id,
            instance_id=instance_id,
            status=str(response.get("Status", "")),
            status_details=str(response.get("StatusDetails", "")),
            output_url=str(response.get("StandardOutputUrl") or ""),
        )

    def list_invocations(self, command_id: str) -> list[InvocationInfo]:
        """Every invocation of a command SSM lists now (possibly none yet: unknown, never done)."""
        kwargs: dict[str, Any] = {"CommandId": command_id, "MaxResults": MAX_LIST_INVOCATIONS_PAGE}
        found: list[InvocationInfo] = []
        while True:
            response = self.ssm.list_command_invocations(**kwargs)
            for item in response.get("CommandInvocations", []):
                found.append(
                    InvocationInfo(
                        command_id=command_id,
                        instance_id=item["InstanceId"],
                        status=str(item.get("Status", "")),
                        status_details=str(item.get("StatusDetails", "")),
                        output_url=str(item.get("StandardOutputUrl") or ""),
                    )
                )
            token = response.get("NextToken")
            if not token:
                return found
            kwargs["NextToken"] = token


def _aware(value: Any) -> datetime:
    """botocore parses timestamps to aware datetimes; a naive one is UTC."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
