"""The ledger's DynamoDB stream, decoded: a record about an item notify publishes for becomes a LedgerChange, which
hands out domain objects (Rollout, Wave, RemediationRecord, NoticeRecord), never the item itself."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fleetwave.adapters.ledger.plans import wave_from_item
from fleetwave.adapters.ledger.rollouts import rollout_from_item
from fleetwave.adapters.ledger.table import deserialize, rollout_pk
from fleetwave.constants import NOTIFY_ITEM_TYPES, PK, SK
from fleetwave.core.model import Rollout, Wave
from fleetwave.core.notifications.common import NoticeRecord, RemediationRecord
from fleetwave.core.times import parse_moment

_ITEM_TYPES = frozenset(NOTIFY_ITEM_TYPES)
# Item attributes that may tell when a remediation or notice happened (else: the stream record's time).
_TIME_ATTRIBUTES = ("at", "occurred_at", "created_at", "decided_at")


@dataclass(frozen=True)
class LedgerChange:
    """One stream record about an item notify publishes for, with its images deserialized."""

    event_name: str
    item_type: str
    pk: str
    sk: str
    new: Mapping[str, Any]
    old: Mapping[str, Any]
    recorded_at: datetime | None = None

    def identity(self, what: str) -> str:
        """Names the change, not its delivery: the same for every redelivery of the record."""
        return f"{self.pk}|{self.sk}|{what}"

    @property
    def new_state(self) -> str | None:
        state = self.new.get("state")
        return str(state) if state is not None else None

    @property
    def old_state(self) -> str | None:
        state = self.old.get("state")
        return str(state) if state is not None else None

    def happened_at(self) -> datetime | None:
        """When a notice or remediation happened: an explicit time attribute, the time its sort key starts with
        (``<iso time>`` / ``<iso time>#<instance>``), or else when the stream recorded the write."""
        for value in (*(self.new.get(name) for name in _TIME_ATTRIBUTES), self.sk.split("#", 1)[0]):
            moment = parse_moment(value)
            if moment:
                return moment
        return self.recorded_at

    # ------------------------------------------------------------------ the item as a domain object
    @property
    def rollout_id(self) -> str:
        """The rollout a rollout or wave item belongs to."""
        return self.pk.removeprefix(rollout_pk(""))

    def rollout(self) -> Rollout:
        """The rollout item as it is now (KeyError, ValueError or TypeError when the image is not one)."""
        return rollout_from_item(self.new)

    def spec_json(self) -> str | None:
        """The spec JSON a rollout item carries, if any."""
        spec = self.new.get("spec")
        return None if spec is None else str(spec)

    def wave(self) -> Wave:
        """The wave item as it is now (KeyError, ValueError or TypeError when the image is not one)."""
        return wave_from_item(self.new)

    def remediation(self) -> RemediationRecord:
        """The remediation record inserted (pydantic's ValidationError when the image is not one)."""
        return RemediationRecord.model_validate(dict(self.new))

    def notice(self) -> NoticeRecord:
        """The notice inserted (pydantic's ValidationError when the image is not one)."""
        return NoticeRecord.model_validate(dict(self.new))


def ledger_change(record: Mapping[str, Any]) -> LedgerChange | None:
    """The change a stream record carries, or None (cheaply) for items notify does not publish for."""
    data = record.get("dynamodb") or {}
    raw_new = data.get("NewImage") or {}
    item_type = (raw_new.get("type") or {}).get("S")
    if item_type not in _ITEM_TYPES:
        return None  # invocations, chunks, shards, idempotency records, deletions (TTL): nothing to say
    event_name = str(record.get("eventName", ""))
    if item_type in ("rollout", "wave"):
        old_state = ((data.get("OldImage") or {}).get("state") or {}).get("S")
        if old_state == (raw_new.get("state") or {}).get("S"):
            return None  # a counter update: no state change
    elif event_name != "INSERT":
        return None  # remediations and notices are news when written, not when touched
    new = deserialize(raw_new)
    return LedgerChange(
        event_name=event_name,
        item_type=str(item_type),
        pk=str(new.get(PK, "")),
        sk=str(new.get(SK, "")),
        new=new,
        old=deserialize(data.get("OldImage")),
        recorded_at=parse_moment(data.get("ApproximateCreationDateTime")),
    )
