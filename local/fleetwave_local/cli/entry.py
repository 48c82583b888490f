"""The ``fleetwave`` command line: the Typer app, its commands in order, and ``run``/``main``.

Local commands (no AWS account needed): ``simulate``, ``plan --simulate``, ``validate``, ``schema``, ``init``.
Operator commands (a deployed stack, or any endpoint through ``--endpoint-url``): ``start``, ``status``, ``report``,
``watch``, ``cancel``, ``list``, ``history``, and ``plan`` without ``--simulate``. Shell completion:
``--install-completion`` / ``--show-completion`` (Typer's).

Exit codes: 0 SUCCEEDED, 1 COMPLETED_WITH_ERRORS, 2 HALTED/CANCELLED/FAILED, 64 and up as sysexits(3) (see
``ExitCode``). Errors are one line each on stderr, never a traceback (``FLEETWAVE_DEBUG=1`` shows it).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Annotated, NoReturn

import typer
from fleetwave.errors import NotFoundError, SpecRejectedError

from fleetwave_local.cli.context import CliContext
from fleetwave_local.cli.errors import CliError, ExitCode
from fleetwave_local.cli.local_commands import init, plan, schema, simulate, validate
from fleetwave_local.cli.operator_commands import cancel, history, list_rollouts, report, start, status, watch

HELP = """Wave-based, error-budgeted SSM Run Command rollouts.

Try it with no AWS account: [bold]fleetwave simulate examples/patching.yaml --fleet 60 --seed 7[/bold]"""

app = typer.Typer(
    name="fleetwave",
    help=HELP,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)

# The order of --help: the local commands, then the operator commands.
app.command()(simulate)
app.command()(validate)
app.command()(schema)
app.command()(plan)
app.command()(init)
app.command()(start)
app.command()(status)
app.command()(report)
app.command()(watch)
app.command()(cancel)
app.command("list")(list_rollouts)
app.command()(history)


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
    sleep: Callable[[float], None] | None = None,
) -> int:
    """Run the CLI and return its exit code (tests call this; ``main`` exits with it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        app(args=["--help"], prog_name="fleetwave", standalone_mode=False)
        return int(ExitCode.USAGE)
    context = CliContext(sleep=sleep or time.sleep)
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
    except SystemExit as exit_:  # --show-completion and --install-completion exit when done
        return int(exit_.code) if isinstance(exit_.code, int) else 0
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
