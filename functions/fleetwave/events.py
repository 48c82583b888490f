"""Typed edges: SSM status events (EventBridge and SNS, as AWS documents them) parsed into observations."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleetwave.constants import DETAIL_TYPE_COMMAND, DETAIL_TYPE_INVOCATION, SSM_EVENT_SOURCE
from fleetwave.service.track import Observation


class InvalidEventError(ValueError):
    """A message that is neither an SSM EventBridge event nor an SSM SNS notification."""


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class InvocationDetail(_Loose):
    command_id: str = Field(alias="command-id")
    instance_id: str = Field(alias="instance-id")
    status: str
    document_name: str = Field("", alias="document-name")


class CommandDetail(_Loose):
    command_id: str = Field(alias="command-id")
    status: str
    document_name: str = Field("", alias="document-name")


class SsmEvent(_Loose):
    source: str
    detail_type: str = Field(alias="detail-type")
    detail: dict[str, Any]
    id: str = ""


class SnsEnvelope(_Loose):
    Type: str
    Message: str
    MessageId: str = ""


class SnsRunCommandMessage(_Loose):
    commandId: str
    status: str
    instanceId: str | None = None
    documentName: str = ""


def parse_status_message(message_id: str, body: str) -> Observation:
    """One SQS message body (an EventBridge event or an SNS envelope) -> an Observation."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError as error:
        raise InvalidEventError(f"not JSON: {error}") from None
    if not isinstance(data, dict):
        raise InvalidEventError("not a JSON object")
    try:
        if "detail-type" in data:
            event = SsmEvent.model_validate(data)
            if event.source != SSM_EVENT_SOURCE:
                raise InvalidEventError(f"unexpected source {event.source!r}")
            if event.detail_type == DETAIL_TYPE_INVOCATION:
                detail = InvocationDetail.model_validate(event.detail)
                return Observation(
                    message_id, detail.command_id, detail.instance_id, detail.status, source="eventbridge"
                )
            if event.detail_type == DETAIL_TYPE_COMMAND:
                command = CommandDetail.model_validate(event.detail)
                return Observation(message_id, command.command_id, None, command.status, source="eventbridge")
            raise InvalidEventError(f"unexpected detail-type {event.detail_type!r}")
        if data.get("Type") == "Notification":
            envelope = SnsEnvelope.model_validate(data)
            message = SnsRunCommandMessage.model_validate(json.loads(envelope.Message))
            return Observation(message_id, message.commandId, message.instanceId, message.status, source="sns")
    except (ValidationError, json.JSONDecodeError) as error:
        raise InvalidEventError(str(error).splitlines()[0]) from None
    raise InvalidEventError("neither an EventBridge event nor an SNS notification")
