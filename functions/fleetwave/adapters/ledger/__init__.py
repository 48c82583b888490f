"""The ledger: every rollout, wave, command and invocation, and the locks and records beside them, in one DynamoDB
table. This package alone knows the table's keys and item shapes; the rest of fleetwave reads and writes domain
objects through ``Ledger`` and decodes the table's stream with ``ledger_change``.

Items under ``ROLLOUT#<id>``:
  ``ROLLOUT``                    the rollout: spec, state, per-status counters ``c_<Status>``, budget, pinned document
  ``WAVE#<n>``                   a wave: size, concurrency, state, next chunk, dispatched, counters
  ``SHARD#<n>#<s>``              up to SHARD_SIZE target IDs of wave n (no item grows with the fleet)
  ``SKIPPED#<s>``                up to SHARD_SIZE skipped nodes with their reason
  ``CHUNK#<n>#<c>``              one SendCommand (≤ 50 IDs): intent, command id, open invocations, last news
  ``INV#<commandId>#<instance>`` one invocation: status, details, times (GSI by-instance)
and ``COMMAND#<commandId>`` maps a command to its rollout, so events for other commands are dropped with one read.
Beside them: notices and remediation records (records.py), spec locks, cooldowns and storm counters (locks.py).

One module per aggregate, each with the conditional writes that keep its invariants: rollouts.py (the rollout item
and its lifecycle), plans.py (waves, shards, skipped nodes), dispatch.py (chunks, command lookup), invocations.py
(transitions with exact counters, history), records.py, locks.py; table.py holds what they share.
"""

from __future__ import annotations

from typing import Any

from fleetwave.adapters.ledger.dispatch import Dispatch, forget_placements
from fleetwave.adapters.ledger.invocations import Invocations
from fleetwave.adapters.ledger.locks import Cooldown, Locks, SpecLock
from fleetwave.adapters.ledger.plans import WavePlans, WaveReshapeTooLargeError
from fleetwave.adapters.ledger.records import Records
from fleetwave.adapters.ledger.rollouts import Rollouts
from fleetwave.adapters.ledger.stream import LedgerChange, ledger_change
from fleetwave.adapters.ledger.table import Table

__all__ = [
    "Cooldown",
    "Ledger",
    "LedgerChange",
    "Locks",
    "SpecLock",
    "WaveReshapeTooLargeError",
    "forget_placements",
    "ledger_change",
]


class Ledger:
    """The ledger table through one client, one part per aggregate. Writes raise ConflictError when a conditional
    write loses a race, reads of a missing rollout NotFoundError."""

    def __init__(self, table_name: str, dynamodb: Any) -> None:
        table = Table(table_name, dynamodb)
        self.db = dynamodb  # the client, for what shares the table (notify's idempotency records)
        self.rollouts = Rollouts(table)
        self.plans = WavePlans(table)
        self.dispatch = Dispatch(table)
        self.invocations = Invocations(table)
        self.records = Records(table)
        self.locks = Locks(table)
