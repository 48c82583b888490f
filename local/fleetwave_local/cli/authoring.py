"""Writing specs: ``validate`` (and its JSON), the schedule's next runs, ``init``'s starter specs, and the check that
refuses options which do nothing in the mode a command runs in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from fleetwave.core.spec import Marks, RolloutSpec, SpecError, SpecProblem, format_seconds, read_spec
from fleetwave.core.spec.schedule import Rate

from fleetwave_local.cli.errors import CliError, ExitCode
from fleetwave_local.cli.specs import read_spec_text

VALIDATION_SCHEMA = "fleetwave.validation/v1"


# ------------------------------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class SpecRead:
    """A spec file read and validated: the spec (None when it has problems), where its values are, its problems."""

    source: str
    spec: RolloutSpec | None
    marks: Marks | None
    problems: list[SpecProblem]


def read_spec_file(path: str) -> SpecRead:
    """Read and validate; problems are returned, not raised (a missing file still raises CliError)."""
    try:
        text, source = read_spec_text(path)
    except CliError as error:
        if error.problems:
            return SpecRead(path, None, None, list(error.problems))
        raise
    try:
        spec, marks = read_spec(text, source=source)
    except SpecError as error:
        return SpecRead(source, None, None, list(error.details))
    return SpecRead(source, spec, marks, [])


# ------------------------------------------------------------------------------------------------- schedules
def schedule_document(spec: RolloutSpec, now: datetime) -> dict[str, Any] | None:
    """The spec's schedule with its next three runs (ISO 8601 in the schedule's time zone), or None."""
    schedule = spec.schedule
    if schedule is None:
        return None
    parsed = schedule.parsed
    return {
        "expression": schedule.expression,
        "timezone": schedule.timezone,
        "next_runs": [run.isoformat() for run in schedule.next_runs(now)],
        # A rate counts from when the schedule is created: its runs are those of a deployment now.
        "every_seconds": parsed.seconds if isinstance(parsed, Rate) else None,
    }


def _run_text(iso: str) -> str:
    """``2026-01-13T03:00:00+01:00`` -> ``2026-01-13 03:00 (UTC+01:00)``."""
    moment = datetime.fromisoformat(iso)
    offset = moment.strftime("%z")
    return f"{moment:%Y-%m-%d %H:%M} (UTC{offset[:3]}:{offset[3:]})"


def schedule_line(schedule: dict[str, Any]) -> str:
    """``schedule cron(0 3 ? * TUE#2 *) in Europe/Paris: next runs 2026-01-13 03:00 +01:00, ...``."""
    runs = ", ".join(_run_text(run) for run in schedule["next_runs"])
    head = f"schedule {schedule['expression']} in {schedule['timezone']}"
    if schedule.get("every_seconds"):
        every = format_seconds(int(schedule["every_seconds"]))
        return f"{head}: runs when deployed, then every {every}; deployed now: {runs}"
    return f"{head}: next runs {runs}" if runs else f"{head}: no run time from now on"


def schedule_problems(read: SpecRead, now: datetime) -> list[SpecProblem]:
    """A schedule that will never run again (its years have passed) is a problem of the spec, placed at its cron."""
    spec = read.spec
    if spec is None or spec.schedule is None or spec.schedule.cron is None or spec.schedule.next_runs(now, 1):
        return []
    place = read.marks.locate(("schedule", "cron")) if read.marks is not None else None
    line, column = place if place is not None else (None, None)
    return [
        SpecProblem(
            "schedule.cron",
            f"{spec.schedule.cron!r} has no run time after {now:%Y-%m-%d %H:%M} UTC (its years have passed)",
            line,
            column,
            read.source,
        )
    ]


# ------------------------------------------------------------------------------------------------- validate
def validation_document(read: SpecRead, now: datetime) -> dict[str, Any]:
    """``validate --json``: ``valid``, the problems as objects (path, line, column, rule), and for a valid spec
    what it resolves to and its schedule's next runs."""
    spec = read.spec if not read.problems else None
    document: dict[str, Any] = {
        "schema": VALIDATION_SCHEMA,
        "source": read.source,
        "valid": spec is not None,
        "spec": spec.name if spec is not None else None,
        "problems": [problem.to_json() for problem in read.problems],
    }
    if spec is not None:
        dumped = spec.model_dump(mode="json")
        document["summary"] = {
            "document": {"name": spec.document.name, "version": spec.document.version},
            "targets": {"tags": spec.targets.tags, "instance_ids": len(spec.targets.instance_ids)},
            "waves": dumped["waves"],
            "max_concurrency": dumped["max_concurrency"],
            "error_budget": dumped["error_budget"]["allowed"],
            "bake_time_seconds": spec.bake_time,
            "timeout_seconds": spec.timeout_seconds,
            "alarm_gates": list(spec.alarm_gates),
        }
        document["schedule"] = schedule_document(spec, now)
    return document


def summary_line(read: SpecRead) -> str:
    spec = read.spec
    assert spec is not None
    targets = []
    if spec.targets.tags:
        targets.append("tags " + ", ".join(f"{k}={'|'.join(v)}" for k, v in spec.targets.tags.items()))
    if spec.targets.instance_ids:
        targets.append(f"{len(spec.targets.instance_ids)} instance IDs")
    return (
        f"{read.source}: OK: {spec.name}: {spec.document.name} on {' and '.join(targets)}; "
        f"waves {', '.join(str(w) for w in spec.waves)}; budget {spec.error_budget.allowed}; "
        f"bake {format_seconds(spec.bake_time) if spec.bake_time else 'none'}"
    )


# ------------------------------------------------------------------------------------------- unused options
def refuse_unused(ctx: typer.Context, names: Sequence[str], why: str) -> None:
    """Refuse options the user gave that do nothing in this mode (exit 64), e.g. ``plan --fleet`` without
    ``--simulate``. ``names`` are parameter names; an option counts as given when it came from the command line
    or the environment. ``why`` completes "<options>: ..."; ``{it}`` in it becomes "it" or "them"."""
    given = []
    for name in names:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name in {"COMMANDLINE", "ENVIRONMENT"}:
            option = next(p for p in ctx.command.params if p.name == name)
            given.append(option.opts[0])
    if given:
        raise CliError(ExitCode.USAGE, f"{', '.join(given)}: " + why.format(it="it" if len(given) == 1 else "them"))


# --------------------------------------------------------------------------------------------------- init
COMMAND_STARTER = """\
# A fleetwave rollout spec (kind: command): one SSM Run Command document, sent wave by wave.
#
#   fleetwave validate {file}                     every problem with its line, column and field
#   fleetwave simulate {file} --fleet 20          the whole rollout on a simulated fleet, no AWS needed
#   fleetwave plan {file}                         the targets in your account, the waves; sends nothing
#   fleetwave start {file} --watch                start it on the deployed stack and follow it
#
# Editors: `fleetwave schema` prints the JSON Schema of a spec (examples/rollout-spec.schema.json).
name: my-rollout                      # letters, digits, '.', '_' and '-'; at most 64
description: What this rollout changes, and why.

document:
  name: AWS-RunShellScript            # an SSM Command document (name or ARN) the stack allows
  version: $DEFAULT                   # $DEFAULT, $LATEST or a number; pinned (with its hash) at start
  parameters:                         # checked against the document's own parameters
    commands:
      - echo "hello from fleetwave"

targets:                              # online managed nodes only; the others are reported as skipped
  tags:                               # EC2 tags: every key must match, any of a key's values
    Role: [web]
  # instance_ids: [i-0123456789abcdef0]   # and/or managed node IDs (the union of both)

waves: [1, "10%", "50%", "100%"]      # cumulative: a one-node canary, then up to 10%, 50%, then the rest
max_concurrency: "20%"                # per wave: at most this many nodes at once (a count or a percentage)
error_budget: "2%"                    # errors tolerated across the whole rollout; one more halts it
bake_time: 15m                        # wait between waves (seconds, or s/m/h/d; at most 7d)
timeout_seconds: 600                  # SendCommand's delivery timeout: 30 seconds to 30 days

# alarm_gates: [my-service-errors]    # a CloudWatch alarm in ALARM halts the rollout
# output: {{s3_bucket: my-ssm-output, s3_prefix: fleetwave/}}   # where SSM writes each node's output
# schedule: {{cron: "0 3 ? * TUE#2 *", timezone: Europe/Paris}}   # EventBridge Scheduler, once deployed
# blackout_windows: [{{start: "22:00", end: "06:00", days: [FRI, SAT]}}]
"""

# One starter per kind of rollout this fleetwave can run.
STARTERS: dict[str, str] = {"command": COMMAND_STARTER}


def starter_spec(kind: str, file: str) -> str:
    return STARTERS[kind].format(file=file)


def write_starter(kind: str, path: Path | None, *, force: bool) -> str:
    """Write the starter spec of ``kind`` to ``path`` (None: return it for standard output)."""
    text = starter_spec(kind, str(path) if path is not None else "rollout.yaml")
    if path is None:
        return text
    if path.is_dir():
        raise CliError(ExitCode.CANT_CREATE, f"{path}: is a directory")
    if path.exists() and not force:
        raise CliError(ExitCode.CANT_CREATE, f"{path}: exists; pass --force to replace it")
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise CliError(ExitCode.CANT_CREATE, f"{path}: cannot write: {error.strerror or error}") from None
    return text
