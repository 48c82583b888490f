"""The local commands, which need no AWS account: ``simulate``, ``validate``, ``schema``, ``init`` and ``plan``
(which, without ``--simulate``, plans against AWS through the operator)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from fleetwave.core.spec import parse_duration, spec_json_schema
from fleetwave.errors import SpecRejectedError

from fleetwave_local.cli.authoring import (
    read_spec_file,
    refuse_unused,
    schedule_document,
    schedule_line,
    schedule_problems,
    summary_line,
    validation_document,
)
from fleetwave_local.cli.console import note, print_json, show, stderr, stdout
from fleetwave_local.cli.context import connect
from fleetwave_local.cli.errors import CliError, ExitCode, exit_with
from fleetwave_local.cli.options import Deployment, JsonOpt, QuietOpt, SpecArg, aws_options, rate_option
from fleetwave_local.cli.render import ProgressView, plan_renderables, summary_renderables
from fleetwave_local.cli.report import check_report_path, write_report
from fleetwave_local.cli.specs import load_spec, rejected


# ------------------------------------------------------------------------------------------------------ simulate
def _alarms(values: Sequence[str]) -> dict[str, str]:
    alarms = {}
    for value in values:
        name, sep, state = value.partition("=")
        if not sep or not name:
            raise CliError(ExitCode.USAGE, f"--alarm {value}: use NAME=STATE, e.g. --alarm my-alarm=ALARM")
        alarms[name] = state.upper()
    return alarms


def simulate(
    spec: SpecArg,
    fleet: Annotated[int, typer.Option("--fleet", min=0, help="Nodes carrying the spec's target tags.")] = 100,
    fail_rate: Annotated[float, rate_option("Share of nodes whose command fails.")] = 0.0,
    timeout_rate: Annotated[float, rate_option("Share that ends in Execution Timed Out (spends budget).")] = 0.0,
    delivery_timeout_rate: Annotated[float, rate_option("Share that ends in Delivery Timed Out.")] = 0.0,
    undeliverable_rate: Annotated[float, rate_option("Share that is Undeliverable.")] = 0.0,
    offline_rate: Annotated[float, rate_option("Share of nodes offline at plan time (skipped).")] = 0.0,
    drop_rate: Annotated[float, rate_option("Share of status events lost (the reconciler recovers).")] = 0.0,
    duplicate_rate: Annotated[float, rate_option("Share of status events repeated.")] = 0.0,
    slow_rate: Annotated[float, rate_option("Share of nodes 5-10x slower.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Same seed, same fleet, same outcome.")] = 1,
    alarm: Annotated[
        list[str] | None,
        typer.Option("--alarm", metavar="NAME=STATE", help="Start an alarm gate in this state (OK, ALARM, ...)."),
    ] = None,
    cancel_after: Annotated[
        str | None, typer.Option(metavar="DURATION", help="Cancel the rollout after this virtual time, e.g. 45m.")
    ] = None,
    json_output: JsonOpt = False,
    report: Annotated[Path | None, typer.Option(help="Write a self-contained HTML report here.")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Run a whole rollout of SPEC on a simulated fleet: waves, bake times (virtual clock), budget, gates.

    Nothing leaves this machine: moto, the fleet simulator and the real fleetwave functions run in process.
    """
    from fleetwave_local.cli.simulate import FleetOptions, check_options
    from fleetwave_local.cli.simulate import simulate as run_simulation

    loaded = load_spec(spec)
    cancel_seconds = None
    if cancel_after is not None:
        try:
            cancel_seconds = parse_duration(cancel_after)
        except ValueError as error:
            raise CliError(ExitCode.USAGE, f"--cancel-after: {error}") from None
    options = FleetOptions(
        size=fleet,
        seed=seed,
        fail_rate=fail_rate,
        timeout_rate=timeout_rate,
        delivery_timeout_rate=delivery_timeout_rate,
        undeliverable_rate=undeliverable_rate,
        slow_rate=slow_rate,
        offline_rate=offline_rate,
        drop_rate=drop_rate,
        duplicate_rate=duplicate_rate,
        alarms=_alarms(alarm or []),
        cancel_after=cancel_seconds,
    )
    problems = check_options(options, loaded.spec)
    if problems:
        raise CliError(ExitCode.USAGE, problems[0], lines=problems)
    check_report_path(report)
    console = stderr()

    def started(result: dict[str, Any]) -> None:
        if quiet:
            return
        skipped = f", {len(result['skipped'])} skipped" if result.get("skipped") else ""
        note(
            f"started {result['rollout_id']}: {result['target_count']} targets in waves {result['waves']}{skipped}, "
            f"error budget {result['budget_allowed']}, document version {result['document_version']}"
        )

    with ProgressView(console, clock_label=" virtual", enabled=not quiet) as view:
        try:
            simulation = run_simulation(
                loaded.spec,
                options,
                on_progress=lambda snap: view.update(snap.rollout, snap.waves, snap.now),
                on_start=started,
                source=loaded.source,
            )
        except SpecRejectedError as error:
            raise rejected(error, loaded) from None
    document = simulation.document
    if json_output:
        print_json(document)
        if not quiet:
            show(console, summary_renderables(document))
    else:
        show(stdout(), summary_renderables(document))
    if report is not None:
        write_report(report, document)
        if not quiet:
            note(f"report written to {report}")
    exit_with(document["exit_code"])


# ------------------------------------------------------------------------------------------- validate, schema
def validate(
    spec: SpecArg,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON document: valid, problems as {path, line, column, rule}.")
    ] = False,
) -> None:
    """Check SPEC without AWS: every problem with its line, column and field (exit 65).

    A valid spec gets a one-line summary and, when it has a schedule, its next three runs in the schedule's time zone.
    """
    now = datetime.now(UTC)
    read = read_spec_file(spec)
    read.problems.extend(schedule_problems(read, now))
    if json_output:
        print_json(validation_document(read, now))
    elif read.problems:
        for problem in read.problems:
            sys.stdout.write(f"{problem}\n")
    else:
        sys.stdout.write(summary_line(read) + "\n")
        assert read.spec is not None
        schedule = schedule_document(read.spec, now)
        if schedule is not None:
            sys.stdout.write(schedule_line(schedule) + "\n")
    if read.problems:
        exit_with(ExitCode.DATA_ERROR)


def schema() -> None:
    """Print the JSON Schema of a spec (for editors; also in examples/rollout-spec.schema.json)."""
    print_json(spec_json_schema())


# ---------------------------------------------------------------------------------------------------------- plan
@aws_options
def plan(
    ctx: typer.Context,
    spec: SpecArg,
    simulate_fleet: Annotated[
        bool, typer.Option("--simulate", help="Plan against a simulated fleet (no AWS account needed).")
    ] = False,
    fleet: Annotated[int, typer.Option("--fleet", min=0, help="With --simulate: nodes with the spec's tags.")] = 100,
    seed: Annotated[int, typer.Option(help="With --simulate: the fleet's seed.")] = 1,
    offline_rate: Annotated[float, rate_option("With --simulate: share of nodes offline (skipped).")] = 0.0,
    json_output: JsonOpt = False,
    *,
    deployment: Deployment,
) -> None:
    """Resolve SPEC's targets (EC2 tags, SSM online status) and print its waves and skipped nodes.

    Checks the document like start would. Dispatches nothing and writes nothing.
    """
    if simulate_fleet:
        refuse_unused(
            ctx, ("region", "profile", "endpoint_url"), "for AWS calls; --simulate makes none: leave {it} out"
        )
    else:
        refuse_unused(
            ctx, ("fleet", "seed", "offline_rate"), "for a simulated fleet: add --simulate, or leave {it} out"
        )
    loaded = load_spec(spec)
    try:
        if simulate_fleet:
            from fleetwave_local.cli.simulate import FleetOptions, plan_simulated

            document = plan_simulated(loaded.spec, FleetOptions(size=fleet, seed=seed, offline_rate=offline_rate))
        else:
            operator = connect(deployment, needs=())
            document = operator.plan(loaded.spec)
    except SpecRejectedError as error:
        raise rejected(error, loaded) from None
    document["schedule"] = schedule_document(loaded.spec, datetime.now(UTC))
    if json_output:
        print_json(document)
    else:
        show(stdout(), plan_renderables(document))


# ---------------------------------------------------------------------------------------------------------- init
class SpecKind(StrEnum):
    """Kinds of rollout ``init`` has a starter for (``association`` comes with its spec model)."""

    COMMAND = "command"


def init(
    file: Annotated[
        Path | None,
        typer.Argument(
            metavar="[FILE]", help="Write the starter spec here (default: standard output).", show_default=False
        ),
    ] = None,
    kind: Annotated[SpecKind, typer.Option("--kind", case_sensitive=False, help="What the rollout changes.")] = (
        SpecKind.COMMAND
    ),
    force: Annotated[bool, typer.Option("--force", help="Replace FILE if it exists.")] = False,
) -> None:
    """Write a commented starter spec that validates as written; edit its document and targets."""
    from fleetwave_local.cli.authoring import write_starter

    text = write_starter(kind.value, file, force=force)
    if file is None:
        sys.stdout.write(text)
    else:
        note(f"wrote {file} ({kind.value} spec): check it with `fleetwave validate {file}`")
