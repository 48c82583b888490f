"""Invocations: ``ROLLOUT#<id>`` / ``INV#<commandId>#<instance>``, one per (command, node): status, details, times;
the by-instance GSI gives a node's history.

Invariant 2 (exact counters) holds because an invocation's status and every counter that depends on it (its chunk's
open count, its wave's and its rollout's ``c_<Status>``) change in one TransactWriteItems, conditioned on the status
that was read.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from fleetwave.adapters.ledger.table import (
    ROLLOUT_SK,
    Table,
    chunk_sk,
    counter_update,
    deserialize,
    inv_sk,
    rollout_pk,
    wave_sk,
)
from fleetwave.constants import GSI_BY_INSTANCE, GSI_BY_INSTANCE_PK, MAX_TRANSACTION_ITEMS
from fleetwave.core.status import TERMINAL, InvocationStatus
from fleetwave.core.summary import FailedInvocation
from fleetwave.core.times import iso
from fleetwave.core.tracking import InvocationKey, Transition

# Transitions per transaction: each may touch its invocation and its chunk, plus wave and rollout counters.
_TRANSITIONS_PER_TRANSACTION = (MAX_TRANSACTION_ITEMS - 10) // 2


class Invocations:
    """Invocation items: their statuses, the transitions that change them (with counters), and reads of them."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def statuses(self, keys: Iterable[tuple[str, InvocationKey]]) -> dict[InvocationKey, InvocationStatus]:
        """Recorded status of (rollout_id, (command_id, instance_id)) invocations; unknown ones are absent."""
        ddb_keys = [(rollout_pk(rollout_id), inv_sk(*key)) for rollout_id, key in keys]
        if not ddb_keys:
            return {}
        items = self.table.batch_get(ddb_keys, "command_id, instance_id, #st", {"#st": "status"})
        return {(item["command_id"], item["instance_id"]): InvocationStatus(item["status"]) for item in items}

    def apply_transitions(self, transitions: Sequence[Transition], now: datetime) -> None:
        """Write transitions with their counter deltas: one transaction per rollout per ≤45 transitions."""
        by_rollout: dict[str, list[Transition]] = defaultdict(list)
        for transition in transitions:
            by_rollout[transition.rollout_id].append(transition)
        for rollout_id, group in by_rollout.items():
            for start in range(0, len(group), _TRANSITIONS_PER_TRANSACTION):
                self.table.transact(
                    self._transition_items(rollout_id, group[start : start + _TRANSITIONS_PER_TRANSACTION], now)
                )

    def _transition_items(
        self, rollout_id: str, transitions: Sequence[Transition], now: datetime
    ) -> list[dict[str, Any]]:
        pk = rollout_pk(rollout_id)
        update = self.table.update
        items: list[dict[str, Any]] = []
        closes: Counter[tuple[int, int]] = Counter()
        touched: set[tuple[int, int]] = set()
        wave_deltas: dict[int, Counter[InvocationStatus]] = defaultdict(Counter)
        rollout_deltas: Counter[InvocationStatus] = Counter()
        for t in transitions:
            sets = ["#st = :new", "updated_at = :now"]
            values: dict[str, Any] = {":new": t.new.value, ":now": iso(now), ":old": t.old.value}
            if t.update.status_details:
                sets.append("status_details = :details")
                values[":details"] = t.update.status_details
            if t.update.output_url:
                sets.append("output_url = :url")
                values[":url"] = t.update.output_url
            if t.new.is_terminal:
                sets.append("ended_at = :now")
            expression = "SET " + ", ".join(sets)
            key = inv_sk(t.command_id, t.instance_id)
            items.append(
                {"Update": update(pk, key, expression, condition="#st = :old", names={"#st": "status"}, values=values)}
            )
            touched.add((t.wave, t.chunk))
            if t.closes:
                closes[(t.wave, t.chunk)] += 1
            wave_deltas[t.wave][t.old] -= 1
            wave_deltas[t.wave][t.new] += 1
            rollout_deltas[t.old] -= 1
            rollout_deltas[t.new] += 1
        for wave, chunk in sorted(touched):
            items.append(
                {
                    "Update": update(
                        pk,
                        chunk_sk(wave, chunk),
                        "SET last_news_at = :now ADD #open :d",
                        names={"#open": "open"},
                        values={":now": iso(now), ":d": -closes[(wave, chunk)]},
                    )
                }
            )
        for wave, deltas in sorted(wave_deltas.items()):
            counters = counter_update(deltas)
            if counters:
                items.append({"Update": update(pk, wave_sk(wave), counters[0], names=counters[1], values=counters[2])})
        counters = counter_update(rollout_deltas)
        if counters:
            items.append({"Update": update(pk, ROLLOUT_SK, counters[0], names=counters[1], values=counters[2])})
        return items

    # ------------------------------------------------------------------ reads for summaries and operators
    def of_rollout(self, rollout_id: str) -> Iterator[dict[str, Any]]:
        """Every invocation record of a rollout (as stored: status, instance_id, requested_at, ...)."""
        return self.table.query(rollout_pk(rollout_id), "INV#")

    def failed(self, rollout_id: str) -> list[FailedInvocation]:
        """The rollout's invocations that ended other than Success, by wave and instance."""
        bad = sorted(s.value for s in TERMINAL if s is not InvocationStatus.SUCCESS)
        values = {f":b{i}": {"S": v} for i, v in enumerate(bad)}
        items = self.table.query(
            rollout_pk(rollout_id),
            "INV#",
            FilterExpression="#st IN (" + ", ".join(values) + ")",
            names={"#st": "status"},
            values=values,
        )
        failed = [
            FailedInvocation(
                instance_id=item["instance_id"],
                status=InvocationStatus(item["status"]),
                status_details=str(item.get("status_details", "")),
                wave=int(item["wave"]),
                command_id=item["command_id"],
                output_url=str(item.get("output_url", "")),
            )
            for item in items
        ]
        failed.sort(key=lambda f: (f.wave, f.instance_id))
        return failed

    def history(self, instance_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """A node's invocation records across rollouts, newest first (the by-instance GSI)."""
        response = self.table.db.query(
            TableName=self.table.name,
            IndexName=GSI_BY_INSTANCE,
            KeyConditionExpression="#k = :v",
            ExpressionAttributeNames={"#k": GSI_BY_INSTANCE_PK},
            ExpressionAttributeValues={":v": {"S": instance_id}},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [deserialize(item) for item in response.get("Items", [])]
