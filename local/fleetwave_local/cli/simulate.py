"""``fleetwave simulate`` and ``fleetwave plan --simulate``: a spec run against the local twin.

The fleet is built from the spec: ``fleet`` EC2 instances carrying the spec's target tags (the first value of each
tag key), plus the spec's explicit instance IDs registered as managed nodes. Alarm gates the spec names are created
(OK unless told otherwise) and its change calendars OPEN, so the rollout is guarded as it would be in an account.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from fleetwave.constants import MAX_IDS_PER_COMMAND
from fleetwave.core.notifications.common import OutputLocation
from fleetwave.core.spec import RolloutSpec
from fleetwave.errors import SpecRejectedError

from fleetwave_local.cli.document import RolloutView, api_calls_document, iso, rollout_document
from fleetwave_local.cli.errors import CliError, ExitCode
from fleetwave_local.cli.planning import plan_with_deps
from fleetwave_local.cli.runtime import functions_runtime
from fleetwave_local.cli.specs import LoadedSpec, check_started

if TYPE_CHECKING:
    from fleetwave_local.twin import Snapshot, Twin

ALARM_STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")
# A rollout that has not ended after this much virtual time is stuck (a bug, not a slow fleet).
MAX_VIRTUAL_TIME = timedelta(days=7)


@dataclass(frozen=True)
class FleetOptions:
    """The simulated fleet and its failure modes (rates are probabilities per node, 0 to 1)."""

    size: int = 100
    seed: int = 1
    fail_rate: float = 0.0
    timeout_rate: float = 0.0  # Execution Timed Out: spends the budget
    delivery_timeout_rate: float = 0.0  # Delivery Timed Out: does not, unless the spec says so
    undeliverable_rate: float = 0.0
    slow_rate: float = 0.0
    offline_rate: float = 0.0  # ConnectionLost at plan time: skipped
    drop_rate: float = 0.0  # status events lost; the reconciler recovers
    duplicate_rate: float = 0.0
    alarms: Mapping[str, str] = field(default_factory=dict)  # alarm gate -> initial state
    cancel_after: int | None = None  # seconds of virtual time after the start

    def rates(self) -> dict[str, float]:
        return {
            "fail": self.fail_rate,
            "execution_timeout": self.timeout_rate,
            "delivery_timeout": self.delivery_timeout_rate,
            "undeliverable": self.undeliverable_rate,
            "slow": self.slow_rate,
            "offline": self.offline_rate,
            "drop": self.drop_rate,
            "duplicate": self.duplicate_rate,
        }


def check_options(options: FleetOptions, spec: RolloutSpec) -> list[str]:
    """Usage problems of the options against this spec (rates, alarms)."""
    problems = []
    outcome = options.fail_rate + options.timeout_rate + options.delivery_timeout_rate + options.undeliverable_rate
    if outcome > 1.0 + 1e-9:
        problems.append(
            f"--fail-rate, --timeout-rate, --delivery-timeout-rate and --undeliverable-rate add up to {outcome:g}; "
            "at most 1"
        )
    for name, state in options.alarms.items():
        if name not in spec.alarm_gates:
            gates = ", ".join(spec.alarm_gates) or "none"
            problems.append(f"--alarm {name}={state}: the spec has no alarm gate {name!r} (its gates: {gates})")
        if state not in ALARM_STATES:
            problems.append(f"--alarm {name}={state}: the state must be one of {', '.join(ALARM_STATES)}")
    return problems


def open_twin(options: FleetOptions) -> Twin:
    """A twin (not entered yet) with this fleet's seed and failure modes."""
    from fleetwave_local.twin import Twin, TwinOptions

    return Twin(
        TwinOptions(
            seed=options.seed,
            fail_rate=options.fail_rate,
            execution_timeout_rate=options.timeout_rate,
            delivery_timeout_rate=options.delivery_timeout_rate,
            undeliverable_rate=options.undeliverable_rate,
            slow_rate=options.slow_rate,
            offline_rate=options.offline_rate,
            drop_rate=options.drop_rate,
            duplicate_rate=options.duplicate_rate,
        )
    )


@dataclass(frozen=True)
class Fleet:
    tagged: int
    explicit: int
    tags: dict[str, str]


def build_fleet(twin: Twin, spec: RolloutSpec, size: int) -> Fleet:
    """``size`` nodes with the spec's target tags (first value of each key) plus the spec's explicit IDs."""
    tags = {key: values[0] for key, values in spec.targets.tags.items() if values}
    tagged = 0
    if tags and size > 0:
        tagged = len(twin.add_nodes(size, tags=tags))
    known = {node.instance_id for node in twin.sim.nodes()}
    explicit = 0
    for instance_id in spec.targets.instance_ids:
        if instance_id not in known:
            twin.sim.add_node(instance_id)
            known.add(instance_id)
            explicit += 1
    return Fleet(tagged=tagged, explicit=explicit, tags=tags)


@dataclass
class Simulation:
    """The outcome of ``simulate``: the result document (with the budget's course over virtual time)."""

    document: dict[str, Any]


ProgressCallback = Callable[["Snapshot"], None]


def simulate(
    spec: RolloutSpec,
    options: FleetOptions,
    *,
    on_progress: ProgressCallback | None = None,
    on_start: Callable[[dict[str, Any]], None] | None = None,
    source: str = "spec",
) -> Simulation:
    """Run the spec's rollout on a twin to its end. Raises SpecRejectedError when start_rollout rejects it."""
    from fleetwave_local.twin import TwinTimeoutError

    with open_twin(options) as twin:
        functions_runtime()
        fleet = build_fleet(twin, spec, options.size)
        alarms = {name: options.alarms.get(name, "OK") for name in spec.alarm_gates}
        for name, state in alarms.items():
            twin.put_alarm(name, state)
        for calendar in spec.calendars:
            twin.set_calendar(calendar, "OPEN")
        begun = twin.clock.now()
        result = twin.start(spec.model_dump(mode="json"))
        if result.get("rejected"):
            raise SpecRejectedError(list(result.get("problems", [])))
        check_started(result, LoadedSpec(spec=spec, source=source))
        if on_start:
            on_start(result)
        rollout_id = result["rollout_id"]
        history: list[tuple[datetime, int]] = []
        cancelled = False

        def progress(snapshot: Snapshot) -> None:
            nonlocal cancelled
            used = snapshot.rollout.budget_used
            if not history or history[-1][1] != used:
                history.append((snapshot.now, used))
            if on_progress:
                on_progress(snapshot)
            if (
                options.cancel_after is not None
                and not cancelled
                and not snapshot.rollout.state.is_terminal
                and snapshot.now >= snapshot.rollout.started_at + timedelta(seconds=options.cancel_after)
            ):
                cancelled = True
                twin.cancel(rollout_id)

        try:
            rollout = twin.run(rollout_id, max_virtual=MAX_VIRTUAL_TIME, on_progress=progress)
        except TwinTimeoutError as error:
            raise CliError(ExitCode.SOFTWARE, f"simulation did not end: {error}") from None
        view = RolloutView(
            rollout=rollout,
            waves=twin.reader.plans.waves(rollout_id),
            skipped=twin.reader.plans.skipped(rollout_id),
            failed=twin.reader.invocations.failed(rollout_id),
            location=OutputLocation.of(spec.output, rollout.document_name, twin.sim.region),
        )
        document = rollout_document(view)
        final = twin.clock.now()
        document["budget"]["history"] = [{"at": iso(at), "used": used} for at, used in history]
        document["deferred"] = list(result.get("deferred", []))
        document["seed"] = options.seed
        document["virtual_duration_seconds"] = (final - begun).total_seconds()
        document["fleet"] = {
            "size": options.size,
            "tagged_nodes": fleet.tagged,
            "tags": fleet.tags,
            "explicit_instance_ids": fleet.explicit,
            "rates": options.rates(),
            "alarms": alarms,
            "calendars": {calendar: "OPEN" for calendar in spec.calendars},
            "cancel_after_seconds": options.cancel_after,
        }
        document["api_calls"] = api_calls_document(twin.api_calls)
        document["summaries_published"] = len(twin.summaries)
        document["handler_errors"] = list(twin.handler_errors)
    return Simulation(document=document)


def expected_send_commands(wave_sizes: list[int]) -> int:
    """SendCommand calls for waves of these sizes when every wave runs: 50 instance IDs per command at most."""
    return sum(-(-size // MAX_IDS_PER_COMMAND) for size in wave_sizes)


def plan_simulated(spec: RolloutSpec, options: FleetOptions) -> dict[str, Any]:
    """``plan --simulate``: the plan against a twin fleet built like ``simulate`` builds it."""
    with open_twin(options) as twin:
        functions_runtime()
        build_fleet(twin, spec, options.size)
        document = plan_with_deps(twin.deps, spec)
        document["fleet"] = {"size": options.size, "seed": options.seed, "offline_rate": options.offline_rate}
        document["api_calls"] = api_calls_document(twin.api_calls)
    return document
