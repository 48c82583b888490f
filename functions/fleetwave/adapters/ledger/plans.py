"""The wave plan of a rollout, under ``ROLLOUT#<id>``:

  ``WAVE#<n>``          a wave: size, concurrency, state, next chunk, dispatched, counters
  ``SHARD#<n>#<s>``     up to SHARD_SIZE target IDs of wave n (invariant 5: no item grows with the fleet)
  ``SKIPPED#<s>``       up to SHARD_SIZE nodes the plan skipped, with their reason
  ``SKIPPED#W<n>#...``  nodes a wave's start skipped

Written once with the rollout, then reshaped at most once per wave start (nodes deferred to the deferred wave, or
skipped), in one transaction conditioned on the rollout and the waves being as read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fleetwave.adapters.ledger.table import ROLLOUT_SK, Table, counts_from, rollout_pk, shard_sk, wave_sk
from fleetwave.constants import MAX_TRANSACTION_ITEMS, PK, SHARD_SIZE, SK
from fleetwave.core.model import Rollout, SkippedTarget, Wave, WaveState
from fleetwave.core.planner import DEFERRED_WAVE_MARK, Plan, WaveCheck
from fleetwave.core.times import parse_time
from fleetwave.errors import FleetwaveError


class WaveReshapeTooLargeError(FleetwaveError):
    """Deferring or skipping these targets needs more writes than one transaction holds: the wave starts unchanged."""


def wave_from_item(item: Mapping[str, Any]) -> Wave:
    return Wave(
        index=int(item["index"]),
        size=int(item["size"]),
        max_concurrency=int(item["max_concurrency"]),
        state=WaveState(item["state"]),
        next_chunk=int(item.get("next_chunk", 0)),
        dispatched=int(item.get("dispatched", 0)),
        counts=counts_from(item),
        started_at=parse_time(item.get("started_at")),
        completed_at=parse_time(item.get("completed_at")),
    )


def _wave_item(pk: str, index: int, size: int, max_concurrency: int, mark: str) -> dict[str, Any]:
    return {
        PK: pk,
        SK: wave_sk(index),
        "type": "wave",
        "index": index,
        "size": size,
        "max_concurrency": max_concurrency,
        "state": WaveState.PENDING.value,
        "next_chunk": 0,
        "dispatched": 0,
        "mark": mark,
    }


def _shard_item(pk: str, wave: int, shard: int, instance_ids: Sequence[str]) -> dict[str, Any]:
    return {PK: pk, SK: shard_sk(wave, shard), "type": "shard", "instance_ids": list(instance_ids)}


def _skipped_targets(skipped: Sequence[SkippedTarget]) -> list[dict[str, str]]:
    return [{"instance_id": s.instance_id, "reason": s.reason} for s in skipped]


def plan_items(pk: str, plan: Plan) -> list[dict[str, Any]]:
    """The items of a new rollout's plan: each wave, its target shards, and the skipped nodes."""
    items: list[dict[str, Any]] = []
    for wave in plan.waves:
        items.append(_wave_item(pk, wave.index, wave.size, wave.max_concurrency, wave.mark))
        for shard, start in enumerate(range(0, wave.size, SHARD_SIZE)):
            items.append(_shard_item(pk, wave.index, shard, wave.instance_ids[start : start + SHARD_SIZE]))
    for shard, start in enumerate(range(0, len(plan.skipped), SHARD_SIZE)):
        items.append(
            {
                PK: pk,
                SK: f"SKIPPED#{shard:04d}",
                "type": "skipped",
                "targets": _skipped_targets(plan.skipped[start : start + SHARD_SIZE]),
            }
        )
    return items


class WavePlans:
    """Waves, their target shards and the skipped nodes of rollouts."""

    def __init__(self, table: Table) -> None:
        self.table = table

    # ------------------------------------------------------------------ reads
    def wave(self, rollout_id: str, wave: int) -> Wave | None:
        item = self.table.get(rollout_pk(rollout_id), wave_sk(wave))
        return wave_from_item(item) if item else None

    def waves(self, rollout_id: str) -> list[Wave]:
        return [wave_from_item(item) for item in self.table.query(rollout_pk(rollout_id), "WAVE#")]

    def skipped(self, rollout_id: str) -> list[SkippedTarget]:
        skipped: list[SkippedTarget] = []
        for item in self.table.query(rollout_pk(rollout_id), "SKIPPED#"):
            skipped.extend(SkippedTarget(t["instance_id"], t["reason"]) for t in item.get("targets", []))
        return skipped

    def targets(self, rollout_id: str, wave: int, start: int, end: int) -> list[str]:
        """Target IDs at positions [start, end) of a wave, read from the shards that hold them."""
        first, last = start // SHARD_SIZE, (end - 1) // SHARD_SIZE
        keys = [(rollout_pk(rollout_id), shard_sk(wave, shard)) for shard in range(first, last + 1)]
        items = self.table.batch_get(keys, "#sk, instance_ids", {"#sk": SK})
        by_shard = {item[SK]: item["instance_ids"] for item in items}
        ids: list[str] = []
        for shard in range(first, last + 1):
            ids.extend(by_shard.get(shard_sk(wave, shard), []))
        offset = first * SHARD_SIZE
        return ids[start - offset : end - offset]

    def deferred_wave_index(self, rollout_id: str) -> int | None:
        """The index of the rollout's deferred wave (nodes moved there for an active session), if it has one."""
        item = self.table.get(rollout_pk(rollout_id), ROLLOUT_SK, projection="deferred_wave")
        value = (item or {}).get("deferred_wave")
        return None if value is None else int(value)

    # ------------------------------------------------------------------ wave start: deferred and skipped nodes
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
            ids = keep[shard * SHARD_SIZE : (shard + 1) * SHARD_SIZE]
            items.append({"Put": self.table.put(_shard_item(pk, wave.index, shard, ids))})
        for shard in range(max(first_changed // SHARD_SIZE, new_shards), old_shards):
            items.append(
                {"Delete": {"TableName": self.table.name, "Key": self.table.key(pk, shard_sk(wave.index, shard))}}
            )
        items.append({"Update": self._wave_resize(pk, wave.index, old_size=wave.size, new_size=len(keep))})

        deferred_index: int | None = None
        new_wave_count = rollout.wave_count
        if check.deferred:
            if deferred_wave is None:
                deferred_index, old_size, tail = rollout.wave_count, 0, []
                new_wave_count += 1
            else:
                deferred_index, old_size = deferred_wave.index, deferred_wave.size
                tail = self.targets(rollout.rollout_id, deferred_index, old_size - old_size % SHARD_SIZE, old_size)
            moved = tail + list(check.deferred)
            first_shard = old_size // SHARD_SIZE
            for offset, start in enumerate(range(0, len(moved), SHARD_SIZE)):
                ids = moved[start : start + SHARD_SIZE]
                items.append({"Put": self.table.put(_shard_item(pk, deferred_index, first_shard + offset, ids))})
            new_size = old_size + len(check.deferred)
            if deferred_wave is None:
                item = _wave_item(pk, deferred_index, new_size, deferred_concurrency, DEFERRED_WAVE_MARK)
                item["deferred"] = True
                items.append({"Put": self.table.put_new(item)})
            else:
                resize = self._wave_resize(
                    pk, deferred_index, old_size=old_size, new_size=new_size, concurrency=deferred_concurrency
                )
                items.append({"Update": resize})

        for part, start in enumerate(range(0, len(check.skipped), SHARD_SIZE)):
            item = {
                PK: pk,
                # Unique per check: a wave is only checked again after an earlier check shrank it.
                SK: f"SKIPPED#W{wave.index:04d}#{wave.size:06d}#{part:04d}",
                "type": "skipped",
                "wave": wave.index,
                "targets": _skipped_targets(check.skipped[start : start + SHARD_SIZE]),
            }
            items.append({"Put": self.table.put_new(item)})

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
                "Update": self.table.update(
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
        self.table.transact(items)
        return deferred_index

    def _wave_resize(
        self, pk: str, wave: int, *, old_size: int, new_size: int, concurrency: int | None = None
    ) -> dict[str, Any]:
        expression = "SET #size = :new" + (", max_concurrency = :mc" if concurrency is not None else "")
        values: dict[str, Any] = {":new": new_size, ":old": old_size, ":pending": WaveState.PENDING.value}
        if concurrency is not None:
            values[":mc"] = concurrency
        return self.table.update(
            pk,
            wave_sk(wave),
            expression,
            condition="#state = :pending AND #size = :old",
            names={"#size": "size", "#state": "state"},
            values=values,
        )
