"""The ledger: every rollout, wave, command and invocation in one DynamoDB table.

Items under ``ROLLOUT#<id>``:
  ``ROLLOUT``                    the rollout: spec, state, per-status counters ``c_<Status>``, budget, pinned document
  ``WAVE#<n>``                   a wave: size, concurrency, state, next chunk, dispatched, counters
  ``SHARD#<n>#<s>``              up to SHARD_SIZE target IDs of wave n (no item grows with the fleet)
  ``SKIPPED#<s>``                up to SHARD_SIZE skipped nodes with their reason
  ``CHUNK#<n>#<c>``              one SendCommand (≤ 50 IDs): intent, command id, open invocations, last news
  ``INV#<commandId>#<instance>`` one invocation: status, details, times (GSI by-instance)
and ``COMMAND#<commandId>`` maps a command to its rollout, so events for other commands are dropped with one read.

Invariant 2 (exact counters) holds because an invocation's status and every counter that depends on it change in
one TransactWriteItems, conditioned on the status that was read.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from fleetwave.adapters.aws import error_code
from fleetwave.constants import (
    GSI_BY_INSTANCE,
    GSI_BY_INSTANCE_PK,
    GSI_BY_SPEC,
    GSI_BY_SPEC_PK,
    GSI_BY_STATE,
    GSI_BY_STATE_PK,
    ITEM_TYPE_NOTICE,
    ITEM_TYPE_REMEDIATION,
    MAX_TRANSACTION_ITEMS,
    NOTICE_PK_PREFIX,
    NOTICE_TTL_DAYS,
    PK,
    REMEDIATION_PK_PREFIX,
    SHARD_SIZE,
    SK,
    TTL_ATTRIBUTE,
)
from fleetwave.core.model import (
    Chunk,
    ChunkState,
    Rollout,
    RolloutState,
    SkippedTarget,
    Wave,
    WaveState,
    empty_counts,
)
from fleetwave.core.planner import DEFERRED_WAVE_MARK, Plan, WaveCheck
from fleetwave.core.status import TERMINAL, InvocationStatus
from fleetwave.core.summary import FailedInvocation
from fleetwave.core.tracking import InvocationKey, Placement, Transition
from fleetwave.errors import ConflictError, FleetwaveError, NotFoundError

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

ROLLOUT_SK = "ROLLOUT"
COMMAND_SK = "COMMAND"
# Transitions per transaction: each may touch its invocation and its chunk, plus wave and rollout counters.
_TRANSITIONS_PER_TRANSACTION = (MAX_TRANSACTION_ITEMS - 10) // 2
COMMAND_LOOKUP_TTL = timedelta(days=60)


def rollout_pk(rollout_id: str) -> str:
    return f"ROLLOUT#{rollout_id}"


def wave_sk(wave: int) -> str:
    return f"WAVE#{wave:04d}"


def shard_sk(wave: int, shard: int) -> str:
    return f"SHARD#{wave:04d}#{shard:04d}"


def chunk_sk(wave: int, chunk: int) -> str:
    return f"CHUNK#{wave:04d}#{chunk:05d}"


def inv_sk(command_id: str, instance_id: str) -> str:
    return f"INV#{command_id}#{instance_id}"


def command_pk(command_id: str) -> str:
    return f"COMMAND#{command_id}"


def counter_attr(status: InvocationStatus) -> str:
    return f"c_{status.value}"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def sortable_iso(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds always written, so that sort keys sort in time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _ser(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in item.items() if value is not None}


def _de(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


def _counts_from(item: Mapping[str, Any]) -> dict[InvocationStatus, int]:
    counts = empty_counts()
    for status in InvocationStatus:
        counts[status] = int(item.get(counter_attr(status), 0))
    return counts


def _is_condition_failure(error: ClientError) -> bool:
    return error_code(error) in {"ConditionalCheckFailedException", "TransactionCanceledException"}


class Ledger:
    """DynamoDB access for rollouts. Methods raise ConflictError when a conditional write loses a race."""

    def __init__(self, table_name: str, dynamodb: Any) -> None:
        self.table = table_name
        self.db = dynamodb

    # ------------------------------------------------------------------ low level
    def _key(self, pk: str, sk: str) -> dict[str, Any]:
        return {PK: {"S": pk}, SK: {"S": sk}}

    def _get(self, pk: str, sk: str, *, projection: str | None = None) -> dict[str, Any] | None:
        kwargs: dict[str, Any] = {"TableName": self.table, "Key": self._key(pk, sk), "ConsistentRead": True}
        if projection:
            kwargs["ProjectionExpression"] = projection
        response = self.db.get_item(**kwargs)
        item = response.get("Item")
        return _de(item) if item else None

    def _query(self, pk: str, prefix: str, **extra: Any) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {"#pk": PK, "#sk": SK, **extra.pop("names", {})},
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": prefix}, **extra.pop("values", {})},
            "ConsistentRead": True,
            **extra,
        }
        while True:
            response = self.db.query(**kwargs)
            for item in response.get("Items", []):
                yield _de(item)
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _batch_write(self, items: Sequence[Mapping[str, Any]]) -> None:
        for start in range(0, len(items), 25):
            requests: list[dict[str, Any]] = [
                {"PutRequest": {"Item": _ser(item)}} for item in items[start : start + 25]
            ]
            pending: dict[str, Any] = {self.table: requests}
            # UnprocessedItems are part of BatchWriteItem's contract: the caller re-sends them.
            for _ in range(8):
                response = self.db.batch_write_item(RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    break
            if pending:
                raise ConflictError("BatchWriteItem left items unprocessed after 8 attempts")

    def _batch_get(
        self, keys: Sequence[tuple[str, str]], projection: str, names: dict[str, str]
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 100):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [self._key(pk, sk) for pk, sk in unique[start : start + 100]],
                    "ProjectionExpression": projection,
                    "ExpressionAttributeNames": names,
                    "ConsistentRead": True,
                }
            }
            for _ in range(8):
                response = self.db.batch_get_item(RequestItems=request)
                found.extend(_de(item) for item in response.get("Responses", {}).get(self.table, []))
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
        return found

    def _transact(self, items: list[dict[str, Any]]) -> None:
        try:
            self.db.transact_write_items(TransactItems=items)
        except ClientError as error:
            if _is_condition_failure(error):
                raise ConflictError(str(error)) from error
            raise

    def _put_new(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """A transaction Put that fails (cancelling the transaction) if the item already exists."""
        return {
            "TableName": self.table,
            "Item": _ser(item),
            "ConditionExpression": "attribute_not_exists(#pk)",
            "ExpressionAttributeNames": {"#pk": PK},
        }

    def _update(
        self, pk: str, sk: str, expression: str, *, condition: str | None = None, **attrs: Any
    ) -> dict[str, Any]:
        names, values = attrs.pop("names", {}), attrs.pop("values", {})
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Key": self._key(pk, sk),
            "UpdateExpression": expression,
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values:
            kwargs["ExpressionAttributeValues"] = _ser(values)
        if condition:
            kwargs["ConditionExpression"] = condition
        return kwargs

    # ------------------------------------------------------------------ rollouts
    def create_rollout(
        self,
        rollout: Rollout,
        *,
        spec_json: str,
        plan: Plan,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Write the plan (waves, shards, skipped), then the rollout item last: its existence means complete."""
        pk = rollout_pk(rollout.rollout_id)
        items: list[dict[str, Any]] = []
        for wave in plan.waves:
            items.append(
                {
                    PK: pk,
                    SK: wave_sk(wave.index),
                    "type": "wave",
                    "index": wave.index,
                    "size": wave.size,
                    "max_concurrency": wave.max_concurrency,
                    "state": WaveState.PENDING.value,
                    "next_chunk": 0,
                    "dispatched": 0,
                    "mark": wave.mark,
                }
            )
            for shard, start in enumerate(range(0, wave.size, SHARD_SIZE)):
                items.append(
                    {
                        PK: pk,
                        SK: shard_sk(wave.index, shard),
                        "type": "shard",
                        "instance_ids": list(wave.instance_ids[start : start + SHARD_SIZE]),
                    }
                )
        for shard, start in enumerate(range(0, len(plan.skipped), SHARD_SIZE)):
            items.append(
                {
                    PK: pk,
                    SK: f"SKIPPED#{shard:04d}",
                    "type": "skipped",
                    "targets": [
                        {"instance_id": s.instance_id, "reason": s.reason}
                        for s in plan.skipped[start : start + SHARD_SIZE]
                    ],
                }
            )
        self._batch_write(items)
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
            "reason": rollout.reason,
            **{counter_attr(status): 0 for status in InvocationStatus},
            **(extra or {}),
        }
        try:
            self.db.put_item(
                TableName=self.table,
                Item=_ser(item),
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PK},
            )
        except ClientError as error:
            if _is_condition_failure(error):
                raise ConflictError(f"rollout {rollout.rollout_id} already exists") from error
            raise

    def get_rollout_item(self, rollout_id: str) -> dict[str, Any]:
        item = self._get(rollout_pk(rollout_id), ROLLOUT_SK)
        if item is None:
            raise NotFoundError(f"no rollout {rollout_id!r}")
        return item

    def get_rollout(self, rollout_id: str) -> Rollout:
        return rollout_from_item(self.get_rollout_item(rollout_id))

    def get_spec_json(self, rollout_id: str) -> str:
        return str(self.get_rollout_item(rollout_id)["spec"])

    def get_wave(self, rollout_id: str, wave: int) -> Wave | None:
        item = self._get(rollout_pk(rollout_id), wave_sk(wave))
        return wave_from_item(item) if item else None

    def get_waves(self, rollout_id: str) -> list[Wave]:
        return [wave_from_item(item) for item in self._query(rollout_pk(rollout_id), "WAVE#")]

    def get_chunks(self, rollout_id: str, wave: int | None = None, *, with_ids: bool = False) -> list[Chunk]:
        """The chunks (commands) of a wave; their target IDs only when asked for (decisions need counts)."""
        prefix = "CHUNK#" if wave is None else f"CHUNK#{wave:04d}#"
        extra: dict[str, Any] = {}
        if not with_ids:
            extra = {
                "ProjectionExpression": "wave, chunk, #state, max_concurrency, command_id, #open, requested_at, "
                "last_news_at, cancel_requested, #comment",
                "names": {"#state": "state", "#open": "open", "#comment": "comment"},
            }
        return [chunk_from_item(item) for item in self._query(rollout_pk(rollout_id), prefix, **extra)]

    def get_skipped(self, rollout_id: str) -> list[SkippedTarget]:
        skipped: list[SkippedTarget] = []
        for item in self._query(rollout_pk(rollout_id), "SKIPPED#"):
            skipped.extend(SkippedTarget(t["instance_id"], t["reason"]) for t in item.get("targets", []))
        return skipped

    def get_wave_targets(self, rollout_id: str, wave: int, start: int, end: int) -> list[str]:
        """Target IDs at positions [start, end) of a wave, read from the shards that hold them."""
        first, last = start // SHARD_SIZE, (end - 1) // SHARD_SIZE
        keys = [(rollout_pk(rollout_id), shard_sk(wave, shard)) for shard in range(first, last + 1)]
        items = self._batch_get(keys, "#sk, instance_ids", {"#sk": SK})
        by_shard = {item[SK]: item["instance_ids"] for item in items}
        ids: list[str] = []
        for shard in range(first, last + 1):
            ids.extend(by_shard.get(shard_sk(wave, shard), []))
        offset = first * SHARD_SIZE
        return ids[start - offset : end - offset]

    # ------------------------------------------------------------------ state changes
    def _rollout_state_update(
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
        return self._update(
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
        return self._update(
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
        rollout_update = self._rollout_state_update(
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
        self._transact([{"Update": rollout_update}, {"Update": wave_update}])

    def begin_bake(self, rollout_id: str, completed_wave: int, until: datetime, now: datetime) -> None:
        rollout_update = self._rollout_state_update(
            rollout_id,
            expected=[RolloutState.RUNNING],
            new_state=RolloutState.BAKING,
            expected_wave=completed_wave,
            sets={"bake_until": iso(until)},
        )
        wave_update = self._wave_state_update(
            rollout_id, completed_wave, WaveState.COMPLETE, expected=WaveState.RUNNING, at=now, time_attr="completed_at"
        )
        self._transact([{"Update": rollout_update}, {"Update": wave_update}])

    def postpone(self, rollout_id: str, wave: int, until: datetime, reason: str) -> None:
        update = self._rollout_state_update(
            rollout_id,
            expected=[RolloutState.BAKING],
            new_state=RolloutState.BAKING,
            expected_wave=wave - 1,
            sets={"bake_until": iso(until), "reason": reason},
        )
        self._transact([{"Update": update}])

    def finish(self, rollout_id: str, wave: int, state: RolloutState, now: datetime, reason: str = "") -> None:
        rollout_update = self._rollout_state_update(
            rollout_id,
            expected=[RolloutState.RUNNING],
            new_state=state,
            expected_wave=wave,
            sets={"ended_at": iso(now), "reason": reason},
        )
        wave_update = self._wave_state_update(
            rollout_id, wave, WaveState.COMPLETE, expected=WaveState.RUNNING, at=now, time_attr="completed_at"
        )
        self._transact([{"Update": rollout_update}, {"Update": wave_update}])

    def halt(self, rollout: Rollout, state: RolloutState, reason: str, now: datetime) -> None:
        """Active -> HALTED/CANCELLED/FAILED. The running wave (if any) is marked too, in the same transaction."""
        rollout_update = self._rollout_state_update(
            rollout.rollout_id,
            expected=[RolloutState.PENDING, RolloutState.RUNNING, RolloutState.BAKING],
            new_state=state,
            expected_wave=rollout.current_wave,
            sets={"ended_at": iso(now), "reason": reason},
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
        self._transact(items)

    # ------------------------------------------------------------------ dispatch
    def claim_chunk(self, rollout: Rollout, wave: int, chunk: Chunk, comment: str, now: datetime) -> None:
        """Record the intent to send a chunk (invariant 1) and advance the wave's cursor, atomically."""
        pk = rollout_pk(rollout.rollout_id)
        wave_update = self._update(
            pk,
            wave_sk(wave),
            "SET next_chunk = :next",
            condition="next_chunk = :k AND #state = :running",
            names={"#state": "state"},
            values={":next": chunk.index + 1, ":k": chunk.index, ":running": WaveState.RUNNING.value},
        )
        rollout_check = {
            "TableName": self.table,
            "Key": self._key(pk, ROLLOUT_SK),
            "ConditionExpression": "#state = :running AND current_wave = :w",
            "ExpressionAttributeNames": {"#state": "state"},
            "ExpressionAttributeValues": _ser({":running": RolloutState.RUNNING.value, ":w": wave}),
        }
        item = {
            PK: pk,
            SK: chunk_sk(wave, chunk.index),
            "type": "chunk",
            "wave": wave,
            "chunk": chunk.index,
            "instance_ids": list(chunk.instance_ids),
            "state": ChunkState.INTENT.value,
            "max_concurrency": chunk.max_concurrency,
            "comment": comment,
            "requested_at": iso(now),
            "open": 0,
        }
        self._transact([{"Update": wave_update}, {"ConditionCheck": rollout_check}, {"Put": self._put_new(item)}])

    def record_sent(self, rollout: Rollout, chunk: Chunk, command_id: str, now: datetime) -> None:
        """SendCommand returned (or ListCommands found the command): record it, its invocations and counters."""
        pk = rollout_pk(rollout.rollout_id)
        count = len(chunk.instance_ids)
        pending = counter_attr(InvocationStatus.PENDING)
        items: list[dict[str, Any]] = [
            {
                "Update": self._update(
                    pk,
                    chunk_sk(chunk.wave, chunk.index),
                    "SET #state = :sent, command_id = :cmd, last_news_at = :now, #open = :n",
                    condition="#state = :intent",
                    names={"#state": "state", "#open": "open"},
                    values={
                        ":sent": ChunkState.SENT.value,
                        ":cmd": command_id,
                        ":now": iso(now),
                        ":n": count,
                        ":intent": ChunkState.INTENT.value,
                    },
                )
            },
            {
                "Put": {
                    "TableName": self.table,
                    "Item": _ser(
                        {
                            PK: command_pk(command_id),
                            SK: COMMAND_SK,
                            "rollout_id": rollout.rollout_id,
                            "wave": chunk.wave,
                            "chunk": chunk.index,
                            TTL_ATTRIBUTE: int((now + COMMAND_LOOKUP_TTL).timestamp()),
                        }
                    ),
                }
            },
            {
                "Update": self._update(
                    pk, wave_sk(chunk.wave), "ADD dispatched :n, #p :n", names={"#p": pending}, values={":n": count}
                )
            },
            {"Update": self._update(pk, ROLLOUT_SK, "ADD #p :n", names={"#p": pending}, values={":n": count})},
        ]
        for instance_id in chunk.instance_ids:
            items.append(
                {
                    "Put": self._put_new(
                        {
                            PK: pk,
                            SK: inv_sk(command_id, instance_id),
                            "type": "invocation",
                            "rollout_id": rollout.rollout_id,
                            "spec_name": rollout.spec_name,
                            "command_id": command_id,
                            GSI_BY_INSTANCE_PK: instance_id,
                            "requested_at": iso(now),
                            "updated_at": iso(now),
                            "wave": chunk.wave,
                            "chunk": chunk.index,
                            "status": InvocationStatus.PENDING.value,
                        }
                    )
                }
            )
        self._transact(items)

    def mark_cancel_requested(self, rollout_id: str, chunks: Iterable[Chunk]) -> None:
        for chunk in chunks:
            self.db.update_item(
                **self._update(
                    rollout_pk(rollout_id),
                    chunk_sk(chunk.wave, chunk.index),
                    "SET cancel_requested = :t",
                    values={":t": True},
                )
            )

    # ------------------------------------------------------------------ tracking
    def lookup_commands(self, command_ids: Iterable[str]) -> dict[str, Placement]:
        """Which rollout each command belongs to. A placement never changes, so warm functions remember it."""
        wanted = set(command_ids)
        found = {command_id: _PLACEMENTS[command_id] for command_id in wanted if command_id in _PLACEMENTS}
        keys = [(command_pk(command_id), COMMAND_SK) for command_id in wanted - found.keys()]
        if keys:
            for item in self._batch_get(keys, "#pk, rollout_id, wave, chunk", {"#pk": PK}):
                placement = Placement(item["rollout_id"], int(item["wave"]), int(item["chunk"]))
                found[item[PK].removeprefix("COMMAND#")] = placement
                _remember(item[PK].removeprefix("COMMAND#"), placement)
        return found

    def invocation_statuses(self, keys: Iterable[tuple[str, InvocationKey]]) -> dict[InvocationKey, InvocationStatus]:
        """Recorded status of (rollout_id, (command_id, instance_id)) invocations; unknown ones are absent."""
        ddb_keys = [(rollout_pk(rollout_id), inv_sk(*key)) for rollout_id, key in keys]
        if not ddb_keys:
            return {}
        items = self._batch_get(ddb_keys, "command_id, instance_id, #st", {"#st": "status"})
        return {(item["command_id"], item["instance_id"]): InvocationStatus(item["status"]) for item in items}

    def apply_transitions(self, transitions: Sequence[Transition], now: datetime) -> None:
        """Write transitions with their counter deltas: one transaction per rollout per ≤45 transitions."""
        by_rollout: dict[str, list[Transition]] = defaultdict(list)
        for transition in transitions:
            by_rollout[transition.rollout_id].append(transition)
        for rollout_id, group in by_rollout.items():
            for start in range(0, len(group), _TRANSITIONS_PER_TRANSACTION):
                self._transact(
                    self._transition_items(rollout_id, group[start : start + _TRANSITIONS_PER_TRANSACTION], now)
                )

    def _transition_items(
        self, rollout_id: str, transitions: Sequence[Transition], now: datetime
    ) -> list[dict[str, Any]]:
        pk = rollout_pk(rollout_id)
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
            items.append(
                {
                    "Update": self._update(
                        pk,
                        inv_sk(t.command_id, t.instance_id),
                        "SET " + ", ".join(sets),
                        condition="#st = :old",
                        names={"#st": "status"},
                        values=values,
                    )
                }
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
                    "Update": self._update(
                        pk,
                        chunk_sk(wave, chunk),
                        "SET last_news_at = :now ADD #open :d",
                        names={"#open": "open"},
                        values={":now": iso(now), ":d": -closes[(wave, chunk)]},
                    )
                }
            )
        for wave, deltas in sorted(wave_deltas.items()):
            update = _counter_update(deltas)
            if update:
                items.append({"Update": self._update(pk, wave_sk(wave), update[0], names=update[1], values=update[2])})
        update = _counter_update(rollout_deltas)
        if update:
            items.append({"Update": self._update(pk, ROLLOUT_SK, update[0], names=update[1], values=update[2])})
        return items

    def touch_chunk(self, rollout_id: str, chunk: Chunk, now: datetime) -> None:
        """A poll found nothing new: note it so the reconciler waits before asking again."""
        self.db.update_item(
            **self._update(
                rollout_pk(rollout_id),
                chunk_sk(chunk.wave, chunk.index),
                "SET last_news_at = :now",
                values={":now": iso(now)},
            )
        )

    # ------------------------------------------------------------------ reads for summaries and operators
    def invocations(self, rollout_id: str) -> Iterator[dict[str, Any]]:
        return self._query(rollout_pk(rollout_id), "INV#")

    def failed_invocations(self, rollout_id: str) -> list[FailedInvocation]:
        bad = sorted(s.value for s in TERMINAL if s is not InvocationStatus.SUCCESS)
        values = {f":b{i}": {"S": v} for i, v in enumerate(bad)}
        items = self._query(
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

    def list_rollouts(self, *, state: str | None = None, spec: str | None = None, limit: int = 50) -> list[Rollout]:
        if spec:
            index, key_name, key_value = GSI_BY_SPEC, GSI_BY_SPEC_PK, spec
        elif state:
            index, key_name, key_value = GSI_BY_STATE, GSI_BY_STATE_PK, state
        else:
            return sorted(
                (r for s in RolloutState for r in self.list_rollouts(state=s.value, limit=limit)),
                key=lambda r: r.started_at,
                reverse=True,
            )[:limit]
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": index,
            "KeyConditionExpression": "#k = :v",
            "ExpressionAttributeNames": {"#k": key_name},
            "ExpressionAttributeValues": {":v": {"S": key_value}},
            "ScanIndexForward": False,
        }
        rollouts: list[Rollout] = []
        while len(rollouts) < limit:
            response = self.db.query(**kwargs)
            for item in response.get("Items", []):
                rollout = rollout_from_item(_de(item))
                if state and rollout.state.value != state:
                    continue
                rollouts.append(rollout)
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return rollouts[:limit]

    def instance_history(self, instance_id: str, limit: int = 100) -> list[dict[str, Any]]:
        response = self.db.query(
            TableName=self.table,
            IndexName=GSI_BY_INSTANCE,
            KeyConditionExpression="#k = :v",
            ExpressionAttributeNames={"#k": GSI_BY_INSTANCE_PK},
            ExpressionAttributeValues={":v": {"S": instance_id}},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [_de(item) for item in response.get("Items", [])]

    # ------------------------------------------------------------------ wave start: deferred and skipped nodes
    def deferred_wave_index(self, rollout_id: str) -> int | None:
        """The index of the rollout's deferred wave (nodes moved there for an active session), if it has one."""
        item = self._get(rollout_pk(rollout_id), ROLLOUT_SK, projection="deferred_wave")
        value = (item or {}).get("deferred_wave")
        return None if value is None else int(value)

    def reshape_wave(
        self,
        rollout: Rollout,
        wave: Wave,
        targets: Sequence[str],
        check: WaveCheck,
        *,
        deferred_wave: Wave | None,
        deferred_concurrency: int,
    ) -> int | None:
        """Before wave ``wave`` starts: keep ``check.keep`` in it, move ``check.deferred`` to the end of the deferred
        wave (created as the last wave if needed), record ``check.skipped``. One transaction, conditioned on the
        rollout and both waves being as read, so a racing or repeated wave start cannot apply it twice.

        Only shards from the first changed position on are rewritten. Returns the deferred wave's index, if any.
        """
        pk = rollout_pk(rollout.rollout_id)
        keep = list(check.keep)
        items: list[dict[str, Any]] = []
        first_changed = next(
            (i for i, instance_id in enumerate(targets) if i >= len(keep) or keep[i] != instance_id), len(targets)
        )
        old_shards = -(-wave.size // SHARD_SIZE)
        new_shards = -(-len(keep) // SHARD_SIZE)
        for shard in range(first_changed // SHARD_SIZE, new_shards):
            items.append(
                {"Put": self._shard_put(pk, wave.index, shard, keep[shard * SHARD_SIZE : (shard + 1) * SHARD_SIZE])}
            )
        for shard in range(max(first_changed // SHARD_SIZE, new_shards), old_shards):
            items.append({"Delete": {"TableName": self.table, "Key": self._key(pk, shard_sk(wave.index, shard))}})
        items.append({"Update": self._wave_resize(pk, wave.index, old_size=wave.size, new_size=len(keep))})

        deferred_index: int | None = None
        new_wave_count = rollout.wave_count
        if check.deferred:
            if deferred_wave is None:
                deferred_index, old_size, tail = rollout.wave_count, 0, []
                new_wave_count += 1
            else:
                deferred_index, old_size = deferred_wave.index, deferred_wave.size
                tail = self.get_wave_targets(
                    rollout.rollout_id, deferred_index, old_size - old_size % SHARD_SIZE, old_size
                )
            moved = tail + list(check.deferred)
            first_shard = old_size // SHARD_SIZE
            for offset, start in enumerate(range(0, len(moved), SHARD_SIZE)):
                ids = moved[start : start + SHARD_SIZE]
                items.append({"Put": self._shard_put(pk, deferred_index, first_shard + offset, ids)})
            new_size = old_size + len(check.deferred)
            if deferred_wave is None:
                item = {
                    PK: pk,
                    SK: wave_sk(deferred_index),
                    "type": "wave",
                    "index": deferred_index,
                    "size": new_size,
                    "max_concurrency": deferred_concurrency,
                    "state": WaveState.PENDING.value,
                    "next_chunk": 0,
                    "dispatched": 0,
                    "mark": DEFERRED_WAVE_MARK,
                    "deferred": True,
                }
                items.append({"Put": self._put_new(item)})
            else:
                items.append(
                    {
                        "Update": self._wave_resize(
                            pk, deferred_index, old_size=old_size, new_size=new_size, concurrency=deferred_concurrency
                        )
                    }
                )

        for part, start in enumerate(range(0, len(check.skipped), SHARD_SIZE)):
            item = {
                PK: pk,
                # Unique per check: a wave is only checked again after an earlier check shrank it.
                SK: f"SKIPPED#W{wave.index:04d}#{wave.size:06d}#{part:04d}",
                "type": "skipped",
                "wave": wave.index,
                "targets": [
                    {"instance_id": s.instance_id, "reason": s.reason}
                    for s in check.skipped[start : start + SHARD_SIZE]
                ],
            }
            items.append({"Put": self._put_new(item)})

        sets = ["wave_count = :wc"]
        values: dict[str, Any] = {
            ":wc": new_wave_count,
            ":old_wc": rollout.wave_count,
            ":state": rollout.state.value,
            ":cw": rollout.current_wave,
            ":minus": -len(check.skipped),
            ":plus": len(check.skipped),
        }
        if deferred_index is not None:
            sets.append("deferred_wave = :dw")
            values[":dw"] = deferred_index
        items.append(
            {
                "Update": self._update(
                    pk,
                    ROLLOUT_SK,
                    "SET " + ", ".join(sets) + " ADD target_count :minus, skipped_count :plus",
                    condition="#state = :state AND current_wave = :cw AND wave_count = :old_wc",
                    names={"#state": "state"},
                    values=values,
                )
            }
        )
        if len(items) > MAX_TRANSACTION_ITEMS:
            raise WaveReshapeTooLargeError(
                f"moving {len(check.deferred)} and skipping {len(check.skipped)} targets of wave {wave.index} "
                f"takes {len(items)} writes; one transaction holds {MAX_TRANSACTION_ITEMS}"
            )
        self._transact(items)
        return deferred_index

    def _shard_put(self, pk: str, wave: int, shard: int, instance_ids: Sequence[str]) -> dict[str, Any]:
        item = {PK: pk, SK: shard_sk(wave, shard), "type": "shard", "instance_ids": list(instance_ids)}
        return {"TableName": self.table, "Item": _ser(item)}

    def _wave_resize(
        self, pk: str, wave: int, *, old_size: int, new_size: int, concurrency: int | None = None
    ) -> dict[str, Any]:
        expression = "SET #size = :new" + (", max_concurrency = :mc" if concurrency is not None else "")
        values: dict[str, Any] = {":new": new_size, ":old": old_size, ":pending": WaveState.PENDING.value}
        if concurrency is not None:
            values[":mc"] = concurrency
        return self._update(
            pk,
            wave_sk(wave),
            expression,
            condition="#state = :pending AND #size = :old",
            names={"#size": "size", "#state": "state"},
            values=values,
        )

    # ------------------------------------------------------------------ notices and remediation decisions
    def put_notice(
        self, spec_name: str, kind: str, reason: str, now: datetime, extra: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """A "notify instead" record (e.g. a start skipped): notify turns items of type notice into messages."""
        item = {
            PK: f"{NOTICE_PK_PREFIX}{spec_name}",
            "type": ITEM_TYPE_NOTICE,
            "kind": kind,
            "spec_name": spec_name,
            "reason": reason,
            TTL_ATTRIBUTE: int((now + timedelta(days=NOTICE_TTL_DAYS)).timestamp()),
            **(extra or {}),
        }
        return self._put_at(item, now, "")

    def put_remediation_record(
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
    ) -> dict[str, Any]:
        """One remediation decision (started, skipped, verification_failed); notify publishes it."""
        item = {
            PK: f"{REMEDIATION_PK_PREFIX}{rule}",
            "type": ITEM_TYPE_REMEDIATION,
            "outcome": outcome,
            "reason": reason,
            "rule": rule,
            "alarm_name": alarm_name,
            "instance_id": instance_id,
            "rollout_id": rollout_id,
            TTL_ATTRIBUTE: int((now + timedelta(days=NOTICE_TTL_DAYS)).timestamp()),
            **(extra or {}),
        }
        return self._put_at(item, now, f"#{instance_id}")

    def _put_at(self, item: dict[str, Any], now: datetime, suffix: str) -> dict[str, Any]:
        """Put ``item`` with sort key ``<iso time><suffix>``; two records in one instant (the same microsecond)
        do not overwrite each other: the later one moves on by a microsecond."""
        for step in range(10):
            item[SK] = f"{sortable_iso(now + timedelta(microseconds=step))}{suffix}"
            try:
                self.db.put_item(
                    TableName=self.table,
                    Item=_ser(item),
                    ConditionExpression="attribute_not_exists(#pk)",
                    ExpressionAttributeNames={"#pk": PK},
                )
                return item
            except ClientError as error:
                if not _is_condition_failure(error):
                    raise
        raise ConflictError(f"no free sort key for {item[PK]} at {iso(now)}")

    def notices(self, spec_name: str) -> list[dict[str, Any]]:
        """A spec's notices, oldest first."""
        return self._partition(f"{NOTICE_PK_PREFIX}{spec_name}")

    def remediation_records(self, rule: str) -> list[dict[str, Any]]:
        """A rule's remediation decisions, oldest first."""
        return self._partition(f"{REMEDIATION_PK_PREFIX}{rule}")

    def _partition(self, pk: str) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": PK},
            "ExpressionAttributeValues": {":pk": {"S": pk}},
        }
        items: list[dict[str, Any]] = []
        while True:
            response = self.db.query(**kwargs)
            items.extend(_de(item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


class WaveReshapeTooLargeError(FleetwaveError):
    """Deferring or skipping these targets needs more writes than one transaction holds: the wave starts unchanged."""


_PLACEMENTS: dict[str, Placement] = {}
_PLACEMENT_CACHE_SIZE = 20_000


def forget_placements() -> None:
    """Drop remembered command placements (a test or the twin starting over with a new account)."""
    _PLACEMENTS.clear()


def _remember(command_id: str, placement: Placement) -> None:
    if len(_PLACEMENTS) >= _PLACEMENT_CACHE_SIZE:
        _PLACEMENTS.pop(next(iter(_PLACEMENTS)))
    _PLACEMENTS[command_id] = placement


def _counter_update(deltas: Mapping[InvocationStatus, int]) -> tuple[str, dict[str, str], dict[str, Any]] | None:
    parts, names, values = [], {}, {}
    for index, (status, delta) in enumerate(sorted(deltas.items())):
        if not delta:
            continue
        names[f"#c{index}"] = counter_attr(status)
        values[f":c{index}"] = delta
        parts.append(f"#c{index} :c{index}")
    if not parts:
        return None
    return "ADD " + ", ".join(parts), names, values


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
        counts=_counts_from(item),
        ended_at=parse_time(item.get("ended_at")),
        reason=str(item.get("reason", "")),
        bake_until=parse_time(item.get("bake_until")),
        trigger=str(item.get("trigger", "")),
    )


def wave_from_item(item: Mapping[str, Any]) -> Wave:
    return Wave(
        index=int(item["index"]),
        size=int(item["size"]),
        max_concurrency=int(item["max_concurrency"]),
        state=WaveState(item["state"]),
        next_chunk=int(item.get("next_chunk", 0)),
        dispatched=int(item.get("dispatched", 0)),
        counts=_counts_from(item),
        started_at=parse_time(item.get("started_at")),
        completed_at=parse_time(item.get("completed_at")),
    )


def chunk_from_item(item: Mapping[str, Any]) -> Chunk:
    return Chunk(
        wave=int(item["wave"]),
        index=int(item["chunk"]),
        instance_ids=tuple(item.get("instance_ids", [])),
        state=ChunkState(item["state"]),
        max_concurrency=int(item["max_concurrency"]),
        command_id=item.get("command_id"),
        open=int(item.get("open", 0)),
        requested_at=parse_time(item.get("requested_at")),
        last_news_at=parse_time(item.get("last_news_at")),
        cancel_requested=bool(item.get("cancel_requested", False)),
        comment=str(item.get("comment", "")),
    )
