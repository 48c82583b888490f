"""Measure what a rollout costs: AWS API calls per instance (by service and operation), wall time, peak memory.

Runs whole rollouts on the local twin (moto + fleet simulator, virtual clock) and prints a table. Numbers are
fleetwave's own calls (the functions' boto3 clients), not the twin's glue. Usage:

    python benchmarks/rollout_cost.py [--sizes 100 500] [--drop-rate 0.0] [--seed 1]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections import Counter

from fleetwave_local.twin import Twin, TwinOptions


def spec() -> dict:
    return {
        "name": "bench",
        "document": {"name": "AWS-RunShellScript", "parameters": {"commands": ["uptime"]}},
        "targets": {"tags": {"fleet": ["bench"]}},
        "waves": [1, "10%", "50%", "100%"],
        "max_concurrency": "100%",
        "error_budget": "5%",
        "bake_time": "5m",
    }


def run(size: int, *, drop_rate: float, seed: int, fail_rate: float) -> dict:
    tracemalloc.start()
    started = time.perf_counter()
    with Twin(TwinOptions(seed=seed, drop_rate=drop_rate, fail_rate=fail_rate)) as twin:
        twin.add_nodes(size, tags={"fleet": "bench"})
        result = twin.start(spec())
        rollout = twin.run(result["rollout_id"])
        calls: Counter[str] = Counter(twin.api_calls)
        events = sum(twin.sim.stats.events_emitted.values())
    wall = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    virtual = (rollout.ended_at - rollout.started_at).total_seconds() if rollout.ended_at else 0
    return {
        "size": size,
        "state": rollout.state.value,
        "calls": calls,
        "wall": wall,
        "peak_mb": peak / 2**20,
        "events": events,
        "virtual": virtual,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--drop-rate", type=float, default=0.0)
    parser.add_argument("--fail-rate", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(
        f"{'targets':>8} {'state':<22} {'calls':>7} {'/target':>8} {'ddb/target':>10} {'SendCmd':>8} "
        f"{'wall s':>7} {'peak MB':>8} {'virtual':>8}"
    )
    for size in args.sizes:
        r = run(size, drop_rate=args.drop_rate, seed=args.seed, fail_rate=args.fail_rate)
        calls = r["calls"]
        total = sum(calls.values())
        ddb = sum(n for op, n in calls.items() if op.startswith("dynamodb:"))
        print(
            f"{size:>8} {r['state']:<22} {total:>7} {total / size:>8.2f} {ddb / size:>10.2f} "
            f"{calls['ssm:SendCommand']:>8} {r['wall']:>7.1f} {r['peak_mb']:>8.1f} {r['virtual'] / 60:>6.0f} m"
        )
        for op, n in sorted(calls.items(), key=lambda item: -item[1]):
            print(f"{'':>10}{op:<40} {n:>6} ({n / size:.3f}/target)")


if __name__ == "__main__":
    main()
