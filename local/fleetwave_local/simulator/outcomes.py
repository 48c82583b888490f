"""Seeded agent outcomes: what each node will do with the invocations it receives, drawn before anything runs.

The failure mode of node X is drawn from `Random(f"{seed}:{X}:outcome")`, so the same seed gives every node the same
fate whatever the order of calls. Draw order: undeliverable, delivery timeout, fail, execution timeout (cumulative
rates), else success; `slow` (5-10x the runtime) and `offline` are drawn independently. The k-th invocation on a
node draws its runtime from `Random(f"{seed}:{X}:run:{k}")`, and whether it races a cancel from
`Random(f"{seed}:{X}:cancel:{k}")`.
"""

from __future__ import annotations

import random

from .model import OUTCOME_KINDS, OutcomeKind, Plan


class AgentOutcomes:
    """The seed and the failure rates of a simulated fleet, and the per-node overrides a test sets."""

    def __init__(
        self,
        *,
        seed: int | str = 0,
        fail_rate: float = 0.0,
        execution_timeout_rate: float = 0.0,
        delivery_timeout_rate: float = 0.0,
        undeliverable_rate: float = 0.0,
        slow_rate: float = 0.0,
        offline_rate: float = 0.0,
        cancel_race_rate: float = 0.2,
        run_seconds: tuple[int, int] = (30, 120),
    ) -> None:
        outcome_total = fail_rate + execution_timeout_rate + delivery_timeout_rate + undeliverable_rate
        if outcome_total > 1.0:
            raise ValueError("fail/execution_timeout/delivery_timeout/undeliverable rates add up to more than 1")
        if run_seconds[0] < 1 or run_seconds[1] < run_seconds[0]:
            raise ValueError("run_seconds must be (low, high) with 1 <= low <= high")
        self.seed = seed
        self.fail_rate = fail_rate
        self.execution_timeout_rate = execution_timeout_rate
        self.delivery_timeout_rate = delivery_timeout_rate
        self.undeliverable_rate = undeliverable_rate
        self.slow_rate = slow_rate
        self.offline_rate = offline_rate
        self.cancel_race_rate = cancel_race_rate
        self.run_seconds = run_seconds
        self._overrides: dict[str, OutcomeKind] = {}

    def offline(self, instance_id: str) -> bool:
        """Whether a new node starts with its agent ConnectionLost (drawn once per node)."""
        return random.Random(f"{self.seed}:{instance_id}:offline").random() < self.offline_rate

    def planned(self, instance_id: str) -> OutcomeKind:
        """The failure mode `instance_id` will show (an override from `override` wins)."""
        if instance_id in self._overrides:
            return self._overrides[instance_id]
        draw = random.Random(f"{self.seed}:{instance_id}:outcome").random()
        threshold = 0.0
        rates: tuple[tuple[OutcomeKind, float], ...] = (
            ("undeliverable", self.undeliverable_rate),
            ("delivery_timeout", self.delivery_timeout_rate),
            ("fail", self.fail_rate),
            ("execution_timeout", self.execution_timeout_rate),
        )
        for kind, rate in rates:
            threshold += rate
            if draw < threshold:
                return kind
        return "success"

    def override(self, instance_id: str, outcome: OutcomeKind | None) -> None:
        """Force the outcome of invocations sent to `instance_id` from now on (None: back to the seeded draw)."""
        if outcome is None:
            self._overrides.pop(instance_id, None)
            return
        if outcome not in OUTCOME_KINDS:
            raise ValueError(f"outcome must be one of {OUTCOME_KINDS}")
        self._overrides[instance_id] = outcome

    def plan(self, instance_id: str, attempt: int) -> Plan:
        """What the node does with its `attempt`-th invocation (0-based): outcome, runtime, cancel race."""
        kind = self.planned(instance_id)
        rng = random.Random(f"{self.seed}:{instance_id}:run:{attempt}")
        runtime = rng.randint(*self.run_seconds)
        if instance_id in self._overrides:
            slow = kind == "slow"
        else:
            slow = random.Random(f"{self.seed}:{instance_id}:slow").random() < self.slow_rate
        if slow:
            runtime = int(runtime * rng.uniform(5.0, 10.0))
        race = random.Random(f"{self.seed}:{instance_id}:cancel:{attempt}").random() < self.cancel_race_rate
        return Plan(kind=kind, runtime_seconds=runtime, cancel_race=race)
