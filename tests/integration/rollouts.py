"""Helpers for whole-rollout tests on the local twin."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from fleetwave.adapters.ledger import Ledger
from fleetwave.core.status import InvocationStatus
from fleetwave_local.twin import Twin


def shell_spec(**changes: Any) -> dict[str, Any]:
    spec = {
        "name": "integration",
        "document": {"name": "AWS-RunShellScript", "parameters": {"commands": ["uptime"]}},
        "targets": {"tags": {"env": ["test"]}},
        "waves": [1, "50%", "100%"],
        "max_concurrency": "100%",
        "error_budget": 0,
        "bake_time": "10m",
    }
    spec.update(changes)
    return spec


def ledger_truth(reader: Ledger, rollout_id: str) -> dict[str, Any]:
    """Counters recomputed from the invocation records themselves (what invariant 2 compares against)."""
    by_status: Counter[str] = Counter()
    by_wave: dict[int, Counter[str]] = {}
    statuses: dict[tuple[str, str], str] = {}
    for item in reader.invocations.of_rollout(rollout_id):
        by_status[item["status"]] += 1
        by_wave.setdefault(int(item["wave"]), Counter())[item["status"]] += 1
        statuses[(item["command_id"], item["instance_id"])] = item["status"]
    return {"by_status": by_status, "by_wave": by_wave, "statuses": statuses}


def counters(counts: dict[InvocationStatus, int]) -> Counter[str]:
    return Counter({status.value: n for status, n in counts.items() if n})


def assert_counters_exact(twin: Twin, rollout_id: str) -> None:
    truth = ledger_truth(twin.reader, rollout_id)
    rollout = twin.reader.rollouts.get(rollout_id)
    assert counters(rollout.counts) == truth["by_status"]
    for wave in twin.reader.plans.waves(rollout_id):
        assert counters(wave.counts) == truth["by_wave"].get(wave.index, Counter()), f"wave {wave.index}"


def simulator_truth(twin: Twin) -> dict[tuple[str, str], str]:
    """The final status of every invocation as the simulated SSM knows it, in fleetwave's vocabulary."""
    from fleetwave.core.status import classify

    truth = {}
    for invocation in twin.sim.invocations():
        status = classify(invocation.status, invocation.status_details)
        truth[(invocation.command.command_id, invocation.instance_id)] = status.value if status else invocation.status
    return truth


def summaries_for(twin: Twin, rollout_id: str) -> list[dict[str, Any]]:
    found = []
    for summary in twin.summaries:
        # MessageStructure=json: an SQS subscriber receives the "sqs" variant, the JSON summary itself.
        payload = json.loads(summary["message"])
        if payload.get("rollout_id") == rollout_id:
            found.append(payload)
    return found
