"""The operator commands, against the deployed stack (or any endpoint): ``start``, ``status``, ``report``,
``watch``, ``cancel``, ``list``, ``history``. Reads go to the ledger table; start and cancel are requests to the
stack's operator URL, signed with the user's credentials."""

from __future__ import annotations

import json
import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from fleetwave.core.model import RolloutState
from fleetwave.core.status import InvocationStatus
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fleetwave_local.cli.authoring import refuse_unused
from fleetwave_local.cli.console import note, print_json, show, stderr, stdout
from fleetwave_local.cli.context import cli_context, connect
from fleetwave_local.cli.document import format_duration, iso, rollout_document
from fleetwave_local.cli.errors import CliError, ExitCode, exit_with
from fleetwave_local.cli.options import (
    Deployment,
    JsonOpt,
    LimitOpt,
    RolloutIdArg,
    SpecArg,
    Watching,
    stack_options,
    watch_options,
)
from fleetwave_local.cli.render import STATE_STYLES, ProgressView, summary_renderables
from fleetwave_local.cli.report import check_report_path, write_report
from fleetwave_local.cli.specs import check_started, load_spec

if TYPE_CHECKING:  # operator imports boto3: only the operator commands load it
    from fleetwave_local.cli.operator import Operator

WatchFlag = Annotated[bool, typer.Option("--watch", help="Then watch it to the end (exit codes as watch).")]


@stack_options(operator_url=True)
@watch_options
def start(
    ctx: typer.Context,
    spec: SpecArg,
    watch_rollout: WatchFlag = False,
    *,
    watching: Watching,
    deployment: Deployment,
) -> None:
    """Start a rollout of SPEC on the deployed stack (a request to its operator URL, signed with your credentials)."""
    if not watch_rollout:
        refuse_unused(ctx, ("interval", "timeout", "quiet"), "for watching: add --watch, or leave {it} out")
    loaded = load_spec(spec)
    needs = ("operator_url", "table") if watch_rollout else ("operator_url",)
    operator = connect(deployment, needs=needs, optional=("table",))
    result = operator.start(loaded.spec)
    check_started(result, loaded)
    if not watch_rollout:
        if watching.json_output:
            print_json(result)
        else:
            _print_started(result)
        return
    if not watching.quiet:
        _print_started(result, console=stderr())
    watch_to_end(ctx, operator, result["rollout_id"], watching)


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


def watch_to_end(ctx: typer.Context, operator: Operator, rollout_id: str, watching: Watching) -> NoReturn:
    console = stderr()
    with ProgressView(console, enabled=not watching.quiet) as view:
        operator.watch(
            rollout_id,
            interval=watching.interval,
            timeout=watching.timeout,
            on_progress=view.update,
            sleep=cli_context(ctx).sleep,
        )
    document = rollout_document(operator.view(rollout_id))
    if watching.json_output:
        print_json(document)
    else:
        show(stdout(), summary_renderables(document))
    exit_with(document["exit_code"])


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


def _print_yaml(document: Any) -> None:
    import yaml

    text = yaml.safe_dump(json.loads(json.dumps(document, default=str)), sort_keys=False, allow_unicode=True)
    sys.stdout.write(text)
    sys.stdout.flush()


@stack_options()
def status(
    rollout_id: Annotated[str, typer.Argument(help="Rollout ID (from start or list).", show_default=False)],
    output: Annotated[
        OutputFormat | None,
        typer.Option("--output", "-o", case_sensitive=False, help="table (default), json or yaml."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Same as --output json.")] = False,
    failed_limit: Annotated[int, typer.Option("--failed", min=0, help="List at most this many failed nodes.")] = 50,
    *,
    deployment: Deployment,
) -> None:
    """Show a rollout: state, counts by status, waves, budget, failed nodes (failures first)."""
    if json_output and output not in (None, OutputFormat.JSON):
        raise CliError(ExitCode.USAGE, f"--json and --output {output.value} ask for two formats: give one")
    chosen = OutputFormat.JSON if json_output else output or OutputFormat.TABLE
    operator = connect(deployment, needs=("table",))
    document = rollout_document(operator.view(rollout_id), failed_limit=failed_limit)
    if chosen is OutputFormat.JSON:
        print_json(document)
    elif chosen is OutputFormat.YAML:
        _print_yaml(document)
    else:
        show(stdout(), summary_renderables(document))


@stack_options()
def report(
    ctx: typer.Context,
    rollout_id: Annotated[str, typer.Argument(help="Rollout ID (from start or list).", show_default=False)],
    html_file: Annotated[
        Path | None, typer.Option("--html", metavar="FILE", help="Write the self-contained HTML report here.")
    ] = None,
    json_output: JsonOpt = False,
    *,
    deployment: Deployment,
) -> None:
    """The report of a rollout in the deployed ledger, as HTML (--html FILE) and/or JSON (--json).

    The page simulate writes: timeline, wave verdicts, budget, failures first with links to their output.
    """
    if html_file is None and not json_output:
        raise CliError(ExitCode.USAGE, "say what to write: --html FILE, --json, or both")
    check_report_path(html_file)
    operator = connect(deployment, needs=("table",))
    document = rollout_document(operator.view(rollout_id))
    if html_file is not None:
        write_report(html_file, document)
        note(f"report written to {html_file}")
    if json_output:
        print_json(document)


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
    operator = connect(deployment, needs=("table",))
    watch_to_end(ctx, operator, rollout_id, watching)


@stack_options(operator_url=True)
def cancel(
    rollout_id: RolloutIdArg,
    reason: Annotated[str, typer.Option(help="Recorded on the rollout.")] = "cancelled by operator",
    json_output: JsonOpt = False,
    *,
    deployment: Deployment,
) -> None:
    """Cancel a rollout (a signed request to the operator URL): no new wave or chunk; in-flight commands are
    cancelled. Who cancelled is recorded."""
    operator = connect(deployment, needs=("operator_url",), optional=("table",))
    result = operator.cancel(rollout_id, reason)
    if json_output:
        print_json(result)
        return
    state = str(result.get("state", ""))
    line = Text(f"rollout {result.get('rollout_id', rollout_id)} ")
    line.append(state, style=STATE_STYLES.get(state, ""))
    if result.get("reason"):
        line.append(f": {result['reason']}")
    stdout().print(line)
    if result.get("already_ended"):
        note("the rollout had already ended: nothing to cancel")


@stack_options()
def list_rollouts(
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
    operator = connect(deployment, needs=("table",))
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
        print_json(rows)
        return
    if not rows:
        note("no rollout found")
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


@stack_options()
def history(
    instance_id: Annotated[str, typer.Argument(help="Managed node ID (i-... or mi-...).", show_default=False)],
    limit: LimitOpt = 100,
    json_output: JsonOpt = False,
    *,
    deployment: Deployment,
) -> None:
    """Every rollout that touched a node, newest first, with its invocation status."""

    if not re.fullmatch(r"(i-(\w{8}|\w{17})|mi-\w{17})", instance_id):
        raise CliError(ExitCode.USAGE, f"{instance_id!r} is not a managed node ID (i-... or mi-...)")
    operator = connect(deployment, needs=("table",))
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
        print_json({"instance_id": instance_id, "invocations": rows})
        return
    if not rows:
        note(f"no rollout has touched {instance_id}")
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
