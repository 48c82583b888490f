"""Records that are not rollouts, each written once and published by notify (TTL: NOTICE_TTL_DAYS):

``NOTICE#<spec>`` / ``<iso time>``                  a notice ("notify instead", e.g. a start skipped)
``REMEDIATION#<rule>`` / ``<iso time>#<instance>``  one remediation decision (started, skipped, verification_failed)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from fleetwave.adapters.ledger.table import Table, sortable_iso
from fleetwave.constants import (
    ITEM_TYPE_NOTICE,
    ITEM_TYPE_REMEDIATION,
    NOTICE_PK_PREFIX,
    NOTICE_TTL_DAYS,
    PK,
    REMEDIATION_PK_PREFIX,
    SK,
    TTL_ATTRIBUTE,
)
from fleetwave.core.times import iso
from fleetwave.errors import ConflictError


def _record(pk: str, item_type: str, now: datetime, extra: Mapping[str, Any] | None, **fields: Any) -> dict[str, Any]:
    """A record item (its sort key comes with the put), expiring NOTICE_TTL_DAYS after ``now``."""
    return {
        PK: pk,
        "type": item_type,
        **fields,
        TTL_ATTRIBUTE: int((now + timedelta(days=NOTICE_TTL_DAYS)).timestamp()),
        **(extra or {}),
    }


class Records:
    """Notices and remediation records: written once (never overwritten), read oldest first."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def put_notice(
        self, spec_name: str, kind: str, reason: str, now: datetime, extra: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """A "notify instead" record (e.g. a start skipped): notify turns items of type notice into messages."""
        item = _record(
            f"{NOTICE_PK_PREFIX}{spec_name}",
            ITEM_TYPE_NOTICE,
            now,
            extra,
            kind=kind,
            spec_name=spec_name,
            reason=reason,
        )
        return self._put_at(item, now, "")

    def put_remediation(
        self,
        rule: str,
        instance_id: str,
        outcome: str,
        reason: str,
        now: datetime,
        *,
        alarm_name: str,
        rollout_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
        once: bool = False,
    ) -> dict[str, Any]:
        """One remediation decision (started, skipped, verification_failed); notify publishes it. ``once``: the
        record of this (time, node) is written at most once (a retry that finds it written changes nothing)."""
        item = _record(
            f"{REMEDIATION_PK_PREFIX}{rule}",
            ITEM_TYPE_REMEDIATION,
            now,
            extra,
            outcome=outcome,
            reason=reason,
            rule=rule,
            alarm_name=alarm_name,
            instance_id=instance_id,
            rollout_id=rollout_id,
        )
        return self._put_at(item, now, f"#{instance_id}", attempts=1 if once else 10)

    def _put_at(self, item: dict[str, Any], now: datetime, suffix: str, *, attempts: int = 10) -> dict[str, Any]:
        """Put ``item`` with sort key ``<iso time><suffix>``; two records in one instant (the same microsecond)
        do not overwrite each other: the later one moves on by a microsecond. With one attempt, an existing item
        at that key is left as it is (the record was written before)."""
        for step in range(attempts):
            item[SK] = f"{sortable_iso(now + timedelta(microseconds=step))}{suffix}"
            if self.table.put_if_absent(item):
                return item
        if attempts == 1:
            return item
        raise ConflictError(f"no free sort key for {item[PK]} at {iso(now)}")

    def notices(self, spec_name: str) -> list[dict[str, Any]]:
        """A spec's notices, oldest first."""
        return self.table.partition(f"{NOTICE_PK_PREFIX}{spec_name}")

    def remediations(self, rule: str) -> list[dict[str, Any]]:
        """A rule's remediation decisions, oldest first."""
        return self.table.partition(f"{REMEDIATION_PK_PREFIX}{rule}")
