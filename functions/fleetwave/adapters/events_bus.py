"""fleetwave's own events on its EventBridge bus."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from fleetwave.adapters.aws import error_code
from fleetwave.constants import FLEETWAVE_EVENT_SOURCE
from fleetwave.errors import RetryLaterError


class EventPublishError(RetryLaterError):
    """EventBridge did not take an event (a failed entry or a failed call): the stream record must be retried."""


@dataclass(frozen=True)
class BusEvent:
    detail_type: str
    detail: dict[str, Any]
    time: datetime | None = None
    resources: tuple[str, ...] = ()


class EventBus:
    """PutEvents on one bus. Raises EventPublishError unless every entry was accepted (FailedEntryCount == 0).

    botocore's retries cover throttling and 5xx answers; a failed entry inside a 200 answer is EventBridge's
    partial failure, which only the caller can retry (by failing the stream record).
    """

    def __init__(self, events: Any, bus_name: str, source: str = FLEETWAVE_EVENT_SOURCE) -> None:
        self.events = events
        self.bus_name = bus_name
        self.source = source

    def put(self, event: BusEvent) -> str:
        """Put one event; returns its EventBridge ID."""
        entry: dict[str, Any] = {
            "Source": self.source,
            "DetailType": event.detail_type,
            "Detail": json.dumps(event.detail, sort_keys=True),
            "EventBusName": self.bus_name,
        }
        if event.time is not None:
            entry["Time"] = event.time
        if event.resources:
            entry["Resources"] = list(event.resources)
        try:
            response = self.events.put_events(Entries=[entry])
        except (ClientError, BotoCoreError) as error:
            raise EventPublishError(f"PutEvents failed: {error_code(error) or type(error).__name__}") from error
        if response.get("FailedEntryCount", 0):
            failed: dict[str, Any] = next((e for e in response.get("Entries", []) if e.get("ErrorCode")), {})
            code, message = failed.get("ErrorCode", "?"), failed.get("ErrorMessage", "")
            raise EventPublishError(f"PutEvents rejected {event.detail_type!r}: {code} {message}".rstrip())
        return str(response["Entries"][0].get("EventId", ""))
