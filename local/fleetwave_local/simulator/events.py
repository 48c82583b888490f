"""Status events in the formats AWS documents, sent through real (moto) EventBridge and SNS.

EventBridge (source `aws.ssm`):
- `EC2 Command Invocation Status-change Notification`, detail: command-id, document-name, instance-id,
  requested-date-time, status; resources: the instance ARN.
- `EC2 Command Status-change Notification`, detail: command-id, document-name, expire-after, parameters,
  requested-date-time, status; resources: the instance ARNs.
SNS (`NotificationConfig`), a JSON string in the SNS Message:
- Invocation: commandId, documentName, instanceId, requestedDateTime, status, eventTime.
- Command: commandId, documentName, instanceIds, requestedDateTime, expiresAfter, outputS3BucketName,
  outputS3KeyPrefix, status, eventTime.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from botocore.exceptions import ClientError

from .botocore_hook import internal_calls
from .model import CANCELLING, PENDING, Command, EmittedEvent, Invocation, SimStats

SOURCE: Final = "aws.ssm"
INVOCATION_DETAIL_TYPE: Final = "EC2 Command Invocation Status-change Notification"
COMMAND_DETAIL_TYPE: Final = "EC2 Command Status-change Notification"
#: SNS never notifies these statuses
SNS_SILENT_STATUSES: Final = frozenset({PENDING, CANCELLING})
_PUT_EVENTS_BATCH: Final = 10

Path = Literal["eventbridge", "sns"]


def iso_millis(value: datetime) -> str:
    """2026-01-01T00:00:00.000Z, the format of requested-date-time, expire-after, eventTime."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def instance_arn(region: str, account_id: str, instance_id: str) -> str:
    return f"arn:aws:ec2:{region}:{account_id}:instance/{instance_id}"


@dataclass
class _Pending:
    path: Path
    at: datetime
    payload: dict[str, Any]
    topic_arn: str = ""


class EventEmitter:
    """Queues events during one simulator step, then sends them in order (put_events in batches of 10)."""

    def __init__(
        self,
        *,
        seed: int | str,
        region: str,
        account_id: str,
        event_bus_name: str,
        drop_rate: float,
        duplicate_rate: float,
        stats: SimStats,
        log: list[EmittedEvent],
        client_factory: Callable[[str], Any],
    ) -> None:
        self.region = region
        self.account_id = account_id
        self.event_bus_name = event_bus_name
        self.drop_rate = drop_rate
        self.duplicate_rate = duplicate_rate
        self._stats = stats
        self._log = log
        self._client = client_factory
        # one stream per path, so dropping on one path does not shift the draws of the other
        self._rng: dict[Path, random.Random] = {
            "eventbridge": random.Random(f"{seed}:events:eventbridge"),
            "sns": random.Random(f"{seed}:events:sns"),
        }
        self._queue: list[_Pending] = []

    # --- building ---------------------------------------------------------------------------------------------

    def invocation_changed(self, invocation: Invocation, at: datetime) -> None:
        command = invocation.command
        self._queue.append(
            _Pending(
                "eventbridge",
                at,
                {
                    "Source": SOURCE,
                    "DetailType": INVOCATION_DETAIL_TYPE,
                    "Resources": [instance_arn(self.region, self.account_id, invocation.instance_id)],
                    "Detail": {
                        "command-id": command.command_id,
                        "document-name": command.document_name,
                        "instance-id": invocation.instance_id,
                        "requested-date-time": iso_millis(command.requested_at),
                        "status": invocation.status,
                    },
                },
            )
        )
        config = command.notification_config
        if config and config.get("NotificationType") == "Invocation" and _sns_wants(config, invocation.status):
            message = {
                "commandId": command.command_id,
                "documentName": command.document_name,
                "instanceId": invocation.instance_id,
                "requestedDateTime": iso_millis(command.requested_at),
                "status": invocation.status,
                "eventTime": iso_millis(at),
            }
            self._queue.append(_Pending("sns", at, message, topic_arn=str(config["NotificationArn"])))

    def command_changed(self, command: Command, at: datetime) -> None:
        self._queue.append(
            _Pending(
                "eventbridge",
                at,
                {
                    "Source": SOURCE,
                    "DetailType": COMMAND_DETAIL_TYPE,
                    "Resources": [instance_arn(self.region, self.account_id, i) for i in command.instance_ids],
                    "Detail": {
                        "command-id": command.command_id,
                        "document-name": command.document_name,
                        "expire-after": iso_millis(command.expires_after),
                        "parameters": command.parameters,
                        "requested-date-time": iso_millis(command.requested_at),
                        "status": command.status,
                    },
                },
            )
        )
        config = command.notification_config
        if config and config.get("NotificationType") == "Command" and _sns_wants(config, command.status):
            message = {
                "commandId": command.command_id,
                "documentName": command.document_name,
                "instanceIds": list(command.instance_ids),
                "requestedDateTime": iso_millis(command.requested_at),
                "expiresAfter": iso_millis(command.expires_after),
                "outputS3BucketName": command.output_s3_bucket_name,
                "outputS3KeyPrefix": command.output_s3_key_prefix,
                "status": command.status,
                "eventTime": iso_millis(at),
            }
            self._queue.append(_Pending("sns", at, message, topic_arn=str(config["NotificationArn"])))

    # --- sending ----------------------------------------------------------------------------------------------

    def flush(self) -> None:
        queue, self._queue = self._queue, []
        if not queue:
            return
        entries: list[dict[str, Any]] = []
        for event in queue:
            copies = self._copies(event.path)
            self._log.append(EmittedEvent(event.path, event.at, event.payload, dropped=copies == 0, copies=copies))
            for _ in range(copies):
                if event.path == "eventbridge":
                    entries.append(self._put_events_entry(event))
                else:
                    # keep the order across paths roughly as produced: send what EventBridge has so far first
                    self._put_events(entries)
                    entries = []
                    self._publish(event)
        self._put_events(entries)

    def _copies(self, path: Path) -> int:
        rng = self._rng[path]
        if self.drop_rate and rng.random() < self.drop_rate:
            self._stats.events_dropped[path] += 1
            return 0
        if self.duplicate_rate and rng.random() < self.duplicate_rate:
            self._stats.events_duplicated[path] += 1
            self._stats.events_emitted[path] += 2
            return 2
        self._stats.events_emitted[path] += 1
        return 1

    def _put_events_entry(self, event: _Pending) -> dict[str, Any]:
        payload = event.payload
        return {
            "Source": payload["Source"],
            "DetailType": payload["DetailType"],
            "Resources": payload["Resources"],
            "Detail": json.dumps(payload["Detail"]),
            # EventBridge's `time` has one-second resolution
            "Time": event.at.replace(microsecond=0),
            "EventBusName": self.event_bus_name,
        }

    def _put_events(self, entries: list[dict[str, Any]]) -> None:
        for start in range(0, len(entries), _PUT_EVENTS_BATCH):
            batch = entries[start : start + _PUT_EVENTS_BATCH]
            with internal_calls():
                try:
                    result = self._client("events").put_events(Entries=batch)
                except ClientError:
                    self._stats.delivery_errors["eventbridge"] += len(batch)
                    continue
            failed = int(result.get("FailedEntryCount", 0))
            if failed:
                self._stats.delivery_errors["eventbridge"] += failed

    def _publish(self, event: _Pending) -> None:
        with internal_calls():
            try:
                self._client("sns").publish(TopicArn=event.topic_arn, Message=json.dumps(event.payload))
            except ClientError:
                # SSM drops a notification it cannot publish (missing topic, no permission) without telling anyone
                self._stats.delivery_errors["sns"] += 1


def _sns_wants(config: dict[str, Any], status: str) -> bool:
    if status in SNS_SILENT_STATUSES or not config.get("NotificationArn"):
        return False
    events = config.get("NotificationEvents") or ["All"]
    return "All" in events or status in events
