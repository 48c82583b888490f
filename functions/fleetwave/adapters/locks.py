"""Conditional writes that keep things apart, in the ledger table: one running rollout per spec, one remediation per
(rule, node) per cooldown, at most N remediations per rule per hour. Each method either wins its write or raises
ConflictError (somebody else holds it); what to do then is the service's decision.

Items:
  ``SPECLOCK#<spec>`` / ``LOCK``             the rollout holding the spec (no TTL: it lives as long as rollouts run)
  ``REMLOCK#<rule>#<node>`` / ``LOCK``       a remediation cooldown, with the event that claimed it (TTL)
  ``REMRATE#<rule>`` / ``<UTC hour>``        remediations started by a rule in that hour (TTL)
DynamoDB deletes expired items up to a few days late, so an expired item counts as free: every claim of a TTL item
is conditioned on ``attribute_not_exists(pk) OR expires_at < :now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from fleetwave.adapters.aws import error_code
from fleetwave.adapters.ledger import Ledger, iso, parse_time
from fleetwave.constants import (
    PK,
    REMEDIATION_LOCK_PK_PREFIX,
    REMEDIATION_RATE_PK_PREFIX,
    SK,
    SPEC_LOCK_PK_PREFIX,
    TTL_ATTRIBUTE,
)
from fleetwave.errors import ConflictError

LOCK_SK = "LOCK"
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _ser(values: dict[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in values.items() if value is not None}


@dataclass(frozen=True)
class SpecLock:
    spec_name: str
    rollout_id: str
    acquired_at: datetime


@dataclass(frozen=True)
class Cooldown:
    rule: str
    instance_id: str
    event_id: str
    claimed_at: datetime
    expires_at: int
    rollout_id: str | None = None


class Locks:
    def __init__(self, table_name: str, dynamodb: Any) -> None:
        self.table = table_name
        self.db = dynamodb

    @classmethod
    def for_ledger(cls, ledger: Ledger) -> Locks:
        """Locks live in the ledger's table and use its client."""
        return cls(ledger.table, ledger.db)

    # ------------------------------------------------------------------ low level
    def _key(self, pk: str, sk: str = LOCK_SK) -> dict[str, Any]:
        return {PK: {"S": pk}, SK: {"S": sk}}

    def _get(self, pk: str, sk: str = LOCK_SK) -> dict[str, Any] | None:
        item = self.db.get_item(TableName=self.table, Key=self._key(pk, sk), ConsistentRead=True).get("Item")
        return {key: _deserializer.deserialize(value) for key, value in item.items()} if item else None

    def _conditional(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response: dict[str, Any] = getattr(self.db, operation)(TableName=self.table, **kwargs)
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                raise ConflictError(f"{operation} lost its condition: {kwargs.get('ConditionExpression')}") from error
            raise
        return response

    # ------------------------------------------------------------------ one rollout per spec
    def spec_lock(self, spec_name: str) -> SpecLock | None:
        item = self._get(f"{SPEC_LOCK_PK_PREFIX}{spec_name}")
        if item is None:
            return None
        return SpecLock(spec_name, str(item["rollout_id"]), parse_time(item["acquired_at"]) or datetime.min)

    def claim_spec_lock(self, spec_name: str, rollout_id: str, now: datetime, *, replacing: SpecLock | None) -> None:
        """Make ``rollout_id`` the spec's running rollout: the lock must be absent, or still held by ``replacing``
        (a holder the caller found ended). Two starters replacing the same holder: one wins, one gets ConflictError."""
        item = {
            PK: f"{SPEC_LOCK_PK_PREFIX}{spec_name}",
            SK: LOCK_SK,
            "type": "spec_lock",
            "spec_name": spec_name,
            "rollout_id": rollout_id,
            "acquired_at": iso(now),
        }
        if replacing is None:
            condition: dict[str, Any] = {
                "ConditionExpression": "attribute_not_exists(#pk)",
                "ExpressionAttributeNames": {"#pk": PK},
            }
        else:
            condition = {
                "ConditionExpression": "rollout_id = :holder AND acquired_at = :at",
                "ExpressionAttributeValues": _ser({":holder": replacing.rollout_id, ":at": iso(replacing.acquired_at)}),
            }
        self._conditional("put_item", Item=_ser(item), **condition)

    def release_spec_lock(self, spec_name: str, rollout_id: str) -> None:
        """Give the lock back (a start that failed before recording its rollout); a lock held by another is kept."""
        try:
            self._conditional(
                "delete_item",
                Key=self._key(f"{SPEC_LOCK_PK_PREFIX}{spec_name}"),
                ConditionExpression="rollout_id = :mine",
                ExpressionAttributeValues=_ser({":mine": rollout_id}),
            )
        except ConflictError:
            return

    # ------------------------------------------------------------------ remediation cooldowns
    @staticmethod
    def _cooldown_pk(rule: str, instance_id: str) -> str:
        return f"{REMEDIATION_LOCK_PK_PREFIX}{rule}#{instance_id}"

    def claim_cooldown(self, rule: str, instance_id: str, *, event_id: str, now: datetime, until: datetime) -> None:
        """One remediation per (rule, node) until ``until``: ConflictError while an unexpired claim exists."""
        item = {
            PK: self._cooldown_pk(rule, instance_id),
            SK: LOCK_SK,
            "type": "remediation_lock",
            "rule": rule,
            "instance_id": instance_id,
            "event_id": event_id,
            "claimed_at": iso(now),
            TTL_ATTRIBUTE: _epoch(until),
        }
        self._conditional(
            "put_item",
            Item=_ser(item),
            ConditionExpression="attribute_not_exists(#pk) OR #exp < :now",
            ExpressionAttributeNames={"#pk": PK, "#exp": TTL_ATTRIBUTE},
            ExpressionAttributeValues=_ser({":now": _epoch(now)}),
        )

    def cooldown(self, rule: str, instance_id: str) -> Cooldown | None:
        item = self._get(self._cooldown_pk(rule, instance_id))
        if item is None:
            return None
        return Cooldown(
            rule=rule,
            instance_id=instance_id,
            event_id=str(item.get("event_id", "")),
            claimed_at=parse_time(item.get("claimed_at")) or datetime.min,
            expires_at=int(item.get(TTL_ATTRIBUTE, 0)),
            rollout_id=item.get("rollout_id"),
        )

    def take_over_cooldown(self, held: Cooldown, now: datetime) -> None:
        """Resume a claim whose remediation never started (the claimer crashed): only if nobody did meanwhile."""
        self._conditional(
            "update_item",
            Key=self._key(self._cooldown_pk(held.rule, held.instance_id)),
            UpdateExpression="SET claimed_at = :now",
            ConditionExpression="event_id = :event AND claimed_at = :claimed AND attribute_not_exists(rollout_id)",
            ExpressionAttributeValues=_ser(
                {":now": iso(now), ":event": held.event_id, ":claimed": iso(held.claimed_at)}
            ),
        )

    def record_cooldown_rollout(self, rule: str, instance_id: str, event_id: str, rollout_id: str) -> None:
        """The claimed remediation started: a redelivery of the same event now knows it is done."""
        self._conditional(
            "update_item",
            Key=self._key(self._cooldown_pk(rule, instance_id)),
            UpdateExpression="SET rollout_id = :rollout",
            ConditionExpression="event_id = :event",
            ExpressionAttributeValues=_ser({":rollout": rollout_id, ":event": event_id}),
        )

    def release_cooldown(self, rule: str, instance_id: str, event_id: str) -> None:
        """Drop a claim that did not lead to a remediation (the storm breaker said no)."""
        try:
            self._conditional(
                "delete_item",
                Key=self._key(self._cooldown_pk(rule, instance_id)),
                ConditionExpression="event_id = :event AND attribute_not_exists(rollout_id)",
                ExpressionAttributeValues=_ser({":event": event_id}),
            )
        except ConflictError:
            return

    # ------------------------------------------------------------------ storm breaker
    def count_remediation(self, rule: str, bucket: str, *, limit: int, expires: datetime) -> int:
        """Count one more remediation of ``rule`` in hour ``bucket``; ConflictError when ``limit`` are counted."""
        response = self._conditional(
            "update_item",
            Key=self._key(f"{REMEDIATION_RATE_PK_PREFIX}{rule}", bucket),
            UpdateExpression="ADD #n :one SET #exp = :exp, #type = :type",
            ConditionExpression="attribute_not_exists(#n) OR #n < :limit",
            ExpressionAttributeNames={"#n": "started", "#exp": TTL_ATTRIBUTE, "#type": "type"},
            ExpressionAttributeValues=_ser(
                {":one": 1, ":limit": limit, ":exp": _epoch(expires + timedelta(hours=1)), ":type": "remediation_rate"}
            ),
            ReturnValues="UPDATED_NEW",
        )
        return int(_deserializer.deserialize(response["Attributes"]["started"]))
