"""Reading a spec from a file or standard input, and turning every problem with it into lines that name the file."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetwave.core.spec import (
    MAX_SPEC_BYTES,
    Marks,
    RolloutSpec,
    SpecError,
    SpecLoadError,
    SpecProblem,
    check_size,
    place_problems,
    read_spec,
)
from fleetwave.errors import SpecRejectedError

from fleetwave_local.cli.errors import CliError, ExitCode


@dataclass(frozen=True)
class LoadedSpec:
    spec: RolloutSpec
    source: str
    marks: Marks | None = None  # where each value is written: problems found later are placed at their line


def read_spec_text(path: str) -> tuple[str, str]:
    """(text, source name) of a spec file, or of standard input for ``-``. A file over the size limit is refused
    after reading only its beginning, with the line and column where the limit is passed."""
    if path == "-":
        return sys.stdin.read(), "<stdin>"
    file = Path(path)
    if not file.exists():
        raise CliError(ExitCode.NO_INPUT, f"{path}: no such file")
    if file.is_dir():
        raise CliError(ExitCode.NO_INPUT, f"{path}: is a directory, not a spec file")
    try:
        size = file.stat().st_size
        with file.open("rb") as stream:
            data = stream.read(MAX_SPEC_BYTES + 1)
        if size > MAX_SPEC_BYTES:
            _refuse_size(data[:MAX_SPEC_BYTES].decode("utf-8", errors="ignore"), size, path)
        return data.decode("utf-8"), path
    except PermissionError:
        raise CliError(ExitCode.NO_INPUT, f"{path}: permission denied") from None
    except UnicodeDecodeError:
        raise CliError(ExitCode.DATA_ERROR, f"{path}: not a UTF-8 text file") from None
    except OSError as error:
        raise CliError(ExitCode.NO_INPUT, f"{path}: {error.strerror or error}") from None


def _refuse_size(beginning: str, size: int, source: str) -> None:
    try:
        check_size(beginning, size=size)
    except SpecLoadError as error:
        found = error.problem
        problem = SpecProblem(found.path, found.rule, found.line, found.column, source)
        raise CliError(ExitCode.DATA_ERROR, str(problem), problems=[problem]) from None


def spec_problems(problems: Iterable[str], source: str) -> list[str]:
    """Prefix each problem with the file it is about (YAML errors already name it)."""
    return [problem if problem.startswith(f"{source}:") else f"{source}: {problem}" for problem in problems]


def load_spec(path: str) -> LoadedSpec:
    """Read and validate a spec file; every problem becomes one line of a CliError (exit 65)."""
    text, source = read_spec_text(path)
    try:
        spec, marks = read_spec(text, source=source)
    except SpecError as error:
        lines = spec_problems(error.problems, source)
        raise CliError(ExitCode.DATA_ERROR, lines[0], lines=lines, problems=error.details) from None
    return LoadedSpec(spec=spec, source=source, marks=marks)


def _placed(problems: list[str], loaded: LoadedSpec) -> CliError:
    """Exit 65 with problems given as ``path: rule`` text, each placed at its field's line and column."""
    if loaded.marks is None:
        lines = spec_problems(problems, loaded.source)
        return CliError(ExitCode.DATA_ERROR, lines[0], lines=lines)
    placed = place_problems(problems, loaded.marks, loaded.source)
    return CliError(ExitCode.DATA_ERROR, str(placed[0]), lines=[str(p) for p in placed], problems=placed)


def check_started(result: Mapping[str, Any], loaded: LoadedSpec) -> None:
    """Raise the CliError for a start_rollout answer that started nothing: a rejection (exit 65) or a start that
    may not happen now, e.g. a blackout window or another rollout of the spec still running (exit 75)."""
    source = loaded.source
    if result.get("rejected"):
        raise _placed(list(result.get("problems", [])) or ["rejected"], loaded)
    if result.get("skipped") is True:
        raise CliError(
            ExitCode.TEMP_FAILURE,
            f"{source}: {result.get('spec_name', 'the spec')} not started ({result.get('kind', '?')}): "
            f"{result.get('reason', '')}",
        )


def rejected(error: SpecRejectedError, loaded: LoadedSpec) -> CliError:
    """The CliError (exit 65) for a spec that start_rollout, or a plan, rejected: each problem at its line."""
    return _placed(error.problems, loaded)
