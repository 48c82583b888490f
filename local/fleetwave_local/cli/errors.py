"""The command line's exit codes (a rollout's outcome below 64, sysexits(3) from 64 on) and its one error type."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import IntEnum
from typing import NoReturn

import typer
from fleetwave.core.model import RolloutState
from fleetwave.core.spec import SpecProblem


class ExitCode(IntEnum):
    """Exit codes: the rollout's outcome below 64, sysexits(3) from 64 on."""

    SUCCEEDED = 0
    COMPLETED_WITH_ERRORS = 1
    STOPPED = 2  # HALTED, CANCELLED or FAILED
    USAGE = 64  # EX_USAGE: bad command line
    DATA_ERROR = 65  # EX_DATAERR: the spec is invalid or was rejected (document, targets, wave sizes)
    NO_INPUT = 66  # EX_NOINPUT: the spec file, or the rollout named, does not exist
    UNAVAILABLE = 69  # EX_UNAVAILABLE: AWS unreachable, or the stack, table or function is missing
    SOFTWARE = 70  # EX_SOFTWARE: a fleetwave function failed, or an internal error
    CANT_CREATE = 73  # EX_CANTCREAT: the report file cannot be written
    TEMP_FAILURE = 75  # EX_TEMPFAIL: `watch --timeout` ran out before the rollout ended
    NO_PERMISSION = 77  # EX_NOPERM: AWS denied the call
    CONFIG = 78  # EX_CONFIG: no AWS region, unknown profile
    INTERRUPTED = 130  # Ctrl-C


STATE_EXIT_CODES: Mapping[RolloutState, ExitCode] = {
    RolloutState.SUCCEEDED: ExitCode.SUCCEEDED,
    RolloutState.COMPLETED_WITH_ERRORS: ExitCode.COMPLETED_WITH_ERRORS,
    RolloutState.HALTED: ExitCode.STOPPED,
    RolloutState.CANCELLED: ExitCode.STOPPED,
    RolloutState.FAILED: ExitCode.STOPPED,
}


def exit_code_for(state: RolloutState) -> ExitCode | None:
    """The exit code of a rollout that ended in ``state``; None while it is still active."""
    return STATE_EXIT_CODES.get(state)


class CliError(Exception):
    """A failure the user can act on: printed as ``fleetwave: <line>`` (one line per problem), never a traceback."""

    def __init__(
        self, code: ExitCode, message: str, *, lines: Sequence[str] = (), problems: Sequence[SpecProblem] = ()
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.lines = list(lines)
        self.problems = list(problems)  # a spec's problems, for ``validate --json``


def exit_with(code: ExitCode | int) -> NoReturn:
    """End the command with this exit code."""
    raise typer.Exit(int(code))
