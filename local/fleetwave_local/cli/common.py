"""What every fleetwave command shares: exit codes, the one error type, spec loading and the result document.

The result document (``rollout_document``) is the JSON that ``simulate --json``, ``status --json`` and
``watch --json`` print, and what the HTML report and the summary table are drawn from; docs/cli.md describes it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import Any

from fleetwave.core.model import Rollout, RolloutState, SkippedTarget, Wave
from fleetwave.core.spec import RolloutSpec, SpecError, load_spec_text
from fleetwave.core.status import InvocationStatus
from fleetwave.core.summary import FailedInvocation

DOCUMENT_SCHEMA = "fleetwave.rollout/v1"


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

    def __init__(self, code: ExitCode, message: str, *, lines: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.lines = list(lines)


class StderrProxy:
    """A stream that always writes to the *current* sys.stderr (pytest swaps it per test)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


# ---------------------------------------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class LoadedSpec:
    spec: RolloutSpec
    source: str


def read_spec_text(path: str) -> tuple[str, str]:
    """(text, source name) of a spec file, or of standard input for ``-``."""
    if path == "-":
        return sys.stdin.read(), "<stdin>"
    file = Path(path)
    if not file.exists():
        raise CliError(ExitCode.NO_INPUT, f"{path}: no such file")
    if file.is_dir():
        raise CliError(ExitCode.NO_INPUT, f"{path}: is a directory, not a spec file")
    try:
        return file.read_text(encoding="utf-8"), path
    except PermissionError:
        raise CliError(ExitCode.NO_INPUT, f"{path}: permission denied") from None
    except UnicodeDecodeError:
        raise CliError(ExitCode.DATA_ERROR, f"{path}: not a UTF-8 text file") from None
    except OSError as error:
        raise CliError(ExitCode.NO_INPUT, f"{path}: {error.strerror or error}") from None


def spec_problems(problems: Iterable[str], source: str) -> list[str]:
    """Prefix each problem with the file it is about (YAML errors already name it)."""
    return [problem if problem.startswith(f"{source}:") else f"{source}: {problem}" for problem in problems]


def load_spec(path: str) -> LoadedSpec:
    """Read and validate a spec file; every problem becomes one line of a CliError (exit 65)."""
    text, source = read_spec_text(path)
    try:
        spec = load_spec_text(text, source=source)
    except SpecError as error:
        lines = spec_problems(error.problems, source)
        raise CliError(ExitCode.DATA_ERROR, lines[0], lines=lines) from None
    return LoadedSpec(spec=spec, source=source)


def check_started(result: Mapping[str, Any], source: str) -> None:
    """Raise the CliError for a start_rollout answer that started nothing: a rejection (exit 65) or a start that
    may not happen now, e.g. a blackout window or another rollout of the spec still running (exit 75)."""
    if result.get("rejected"):
        lines = spec_problems(list(result.get("problems", [])) or ["rejected"], source)
        raise CliError(ExitCode.DATA_ERROR, lines[0], lines=lines)
    if result.get("skipped") is True:
        raise CliError(
            ExitCode.TEMP_FAILURE,
            f"{source}: {result.get('spec_name', 'the spec')} not started ({result.get('kind', '?')}): "
            f"{result.get('reason', '')}",
        )


# ---------------------------------------------------------------------------------------------- result document
def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def all_counts(counts: Mapping[InvocationStatus, int]) -> dict[str, int]:
    """Every status, zeros included, in the order SSM moves through them: consumers never miss a key."""
    return {status.value: int(counts.get(status, 0)) for status in InvocationStatus}


def wave_document(wave: Wave) -> dict[str, Any]:
    return {
        "index": wave.index,
        "size": wave.size,
        "max_concurrency": wave.max_concurrency,
        "dispatched": wave.dispatched,
        "state": wave.state.value,
        "counts": all_counts(wave.counts),
        "started_at": iso(wave.started_at),
        "completed_at": iso(wave.completed_at),
    }


def failed_document(item: FailedInvocation) -> dict[str, Any]:
    return {
        "instance_id": item.instance_id,
        "wave": item.wave,
        "status": item.status.value,
        "status_details": item.status_details,
        "command_id": item.command_id,
        "output_url": item.output_url,
    }


def api_calls_document(calls: Mapping[str, int]) -> dict[str, Any]:
    """``{"total": n, "by_service": {"ssm": {"SendCommand": 4, ...}, ...}}`` from ``service:Operation`` counts."""
    by_service: dict[str, dict[str, int]] = {}
    for key in sorted(calls):
        service, _, operation = key.partition(":")
        by_service.setdefault(service, {})[operation] = int(calls[key])
    return {"total": sum(int(n) for n in calls.values()), "by_service": by_service}


@dataclass
class RolloutView:
    """Everything read about one rollout, before it becomes the JSON document."""

    rollout: Rollout
    waves: list[Wave]
    skipped: list[SkippedTarget] = field(default_factory=list)
    failed: list[FailedInvocation] = field(default_factory=list)


def rollout_document(view: RolloutView, *, failed_limit: int | None = None) -> dict[str, Any]:
    rollout = view.rollout
    code = exit_code_for(rollout.state)
    duration = (rollout.ended_at - rollout.started_at).total_seconds() if rollout.ended_at else None
    failed = view.failed if failed_limit is None else view.failed[:failed_limit]
    return {
        "schema": DOCUMENT_SCHEMA,
        "rollout_id": rollout.rollout_id,
        "spec": rollout.spec_name,
        "state": rollout.state.value,
        "reason": rollout.reason,
        "exit_code": int(code) if code is not None else None,
        "document": {
            "name": rollout.document_name,
            "version": rollout.document_version,
            "hash": rollout.document_hash,
        },
        "trigger": rollout.trigger,
        "target_count": rollout.target_count,
        "skipped_count": rollout.skipped_count,
        "skipped": [{"instance_id": s.instance_id, "reason": s.reason} for s in view.skipped],
        "counts": all_counts(rollout.counts),
        "current_wave": rollout.current_wave,
        "wave_count": rollout.wave_count,
        "waves": [wave_document(wave) for wave in sorted(view.waves, key=lambda w: w.index)],
        "budget": {
            "allowed": rollout.budget_allowed,
            "used": rollout.budget_used,
            "remaining": rollout.remaining_budget,
            "statuses": sorted(status.value for status in rollout.budget_statuses),
        },
        "failed_total": len(view.failed),
        "failed_instances": [failed_document(item) for item in failed],
        "started_at": iso(rollout.started_at),
        "ended_at": iso(rollout.ended_at),
        "duration_seconds": duration,
    }


# ------------------------------------------------------------------------------------------------- formatting
def format_duration(seconds: float | None) -> str:
    """``1h52m06s``, ``7m03s``, ``45s``."""
    if seconds is None:
        return "-"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def format_counts(counts: Mapping[str, int]) -> str:
    """Non-zero statuses, e.g. ``Success 29, Failed 1``; ``-`` when nothing was recorded."""
    parts = [f"{status} {n}" for status, n in counts.items() if n]
    return ", ".join(parts) or "-"
