"""The rollout item (``ROLLOUT#<id>`` / ``ROLLOUT``): its creation with the plan, reads and queries by GSI, and the
lifecycle updates (start a wave, bake, postpone, finish, halt), each one transaction conditioned on the state read.

The rollout item carries the spec, the state (also as the by-state GSI key), the per-status counters ``c_<Status>``
(changed only together with the invocations they count: see invocations.py), the budget and the pinned document.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from fleetwave.adapters.ledger.plans import plan_items
from fleetwave.adapters.ledger.table import (
    ROLLOUT_SK,
    Table,
    counter_attr,
    counts_from,
    deserialize,
    rollout_pk,
    wave_sk,
)
from fleetwave.constants import GSI_BY_SPEC, GSI_BY_SPEC_PK, GSI_BY_STATE, GSI_BY_STATE_PK, PK, SK
from fleetwave.core.model import Rollout, RolloutState, WaveState
from fleetwave.core.planner import Plan
from fleetwave.core.status import InvocationStatus
from fleetwave.core.times import iso, parse_time
from fleetwave.errors import ConflictError, NotFoundError


def rollout_from_item(item: Mapping[str, Any]) -> Rollout:
    return Rollout(
        rollout_id=item["rollout_id"],
        spec_name=item[GSI_BY_SPEC_PK],
        state=RolloutState(item["state"]),
        current_wave=int(item["current_wave"]),
        wave_count=int(item["wave_count"]),
        target_count=int(item["target_count"]),
        skipped_count=int(item.get("skipped_count", 0)),
        budget_allowed=int(item["budget_allowed"]),
        budget_statuses=frozenset(InvocationStatus(s) for s in item.get("budget_statuses", [])),
        document_name=item["document_name"],
        document_version=item["document_version"],
        document_hash=item.get("document_hash", ""),
        started_at=parse_time(item["started_at"]) or datetime.now(UTC),
        bake_time=int(item.get("bake_time", 0)),
        alarm_gates=tuple(item.get("alarm_gates", [])),
        counts=counts_from(item),
        ended_at=parse_time(item.get("ended_at")),
        reason=str(item.get("reason", "")),
        bake_until=parse_time(item.get("bake_until")),
        trigger=str(item.get("trigger", "")),
        started_by=str(item.get("started_by", "")),
        cancelled_by=str(item.get("cancelled_by", "")),
    )


class Rollouts:
    """Rollout items. Writes raise ConflictError when their condition (the state that was read) no longer holds."""

    def __init__(self, table: Table) -> None:
        self.table = table

    # ------------------------------------------------------------------ create and read
    def create(
        self,
        rollout: Rollout,
        *,
        spec_json: str,
        plan: Plan,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Write the plan (waves, shards, skipped), then the rollout item last: its existence means complete."""
        pk = rollout_pk(rollout.rollout_id)
        self.table.batch_write(plan_items(pk, plan))
        item = {
            PK: pk,
            SK: ROLLOUT_SK,
            "type": "rollout",
            "rollout_id": rollout.rollout_id,
            GSI_BY_SPEC_PK: rollout.spec_name,
            "spec": spec_json,
            "state": rollout.state.value,
            GSI_BY_STATE_PK: rollout.state.value,
            "started_at": iso(rollout.started_at),
            "current_wave": rollout.current_wave,
            "wave_count": rollout.wave_count,
            "target_count": rollout.target_count,
            "skipped_count": rollout.skipped_count,
            "deferred_count": len(plan.deferred),
            "budget_allowed": rollout.budget_allowed,
            "budget_statuses": sorted(s.value for s in rollout.budget_statuses),
            "document_name": rollout.document_name,
            "document_version": rollout.document_version,
            "document_hash": rollout.document_hash,
            "bake_time": rollout.bake_time,
            "alarm_gates": list(rollout.alarm_gates),
            "trigger": rollout.trigger,
            "started_by": rollout.started_by or None,
            "reason": rollout.reason,
            **{counter_attr(status): 0 for status in InvocationStatus},
            **(extra or {}),
        }
        if not self.table.put_if_absent(item):
            raise ConflictError(f"rollout {rollout.rollout_id} already exists")

    def _item(self, rollout_id: str) -> dict[str, Any]:
        item = self.table.get(rollout_pk(rollout_id), ROLLOUT_SK)
        if item is None:
            raise NotFoundError(f"no rollout {rollout_id!r}")
        return item

    def get(self, rollout_id: str) -> Rollout:
        """The rollout; NotFoundError when there is none."""
        return rollout_from_item(self._item(rollout_id))

    def get_with_extras(self, rollout_id: str, names: Sequence[str]) -> tuple[Rollout, dict[str, Any]]:
        """The rollout and the ``extra`` attributes its starter recorded (``create(extra=...)``), None when absent."""
        item = self._item(rollout_id)
        return rollout_from_item(item), {name: item.get(name) for name in names}

    def get_with_spec(self, rollout_id: str) -> tuple[Rollout, str | None]:
        """The rollout and the spec JSON it was started with (None if the item has none), in one read."""
        item = self._item(rollout_id)
        spec = item.get("spec")
        return rollout_from_item(item), None if spec is None else str(spec)

    def spec_json(self, rollout_id: str) -> str:
        """The spec JSON the rollout was started with."""
        return str(self._item(rollout_id)["spec"])

    def find(self, *, state: str | None = None, spec: str | None = None, limit: int = 50) -> list[Rollout]:
        """Rollouts of a spec (optionally in one state), or in one state, or all; newest first, at most ``limit``."""
        if spec:
            index, key_name, key_value = GSI_BY_SPEC, GSI_BY_SPEC_PK, spec
        elif state:
            index, key_name, key_value = GSI_BY_STATE, GSI_BY_STATE_PK, state
        else:
            return sorted(
                (r for s in RolloutState for r in self.find(state=s.value, limit=limit)),
                key=lambda r: r.started_at,
                reverse=True,
            )[:limit]
        kwargs: dict[str, Any] = {
            "TableName": self.table.name,
            "IndexName": index,
            "KeyConditionExpression": "#k = :v",
            "ExpressionAttributeNames": {"#k": key_name},
            "ExpressionAttributeValues": {":v": {"S": key_value}},
            "ScanIndexForward": False,
        }
        rollouts: list[Rollout] = []
        while len(rollouts) < limit:
            response = self.table.db.query(**kwargs)
            for item in response.get("Items", []):
                rollout = rollout_from_item(deserialize(item))
                if state and rollout.state.value != state:
                    continue
                rollouts.append(rollout)
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return rollouts[:limit]

    # ------------------------------------------------------------------ lifecycle
    def _state_update(
        self,
        rollout_id: str,
        *,
        expected: Iterable[RolloutState],
        new_state: RolloutState,
        expected_wave: int | None = None,
        sets: Mapping[str, Any] | None = None,
        removes: Iterable[str] = (),
    ) -> dict[str, Any]:
        expected = list(expected)
        names = {"#state": "state", "#gsi": GSI_BY_STATE_PK}
        values: dict[str, Any] = {":new": new_state.value}
        assignments = ["#state = :new", "#gsi = :new"]
        for index, (name, value) in enumerate((sets or {}).items()):
            names[f"#s{index}"] = name
            values[f":s{index}"] = value
            assignments.append(f"#s{index} = :s{index}")
        conditions = []
        for index, state in enumerate(expected):
            values[f":e{index}"] = state.value
        conditions.append("#state IN (" + ", ".join(f":e{i}" for i in range(len(expected))) + ")")
        if expected_wave is not None:
            names["#cw"] = "current_wave"
            values[":cw"] = expected_wave
            conditions.append("#cw = :cw")
        expression = "SET " + ", ".join(assignments)
        remove_names = []
        for index, name in enumerate(removes):
            names[f"#r{index}"] = name
            remove_names.append(f"#r{index}")
        if remove_names:
            expression += " REMOVE " + ", ".join(remove_names)
        return self.table.update(
            rollout_pk(rollout_id),
            ROLLOUT_SK,
            expression,
            condition=" AND ".join(conditions),
            names=names,
            values=values,
        )

    def _wave_state_update(
        self, rollout_id: str, wave: int, state: WaveState, *, expected: WaveState | None, at: datetime, time_attr: str
    ) -> dict[str, Any]:
        names = {"#state": "state", "#t": time_attr}
        values: dict[str, Any] = {":new": state.value, ":t": iso(at)}
        condition = None
        if expected is not None:
            values[":old"] = expected.value
            condition = "#state = :old"
        return self.table.update(
            rollout_pk(rollout_id),
            wave_sk(wave),
            "SET #state = :new, #t = :t",
            condition=condition,
            names=names,
            values=values,
        )

    def start_wave(self, rollout_id: str, wave: int, now: datetime) -> None:
        """PENDING/BAKING -> RUNNING at wave ``wave``; the wave PENDING -> RUNNING. One transaction."""
        expected = [RolloutState.PENDING] if wave == 0 else [RolloutState.BAKING]
        rollout_update = self._state_update(
            rollout_id,
            expected=expected,
            new_state=RolloutState.RUNNING,
            expected_wave=0 if wave == 0 else wave - 1,
            sets={"current_wave": wave},
            removes=("bake_until",),
        )
        wave_update = self._wave_state_update(
            rollout_id, wave, WaveState.RUNNING, expected=WaveState.PENDING, at=now, time_attr="started_at"
        )
        self.table.transact([{"Update": rollout_update}, {"Update": wave_update}])

    def begin_bake(self, rollout_id: str, completed_wave: int, until: datetime, now: datetime) -> None:
        """RUNNING -> BAKING until ``until``; the completed wave RUNNING -> COMPLETE. One transaction."""
        rollout_update = self._state_update(
            rollout_id,
            expected=[RolloutState.RUNNING],
            new_state=RolloutState.BAKING,
            expected_wave=completed_wave,
            sets={"bake_until": iso(until)},
        )
        wave_update = self._wave_state_update(
            rollout_id, completed_wave, WaveState.COMPLETE, expected=WaveState.RUNNING, at=now, time_attr="completed_at"
        )
        self.table.transact([{"Update": rollout_update}, {"Update": wave_update}])

    def postpone(self, rollout_id: str, wave: int, until: datetime, reason: str) -> None:
        """Still BAKING before wave ``wave``: the next try is at ``until``, for ``reason``."""
        update = self._state_update(
            rollout_id,
            expected=[RolloutState.BAKING],
            new_state=RolloutState.BAKING,
            expected_wave=wave - 1,
            sets={"bake_until": iso(until), "reason": reason},
        )
        self.table.transact([{"Update": update}])

    def finish(self, rollout_id: str, wave: int, state: RolloutState, now: datetime, reason: str = "") -> None:
        """RUNNING at the last wave -> ``state``; that wave RUNNING -> COMPLETE. One transaction."""
        rollout_update = self._state_update(
            rollout_id,
            expected=[RolloutState.RUNNING],
            new_state=state,
            expected_wave=wave,
            sets={"ended_at": iso(now), "reason": reason},
        )
        wave_update = self._wave_state_update(
            rollout_id, wave, WaveState.COMPLETE, expected=WaveState.RUNNING, at=now, time_attr="completed_at"
        )
        self.table.transact([{"Update": rollout_update}, {"Update": wave_update}])

    def halt(
        self, rollout: Rollout, state: RolloutState, reason: str, now: datetime, *, cancelled_by: str = ""
    ) -> None:
        """Active -> HALTED/CANCELLED/FAILED. The running wave (if any) is marked too, in the same transaction.
        ``cancelled_by``: who asked (recorded on the rollout)."""
        sets: dict[str, Any] = {"ended_at": iso(now), "reason": reason}
        if cancelled_by:
            sets["cancelled_by"] = cancelled_by
        rollout_update = self._state_update(
            rollout.rollout_id,
            expected=[RolloutState.PENDING, RolloutState.RUNNING, RolloutState.BAKING],
            new_state=state,
            expected_wave=rollout.current_wave,
            sets=sets,
            removes=("bake_until",),
        )
        items = [{"Update": rollout_update}]
        if rollout.state is RolloutState.RUNNING:
            wave_state = WaveState.CANCELLED if state is RolloutState.CANCELLED else WaveState.HALTED
            items.append(
                {
                    "Update": self._wave_state_update(
                        rollout.rollout_id,
                        rollout.current_wave,
                        wave_state,
                        expected=WaveState.RUNNING,
                        at=now,
                        time_attr="completed_at",
                    )
                }
            )
        self.table.transact(items)
