"""Conditional writes that keep things apart, in the ledger table: one running rollout per spec, one remediation per
(rule, node) per cooldown, at most N remediations per rule in any hour. Each method either wins its write or raises
ConflictError (somebody else holds it); what to do then is the service's decision.

Items:
  ``SPECLOCK#<spec>`` / ``LOCK``             the rollout holding the spec (no TTL: it lives as long as rollouts run)
  ``REMLOCK#<rule>#<node>`` / ``LOCK``       a remediation cooldown: the event that claimed it and the rollout ID
                                             planned for it before anything started (TTL)
  ``REMRATE#<rule>`` / ``WINDOW``            the rule's starts of the last hour (time, event ID), with a version
DynamoDB deletes expired items up to a few days late, so an expired item counts as free: every claim of a TTL item
is conditioned on ``attribute_not_exists(pk) OR expires_at < :now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from fleetwave.adapters.aws import error_code
from fleetwave.adapters.ledger.table import Table, serialize
from fleetwave.constants import (
    PK,
    REMEDIATION_LOCK_PK_PREFIX,
    REMEDIATION_RATE_PK_PREFIX,
    SK,
    SPEC_LOCK_PK_PREFIX,
    TTL_ATTRIBUTE,
)
from fleetwave.core.remediation import StormStart
from fleetwave.core.times import iso, parse_time
from fleetwave.errors import ConflictError

LOCK_SK = "LOCK"
WINDOW_SK = "WINDOW"


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


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
    # Chosen when the cooldown was first claimed, before anything started: a retry after a crash resumes this
    # rollout instead of starting a second one.
    planned_rollout_id: str = ""


@dataclass(frozen=True)
class StormWindow:
    starts: tuple[StormStart, ...]
    version: int


class Locks:
    """Spec locks, remediation cooldowns and storm counters (items in the ledger table, through its client)."""

    def __init__(self, table: Table) -> None:
        self.table = table

    # ------------------------------------------------------------------ low level
    def _key(self, pk: str, sk: str = LOCK_SK) -> dict[str, Any]:
        return self.table.key(pk, sk)

    def _get(self, pk: str, sk: str = LOCK_SK) -> dict[str, Any] | None:
        return self.table.get(pk, sk)

    def _conditional(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response: dict[str, Any] = getattr(self.table.db, operation)(TableName=self.table.name, **kwargs)
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
                "ExpressionAttributeValues": serialize(
                    {":holder": replacing.rollout_id, ":at": iso(replacing.acquired_at)}
                ),
            }
        self._conditional("put_item", Item=serialize(item), **condition)

    def release_spec_lock(self, spec_name: str, rollout_id: str) -> None:
        """Give the lock back (a start that failed before recording its rollout); a lock held by another is kept."""
        try:
            self._conditional(
                "delete_item",
                Key=self._key(f"{SPEC_LOCK_PK_PREFIX}{spec_name}"),
                ConditionExpression="rollout_id = :mine",
                ExpressionAttributeValues=serialize({":mine": rollout_id}),
            )
        except ConflictError:
            return

    # ------------------------------------------------------------------ remediation cooldowns
    @staticmethod
    def _cooldown_pk(rule: str, instance_id: str) -> str:
        return f"{REMEDIATION_LOCK_PK_PREFIX}{rule}#{instance_id}"

    def claim_cooldown(
        self,
        rule: str,
        instance_id: str,
        *,
        event_id: str,
        now: datetime,
        until: datetime,
        planned_rollout_id: str = "",
    ) -> None:
        """One remediation per (rule, node) until ``until``: ConflictError while an unexpired claim exists."""
        item = {
            PK: self._cooldown_pk(rule, instance_id),
            SK: LOCK_SK,
            "type": "remediation_lock",
            "rule": rule,
            "instance_id": instance_id,
            "event_id": event_id,
            "claimed_at": iso(now),
            "planned_rollout_id": planned_rollout_id or None,
            TTL_ATTRIBUTE: _epoch(until),
        }
        self._conditional(
            "put_item",
            Item=serialize(item),
            ConditionExpression="attribute_not_exists(#pk) OR #exp < :now",
            ExpressionAttributeNames={"#pk": PK, "#exp": TTL_ATTRIBUTE},
            ExpressionAttributeValues=serialize({":now": _epoch(now)}),
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
            planned_rollout_id=str(item.get("planned_rollout_id", "")),
        )

    def take_over_cooldown(self, held: Cooldown, now: datetime) -> None:
        """Resume a claim whose remediation never started (the claimer crashed): only if nobody did meanwhile."""
        self._conditional(
            "update_item",
            Key=self._key(self._cooldown_pk(held.rule, held.instance_id)),
            UpdateExpression="SET claimed_at = :now",
            ConditionExpression="event_id = :event AND claimed_at = :claimed AND attribute_not_exists(rollout_id)",
            ExpressionAttributeValues=serialize(
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
            ExpressionAttributeValues=serialize({":rollout": rollout_id, ":event": event_id}),
        )

    def release_cooldown(self, rule: str, instance_id: str, event_id: str) -> None:
        """Drop a claim that did not lead to a remediation (the storm breaker said no)."""
        try:
            self._conditional(
                "delete_item",
                Key=self._key(self._cooldown_pk(rule, instance_id)),
                ConditionExpression="event_id = :event AND attribute_not_exists(rollout_id)",
                ExpressionAttributeValues=serialize({":event": event_id}),
            )
        except ConflictError:
            return

    # ------------------------------------------------------------------ storm breaker
    def storm_window(self, rule: str) -> StormWindow:
        """The rule's recorded starts (all of them: the caller drops those outside the window) and the version."""
        item = self._get(f"{REMEDIATION_RATE_PK_PREFIX}{rule}", WINDOW_SK)
        if item is None:
            return StormWindow((), 0)
        starts = tuple(
            StormStart(parse_time(start["at"]) or datetime.min, str(start["event_id"])) for start in item["starts"]
        )
        return StormWindow(starts, int(item.get("version", 0)))

    def save_storm_window(
        self, rule: str, starts: tuple[StormStart, ...], *, read: StormWindow, expires: datetime
    ) -> None:
        """Replace the window as read: ConflictError when another start changed it meanwhile (read it again)."""
        item = {
            PK: f"{REMEDIATION_RATE_PK_PREFIX}{rule}",
            SK: WINDOW_SK,
            "type": "remediation_rate",
            "rule": rule,
            "starts": [{"at": iso(start.at), "event_id": start.event_id} for start in starts],
            "version": read.version + 1,
            TTL_ATTRIBUTE: _epoch(expires),
        }
        if read.version == 0:
            condition: dict[str, Any] = {
                "ConditionExpression": "attribute_not_exists(#pk)",
                "ExpressionAttributeNames": {"#pk": PK},
            }
        else:
            condition = {
                "ConditionExpression": "#v = :read",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": serialize({":read": read.version}),
            }
        self._conditional("put_item", Item=serialize(item), **condition)
