"""Reading a spec from a file or standard input, and turning every problem with it into lines that name the file."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetwave.core.spec import RolloutSpec, SpecError, load_spec_text
from fleetwave.errors import SpecRejectedError

from fleetwave_local.cli.errors import CliError, ExitCode


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


def rejected(error: SpecRejectedError, source: str) -> CliError:
    """The CliError (exit 65) for a spec that start_rollout, or a plan, rejected."""
    lines = spec_problems(error.problems, source)
    return CliError(ExitCode.DATA_ERROR, lines[0], lines=lines)
