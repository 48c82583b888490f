"""The README and the docs show commands that exist, with options that exist, and link to files that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from cli_support import REPO
from fleetwave_local.cli import app

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
ROOT_OPTIONS = {"--help", "-h", "--version", "--install-completion", "--show-completion"}


def command_options() -> dict[str, set[str]]:
    group = typer.main.get_command(app)
    commands = group.commands  # type: ignore[attr-defined]
    return {
        name: {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)} | {"--help", "-h"}
        for name, command in commands.items()
    }


def uses(page: Path) -> list[tuple[str, list[str]]]:
    """Every ``fleetwave ...`` command line of the page: lines of its code blocks and inline code that start with
    ``fleetwave``; the command ("" for options of fleetwave itself) and the options passed."""
    text = page.read_text(encoding="utf-8")
    lines: list[str] = []
    fence: str | None = None  # the language of the code block we are in
    for line in text.splitlines():
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip() or "text"
        elif fence in {"bash", "sh", "console", "text"}:
            lines.append(line)
    lines += re.findall(r"`([^`\n]+)`", text)
    found = []
    for line in lines:
        words = line.split(" #")[0].split()
        if not words or words[0] != "fleetwave" or len(words) < 2:
            continue
        options = [word.split("=")[0] for word in words[1:] if word.startswith("-")]
        found.append(("" if words[1].startswith("-") else words[1], options))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_documented_commands_and_options_exist(page: Path) -> None:
    options = command_options()
    wrong = []
    for command, passed in uses(page):
        if command == "":
            wrong += [f"fleetwave {opt}" for opt in passed if opt not in ROOT_OPTIONS]
            continue
        if command not in options:
            wrong.append(f"fleetwave {command}: no such command")
            continue
        wrong += [f"fleetwave {command} {opt}: no such option" for opt in passed if opt not in options[command]]
    assert wrong == []


def test_the_docs_show_the_new_commands() -> None:
    shown = {command for page in PAGES for command, _ in uses(page)}
    assert {"validate", "plan", "simulate", "start", "status", "report", "cancel", "init", "schema"} <= shown


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_and_repository_paths_exist(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    links = re.findall(r"\]\((?!https?://|#)([^)#]+)", text)
    paths = re.findall(r"`((?:examples|docs|specs|local|functions|stacks|tests|benchmarks)/[\w./-]+)`", text)
    missing = [p for p in links if not (page.parent / p).exists()]
    missing += [p for p in paths if "*" not in p and not (REPO / p).exists()]
    assert missing == []
    assert "../shared" not in text and "shared/seeds" not in text
