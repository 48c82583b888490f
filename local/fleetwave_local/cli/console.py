"""Where the commands write: the result on stdout (tables, or one JSON document), progress and notes on stderr."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.text import Text


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


def show(console: Console, renderables: Sequence[Any]) -> None:
    for renderable in renderables:
        console.print(renderable)


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def note(message: str) -> None:
    stderr().print(Text(message, style="dim"), soft_wrap=True)
