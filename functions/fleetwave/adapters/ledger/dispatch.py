"""Dispatch: the chunks (one SendCommand of at most 50 targets each) and the command lookup.

  ``ROLLOUT#<id>`` / ``CHUNK#<n>#<c>``    a chunk: its intent, then its command id, open invocations and last news
  ``COMMAND#<commandId>`` / ``COMMAND``   which rollout, wave and chunk a command belongs to (TTL)

Invariant 1 (dispatch at most once per target): the intent to send a chunk is recorded, with the wave's cursor
moved past it, before SendCommand; ``record_sent`` then records the command and its invocations in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from fleetwave.adapters.ledger.table import (
    COMMAND_SK,
    ROLLOUT_SK,
    Table,
    chunk_sk,
    command_pk,
    counter_attr,
    inv_sk,
    rollout_pk,
    serialize,
    wave_sk,
)
from fleetwave.constants import GSI_BY_INSTANCE_PK, PK, SK, TTL_ATTRIBUTE
from fleetwave.core.model import Chunk, ChunkState, Rollout, RolloutState, WaveState
from fleetwave.core.status import InvocationStatus
from fleetwave.core.times import iso, parse_time
from fleetwave.core.tracking import Placement

COMMAND_LOOKUP_TTL = timedelta(days=60)

_PLACEMENTS: dict[str, Placement] = {}
_PLACEMENT_CACHE_SIZE = 20_000


def forget_placements() -> None:
    """Drop remembered command placements (a test or the twin starting over with a new account)."""
    _PLACEMENTS.clear()


def _remember(command_id: str, placement: Placement) -> None:
    if len(_PLACEMENTS) >= _PLACEMENT_CACHE_SIZE:
        _PLACEMENTS.pop(next(iter(_PLACEMENTS)))
    _PLACEMENTS[command_id] = placement


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


class Dispatch:
    """Chunk items and command placements. Writes raise ConflictError when their condition no longer holds."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def chunks(self, rollout_id: str, wave: int | None = None, *, with_ids: bool = False) -> list[Chunk]:
        """The chunks (commands) of a wave; their target IDs only when asked for (decisions need counts)."""
        prefix = "CHUNK#" if wave is None else f"CHUNK#{wave:04d}#"
        extra: dict[str, Any] = {}
        if not with_ids:
            extra = {
                "ProjectionExpression": "wave, chunk, #state, max_concurrency, command_id, #open, requested_at, "
                "last_news_at, cancel_requested, #comment",
                "names": {"#state": "state", "#open": "open", "#comment": "comment"},
            }
        return [chunk_from_item(item) for item in self.table.query(rollout_pk(rollout_id), prefix, **extra)]

    def claim_chunk(self, rollout: Rollout, wave: int, chunk: Chunk, comment: str, now: datetime) -> None:
        """Record the intent to send a chunk (invariant 1) and advance the wave's cursor, atomically."""
        pk = rollout_pk(rollout.rollout_id)
        wave_update = self.table.update(
            pk,
            wave_sk(wave),
            "SET next_chunk = :next",
            condition="next_chunk = :k AND #state = :running",
            names={"#state": "state"},
            values={":next": chunk.index + 1, ":k": chunk.index, ":running": WaveState.RUNNING.value},
        )
        rollout_check = {
            "TableName": self.table.name,
            "Key": self.table.key(pk, ROLLOUT_SK),
            "ConditionExpression": "#state = :running AND current_wave = :w",
            "ExpressionAttributeNames": {"#state": "state"},
            "ExpressionAttributeValues": serialize({":running": RolloutState.RUNNING.value, ":w": wave}),
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
        self.table.transact(
            [{"Update": wave_update}, {"ConditionCheck": rollout_check}, {"Put": self.table.put_new(item)}]
        )

    def record_sent(self, rollout: Rollout, chunk: Chunk, command_id: str, now: datetime) -> None:
        """SendCommand returned (or ListCommands found the command): record it, its invocations and counters."""
        pk = rollout_pk(rollout.rollout_id)
        count = len(chunk.instance_ids)
        pending = counter_attr(InvocationStatus.PENDING)
        update = self.table.update
        items: list[dict[str, Any]] = [
            {
                "Update": update(
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
                "Put": self.table.put(
                    {
                        PK: command_pk(command_id),
                        SK: COMMAND_SK,
                        "rollout_id": rollout.rollout_id,
                        "wave": chunk.wave,
                        "chunk": chunk.index,
                        TTL_ATTRIBUTE: int((now + COMMAND_LOOKUP_TTL).timestamp()),
                    }
                )
            },
            {
                "Update": update(
                    pk, wave_sk(chunk.wave), "ADD dispatched :n, #p :n", names={"#p": pending}, values={":n": count}
                )
            },
            {"Update": update(pk, ROLLOUT_SK, "ADD #p :n", names={"#p": pending}, values={":n": count})},
        ]
        for instance_id in chunk.instance_ids:
            item = {
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
            items.append({"Put": self.table.put_new(item)})
        self.table.transact(items)

    def mark_cancel_requested(self, rollout_id: str, chunks: Iterable[Chunk]) -> None:
        for chunk in chunks:
            self.table.db.update_item(
                **self.table.update(
                    rollout_pk(rollout_id),
                    chunk_sk(chunk.wave, chunk.index),
                    "SET cancel_requested = :t",
                    values={":t": True},
                )
            )

    def touch_chunk(self, rollout_id: str, chunk: Chunk, now: datetime) -> None:
        """A poll found nothing new: note it so the reconciler waits before asking again."""
        self.table.db.update_item(
            **self.table.update(
                rollout_pk(rollout_id),
                chunk_sk(chunk.wave, chunk.index),
                "SET last_news_at = :now",
                values={":now": iso(now)},
            )
        )

    def lookup_commands(self, command_ids: Iterable[str]) -> dict[str, Placement]:
        """Which rollout each command belongs to. A placement never changes, so warm functions remember it."""
        wanted = set(command_ids)
        found = {command_id: _PLACEMENTS[command_id] for command_id in wanted if command_id in _PLACEMENTS}
        keys = [(command_pk(command_id), COMMAND_SK) for command_id in wanted - found.keys()]
        if keys:
            for item in self.table.batch_get(keys, "#pk, rollout_id, wave, chunk", {"#pk": PK}):
                placement = Placement(item["rollout_id"], int(item["wave"]), int(item["chunk"]))
                found[item[PK].removeprefix(command_pk(""))] = placement
                _remember(item[PK].removeprefix(command_pk("")), placement)
        return found
