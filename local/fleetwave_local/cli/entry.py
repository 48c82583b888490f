"""The ``fleetwave`` command line.

Local commands (no AWS account needed): ``simulate``, ``plan --simulate``, ``validate``, ``schema``.
Operator commands (a deployed stack, or any endpoint through ``--endpoint-url``): ``start``, ``status``, ``watch``,
``cancel``, ``list``, ``history``, and ``plan`` without ``--simulate``.

Exit codes: 0 SUCCEEDED, 1 COMPLETED_WITH_ERRORS, 2 HALTED/CANCELLED/FAILED, 64 and up as sysexits(3) (see
``ExitCode``). Errors are one line each on stderr, never a traceback (``FLEETWAVE_DEBUG=1`` shows it).
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from fleetwave.core.model import RolloutState
from fleetwave.core.spec import parse_duration, spec_json_schema
from fleetwave.core.status import InvocationStatus
from fleetwave.errors import NotFoundError, SpecRejectedError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fleetwave_local.cli.document import format_duration, iso, rollout_document
from fleetwave_local.cli.errors import CliError, ExitCode, exit_with
from fleetwave_local.cli.options import (
    Deployment,
    JsonOpt,
    LimitOpt,
    QuietOpt,
    RolloutIdArg,
    SpecArg,
    Watching,
    aws_options,
    rate_option,
    stack_options,
    watch_options,
)
from fleetwave_local.cli.render import STATE_STYLES, ProgressView, plan_renderables, summary_renderables
from fleetwave_local.cli.specs import check_started, load_spec, rejected

if TYPE_CHECKING:  # operator imports boto3: only the operator commands load it
    from fleetwave_local.cli.operator import Invoker, Operator

HELP = """Wave-based, error-budgeted SSM Run Command rollouts.

Try it with no AWS account: [bold]fleetwave simulate examples/patching.yaml --fleet 60 --seed 7[/bold]"""

app = typer.Typer(
    name="fleetwave",
    help=HELP,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)


@dataclass
class CliContext:
    """What tests (or an embedding program) can swap: how functions are invoked, how watch waits."""

    invoker: Invoker | None = None
    sleep: Callable[[float], None] = time.sleep
    consoles: dict[str, Console] = field(default_factory=dict)


def _context(ctx: typer.Context) -> CliContext:
    return ctx.obj if isinstance(ctx.obj, CliContext) else CliContext()


def _console(file: Any) -> Console:
    console = Console(file=file, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Piped or in CI: rich would assume 80 columns and squeeze the tables.
        console = Console(file=file, highlight=False, width=120)
    return console


def stderr() -> Console:
    """The console for progress, notes and errors (a new one per call: it follows sys.stderr)."""
    return _console(sys.stderr)


def stdout() -> Console:
    return _console(sys.stdout)


def _show(console: Console, renderables: Sequence[Any]) -> None:
    for renderable in renderables:
        console.print(renderable)


def _print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def _note(message: str) -> None:
    stderr().print(Text(message, style="dim"), soft_wrap=True)


def _operator(
    ctx: typer.Context, deployment: Deployment, *, needs: Sequence[str], optional: Sequence[str] = ()
) -> Operator:
    from fleetwave_local.cli.operator import Aws, AwsOptions, Operator, resolve_resources

    d = deployment
    aws = Aws(AwsOptions(region=d.region, profile=d.profile, endpoint_url=d.endpoint_url))
    resources = resolve_resources(
        aws,
        needs=needs,
        optional=optional,
        stack_name=d.stack_name,
        table=d.table,
        start_function=d.start_function,
        cancel_function=d.cancel_function,
    )
    return Operator(aws, resources, invoker=_context(ctx).invoker)


# ------------------------------------------------------------------------------------------------------ simulate
def _alarms(values: Sequence[str]) -> dict[str, str]:
    alarms = {}
    for value in values:
        name, sep, state = value.partition("=")
        if not sep or not name:
            raise CliError(ExitCode.USAGE, f"--alarm {value}: use NAME=STATE, e.g. --alarm my-alarm=ALARM")
        alarms[name] = state.upper()
    return alarms


def _check_report_path(report: Path | None) -> None:
    if report is None:
        return
    parent = report.parent if str(report.parent) else Path(".")
    if not parent.is_dir():
        raise CliError(ExitCode.CANT_CREATE, f"{report}: cannot write the report: {parent} is not a directory")
    if report.is_dir():
        raise CliError(ExitCode.CANT_CREATE, f"{report}: cannot write the report: it is a directory")


def _write_report(report: Path, document: dict[str, Any]) -> None:
    from fleetwave_local.cli.report import render_report

    try:
        report.write_text(render_report(document), encoding="utf-8")
    except OSError as error:
        raise CliError(ExitCode.CANT_CREATE, f"{report}: cannot write the report: {error.strerror or error}") from None


@app.command()
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
    _check_report_path(report)
    console = stderr()

    def started(result: dict[str, Any]) -> None:
        if quiet:
            return
        skipped = f", {len(result['skipped'])} skipped" if result.get("skipped") else ""
        _note(
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
            raise rejected(error, loaded.source) from None
    document = simulation.document
    if json_output:
        _print_json(document)
        if not quiet:
            _show(console, summary_renderables(document))
    else:
        _show(stdout(), summary_renderables(document))
    if report is not None:
        _write_report(report, document)
        if not quiet:
            _note(f"report written to {report}")
    exit_with(document["exit_code"])


# ------------------------------------------------------------------------------------------- validate, schema
@app.command()
def validate(spec: SpecArg) -> None:
    """Check SPEC without AWS: print each problem with its field path (exit 65), or a one-line summary."""
    try:
        loaded = load_spec(spec)
    except CliError as error:
        if error.code != ExitCode.DATA_ERROR:
            raise
        for line in error.lines or [error.message]:
            sys.stdout.write(line + "\n")
        exit_with(ExitCode.DATA_ERROR)
    s = loaded.spec
    targets = []
    if s.targets.tags:
        targets.append("tags " + ", ".join(f"{k}={'|'.join(v)}" for k, v in s.targets.tags.items()))
    if s.targets.instance_ids:
        targets.append(f"{len(s.targets.instance_ids)} instance IDs")
    sys.stdout.write(
        f"{loaded.source}: OK: {s.name}: {s.document.name} on {' and '.join(targets)}; "
        f"waves {', '.join(str(w) for w in s.waves)}; budget {s.error_budget.allowed}; bake {s.bake_time}s\n"
    )


@app.command()
def schema() -> None:
    """Print the JSON Schema of a spec (for editors; also in examples/rollout-spec.schema.json)."""
    _print_json(spec_json_schema())


# ---------------------------------------------------------------------------------------------------------- plan
@app.command()
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
    loaded = load_spec(spec)
    try:
        if simulate_fleet:
            from fleetwave_local.cli.simulate import FleetOptions, plan_simulated

            document = plan_simulated(loaded.spec, FleetOptions(size=fleet, seed=seed, offline_rate=offline_rate))
        else:
            operator = _operator(ctx, deployment, needs=())
            document = operator.plan(loaded.spec)
    except SpecRejectedError as error:
        raise rejected(error, loaded.source) from None
    if json_output:
        _print_json(document)
    else:
        _show(stdout(), plan_renderables(document))


# ---------------------------------------------------------------------------------------------- operator commands
@app.command()
@stack_options("start_function")
@watch_options
def start(
    ctx: typer.Context,
    spec: SpecArg,
    watch_rollout: Annotated[
        bool, typer.Option("--watch", help="Then watch it to the end (exit codes as watch).")
    ] = False,
    *,
    watching: Watching,
    deployment: Deployment,
) -> None:
    """Start a rollout of SPEC on the deployed stack (invokes start_rollout synchronously)."""
    loaded = load_spec(spec)
    needs = ("start_function", "table") if watch_rollout else ("start_function",)
    operator = _operator(ctx, deployment, needs=needs, optional=("table",))
    result = operator.start(loaded.spec)
    check_started(result, loaded.source)
    if not watch_rollout:
        if watching.json_output:
            _print_json(result)
        else:
            _print_started(result)
        return
    if not watching.quiet:
        _print_started(result, console=stderr())
    _watch(ctx, operator, result["rollout_id"], watching)


def _print_started(result: dict[str, Any], console: Console | None = None) -> None:
    console = console or stdout()
    console.print(Text(f"rollout {result['rollout_id']} {result['state']}", style="bold"))
    console.print(
        f"{result['target_count']} targets in waves {result['waves']}, error budget {result['budget_allowed']}, "
        f"document version {result['document_version']}"
    )
    if result.get("reason"):
        console.print(f"reason: {result['reason']}")
    for item in result.get("skipped", []):
        console.print(f"skipped {item['instance_id']}: {item['reason']}")
    if result.get("deferred"):
        console.print(f"deferred to the end (active session): {', '.join(result['deferred'])}")


def _watch(ctx: typer.Context, operator: Operator, rollout_id: str, watching: Watching) -> NoReturn:
    console = stderr()
    with ProgressView(console, enabled=not watching.quiet) as view:
        operator.watch(
            rollout_id,
            interval=watching.interval,
            timeout=watching.timeout,
            on_progress=view.update,
            sleep=_context(ctx).sleep,
        )
    document = rollout_document(operator.view(rollout_id))
    if watching.json_output:
        _print_json(document)
    else:
        _show(stdout(), summary_renderables(document))
    exit_with(document["exit_code"])


@app.command()
@stack_options()
def status(
    ctx: typer.Context,
    rollout_id: Annotated[str, typer.Argument(help="Rollout ID (from start or list).", show_default=False)],
    json_output: JsonOpt = False,
    failed_limit: Annotated[int, typer.Option("--failed", min=0, help="List at most this many failed nodes.")] = 50,
    *,
    deployment: Deployment,
) -> None:
    """Show a rollout: state, counts by status, waves, budget, failed nodes."""
    operator = _operator(ctx, deployment, needs=("table",))
    document = rollout_document(operator.view(rollout_id), failed_limit=failed_limit)
    if json_output:
        _print_json(document)
    else:
        _show(stdout(), summary_renderables(document))


@app.command()
@stack_options()
@watch_options
def watch(
    ctx: typer.Context,
    rollout_id: RolloutIdArg,
    *,
    watching: Watching,
    deployment: Deployment,
) -> None:
    """Follow a rollout until it ends; exit 0 SUCCEEDED, 1 COMPLETED_WITH_ERRORS, 2 HALTED/CANCELLED/FAILED."""
    operator = _operator(ctx, deployment, needs=("table",))
    _watch(ctx, operator, rollout_id, watching)


@app.command()
@stack_options("cancel_function")
def cancel(
    ctx: typer.Context,
    rollout_id: RolloutIdArg,
    reason: Annotated[str, typer.Option(help="Recorded on the rollout.")] = "cancelled by operator",
    json_output: JsonOpt = False,
    *,
    deployment: Deployment,
) -> None:
    """Cancel a rollout (invokes cancel_rollout): no new wave or chunk; in-flight commands are cancelled."""
    operator = _operator(ctx, deployment, needs=("cancel_function",), optional=("table",))
    result = operator.cancel(rollout_id, reason)
    if json_output:
        _print_json(result)
        return
    state = str(result.get("state", ""))
    line = Text(f"rollout {result.get('rollout_id', rollout_id)} ")
    line.append(state, style=STATE_STYLES.get(state, ""))
    if result.get("reason"):
        line.append(f": {result['reason']}")
    stdout().print(line)
    if result.get("already_ended"):
        _note("the rollout had already ended: nothing to cancel")


@app.command("list")
@stack_options()
def list_rollouts(
    ctx: typer.Context,
    state: Annotated[
        RolloutState | None, typer.Option("--state", case_sensitive=False, help="Only rollouts in this state.")
    ] = None,
    spec_name: Annotated[str | None, typer.Option("--spec", help="Only rollouts of this spec name.")] = None,
    limit: LimitOpt = 50,
    json_output: JsonOpt = False,
    *,
    deployment: Deployment,
) -> None:
    """List rollouts, newest first."""
    operator = _operator(ctx, deployment, needs=("table",))
    rollouts = operator.list_rollouts(state=state.value if state else None, spec=spec_name, limit=limit)
    rows: list[dict[str, Any]] = [
        {
            "rollout_id": r.rollout_id,
            "spec": r.spec_name,
            "state": r.state.value,
            "trigger": r.trigger,
            "target_count": r.target_count,
            "succeeded": r.counts.get(InvocationStatus.SUCCESS, 0),
            "budget": {"allowed": r.budget_allowed, "used": r.budget_used},
            "started_at": iso(r.started_at),
            "ended_at": iso(r.ended_at),
            "reason": r.reason,
        }
        for r in rollouts
    ]
    if json_output:
        _print_json(rows)
        return
    if not rows:
        _note("no rollout found")
        return
    table_view = Table(box=None, pad_edge=False)
    table_view.add_column("rollout", no_wrap=True, min_width=max(len(r["rollout_id"]) for r in rows))
    for name in ("spec", "state", "targets", "succeeded", "budget", "started (UTC)", "took"):
        table_view.add_column(name)
    for rollout, row in zip(rollouts, rows, strict=True):
        took = (rollout.ended_at - rollout.started_at).total_seconds() if rollout.ended_at else None
        table_view.add_row(
            row["rollout_id"],
            row["spec"],
            Text(row["state"], style=STATE_STYLES.get(row["state"], "")),
            str(row["target_count"]),
            str(row["succeeded"]),
            f"{row['budget']['used']}/{row['budget']['allowed']}",
            f"{rollout.started_at:%Y-%m-%d %H:%M}",
            format_duration(took) if took is not None else "running",
        )
    stdout().print(table_view)


@app.command()
@stack_options()
def history(
    ctx: typer.Context,
    instance_id: Annotated[str, typer.Argument(help="Managed node ID (i-... or mi-...).", show_default=False)],
    limit: LimitOpt = 100,
    json_output: JsonOpt = False,
    *,
    deployment: Deployment,
) -> None:
    """Every rollout that touched a node, newest first, with its invocation status."""
    import re

    if not re.fullmatch(r"(i-(\w{8}|\w{17})|mi-\w{17})", instance_id):
        raise CliError(ExitCode.USAGE, f"{instance_id!r} is not a managed node ID (i-... or mi-...)")
    operator = _operator(ctx, deployment, needs=("table",))
    rows: list[dict[str, Any]] = [
        {
            "rollout_id": str(item.get("rollout_id", "")),
            "spec": str(item.get("spec_name", "")),
            "wave": int(item["wave"]) if "wave" in item else None,
            "command_id": str(item.get("command_id", "")),
            "status": str(item.get("status", "")),
            "status_details": str(item.get("status_details", "")),
            "requested_at": item.get("requested_at"),
            "ended_at": item.get("ended_at"),
            "output_url": str(item.get("output_url", "")),
        }
        for item in operator.history(instance_id, limit=limit)
    ]
    if json_output:
        _print_json({"instance_id": instance_id, "invocations": rows})
        return
    if not rows:
        _note(f"no rollout has touched {instance_id}")
        return
    table_view = Table(box=None, pad_edge=False)
    for name in ("requested", "rollout", "spec", "wave", "status", "details", "command"):
        ids = name in ("rollout", "command")
        table_view.add_column(name, no_wrap=ids, min_width=36 if name == "command" else (22 if ids else None))
    for row in rows:
        table_view.add_row(
            str(row["requested_at"] or "-"),
            row["rollout_id"],
            row["spec"],
            str(row["wave"]),
            row["status"],
            row["status_details"],
            row["command_id"],
        )
    stdout().print(table_view)


def _print_version(value: bool) -> None:
    if not value:
        return
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        sys.stdout.write(f"fleetwave {package_version('fleetwave')}\n")
    except PackageNotFoundError:
        sys.stdout.write("fleetwave (not installed)\n")
    raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Wave-based, error-budgeted SSM Run Command rollouts."""


# ---------------------------------------------------------------------------------------------------- entry point
def _error_lines(error: BaseException) -> tuple[ExitCode, list[str]]:
    """The one place that maps every failure to an exit code and the lines that explain it."""
    from fleetwave_local.cli.operator import (
        AwsConfigError,
        AwsPermissionError,
        AwsUnavailableError,
        FunctionFailedError,
        WatchTimeoutError,
    )

    if isinstance(error, CliError):
        return error.code, error.lines or [error.message]
    if isinstance(error, SpecRejectedError):
        return ExitCode.DATA_ERROR, list(error.problems)
    mapping: list[tuple[type[BaseException], ExitCode]] = [
        (NotFoundError, ExitCode.NO_INPUT),
        (AwsConfigError, ExitCode.CONFIG),
        (AwsPermissionError, ExitCode.NO_PERMISSION),
        (AwsUnavailableError, ExitCode.UNAVAILABLE),
        (FunctionFailedError, ExitCode.SOFTWARE),
        (WatchTimeoutError, ExitCode.TEMP_FAILURE),
    ]
    for kind, code in mapping:
        if isinstance(error, kind):
            return code, [str(error)]
    return ExitCode.SOFTWARE, [
        f"internal error: {type(error).__name__}: {error} (FLEETWAVE_DEBUG=1 shows the traceback)"
    ]


def _usage_line(error: typer.TyperException) -> str:
    context = getattr(error, "ctx", None)
    command = context.command_path if context is not None else "fleetwave"
    message = error.format_message() if hasattr(error, "format_message") else str(error)
    return f"{command}: {message} (see '{command} --help')"


def run(
    argv: Sequence[str] | None = None,
    *,
    invoker: Invoker | None = None,
    sleep: Callable[[float], None] | None = None,
) -> int:
    """Run the CLI and return its exit code (tests call this; ``main`` exits with it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        app(args=["--help"], prog_name="fleetwave", standalone_mode=False)
        return int(ExitCode.USAGE)
    context = CliContext(invoker=invoker, sleep=sleep or time.sleep)
    debug = bool(os.environ.get("FLEETWAVE_DEBUG"))
    try:
        with warnings.catch_warnings():
            if not debug:
                # botocore's and moto's deprecation noise is not the user's business.
                warnings.simplefilter("ignore", DeprecationWarning)
            result = app(args=args, prog_name="fleetwave", standalone_mode=False, obj=context)
    except KeyboardInterrupt:
        _error("interrupted")
        return int(ExitCode.INTERRUPTED)
    except typer.Abort:
        _error("aborted")
        return int(ExitCode.INTERRUPTED)
    except typer.TyperException as error:
        code = int(getattr(error, "exit_code", 1))
        if code == 2:  # click's usage errors: bad option, missing argument, value out of range
            _error(_usage_line(error))
            return int(ExitCode.USAGE)
        _error(str(error))
        return int(ExitCode.SOFTWARE)
    except Exception as error:
        if debug:
            raise
        code, lines = _error_lines(error)
        for line in lines:
            _error(line)
        return int(code)
    return int(result or 0)


def _error(line: str) -> None:
    sys.stderr.write(f"fleetwave: {line}\n")
    sys.stderr.flush()


def main() -> NoReturn:
    """Console script entry point."""
    sys.exit(run())


__all__ = ["CliContext", "ExitCode", "app", "main", "run"]
