"""Terminal output: live progress of a rollout (simulate, watch) and the summary tables (simulate, status, plan).

Everything here writes to the console it is given; the commands give it stderr for progress, so ``--json`` keeps
stdout for the one JSON document.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

from fleetwave.core.model import Rollout, Wave
from fleetwave.core.status import InvocationStatus
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from fleetwave_local.cli.document import all_counts, format_counts, format_duration

STATUS_STYLES: Mapping[str, str] = {
    InvocationStatus.PENDING.value: "blue",
    InvocationStatus.DELAYED.value: "blue",
    InvocationStatus.IN_PROGRESS.value: "cyan",
    InvocationStatus.CANCELLING.value: "bright_black",
    InvocationStatus.SUCCESS.value: "green",
    InvocationStatus.FAILED.value: "red",
    InvocationStatus.EXECUTION_TIMED_OUT.value: "magenta",
    InvocationStatus.DELIVERY_TIMED_OUT.value: "yellow",
    InvocationStatus.UNDELIVERABLE.value: "yellow",
    InvocationStatus.CANCELLED.value: "bright_black",
    InvocationStatus.TERMINATED.value: "bright_black",
    InvocationStatus.INVALID_PLATFORM.value: "yellow",
    InvocationStatus.ACCESS_DENIED.value: "red",
}
STATE_STYLES: Mapping[str, str] = {
    "SUCCEEDED": "bold green",
    "COMPLETED_WITH_ERRORS": "bold yellow",
    "HALTED": "bold red",
    "CANCELLED": "bold red",
    "FAILED": "bold red",
    "RUNNING": "bold cyan",
    "BAKING": "bold blue",
    "PENDING": "bold",
    "COMPLETE": "green",
}


def counts_text(counts: Mapping[str, int]) -> Text:
    text = Text()
    for status, n in counts.items():
        if n:
            if text:
                text.append(", ")
            text.append(f"{status} {n}", style=STATUS_STYLES.get(status, ""))
    return text or Text("-", style="dim")


def budget_text(allowed: int, used: int) -> Text:
    left = allowed - used
    style = "red" if left < 0 else ("yellow" if left == 0 and allowed else "green")
    text = Text(f"budget {used}/{allowed} used, ")
    text.append("EXCEEDED" if left < 0 else f"{left} left", style=style)
    return text


def _elapsed(rollout: Rollout, now: datetime) -> str:
    return "+" + format_duration(max(0.0, (now - rollout.started_at).total_seconds()))


class ProgressView:
    """Shows a running rollout: a live table (a bar per wave) on a terminal, one line per change elsewhere (CI).

    Use as a context manager and call ``update`` with each new reading.
    """

    def __init__(self, console: Console, *, clock_label: str = "", enabled: bool = True) -> None:
        self.console = console
        self.clock_label = clock_label
        self.enabled = enabled
        self._live: Live | None = None
        self._seen: dict[str, str] = {}

    def __enter__(self) -> ProgressView:
        if self.enabled and self.console.is_terminal:
            self._live = Live(console=self.console, auto_refresh=False, transient=False)
            self._live.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.__exit__(kind, error, trace)
            self._live = None

    def update(self, rollout: Rollout, waves: Sequence[Wave], now: datetime) -> None:
        if not self.enabled:
            return
        if self._live is not None:
            self._live.update(self.render(rollout, waves, now), refresh=True)
        else:
            self._log_changes(rollout, waves, now)

    def render(self, rollout: Rollout, waves: Sequence[Wave], now: datetime) -> RenderableType:
        header = Text()
        header.append(f"{rollout.spec_name} ", style="bold")
        header.append(f"{rollout.rollout_id}  ")
        header.append(rollout.state.value, style=STATE_STYLES.get(rollout.state.value, ""))
        header.append(f"  {_elapsed(rollout, now)}{self.clock_label}  ")
        header.append_text(budget_text(rollout.budget_allowed, rollout.budget_used))
        if rollout.reason:
            header.append(f"\n{rollout.reason}", style="italic")
        table = Table(box=None, pad_edge=False, show_edge=False)
        table.add_column("wave", justify="right")
        table.add_column("size", justify="right")
        table.add_column("progress", width=30)
        table.add_column("done", justify="right")
        table.add_column("by status")
        table.add_column("state")
        for wave in sorted(waves, key=lambda w: w.index):
            table.add_row(
                str(wave.index),
                str(wave.size),
                ProgressBar(total=max(wave.size, 1), completed=wave.terminal_count, width=30),
                f"{wave.terminal_count}/{wave.size}",
                counts_text(all_counts(wave.counts)),
                Text(wave.state.value, style=STATE_STYLES.get(wave.state.value, "")),
            )
        return Group(header, table)

    def _log_changes(self, rollout: Rollout, waves: Sequence[Wave], now: datetime) -> None:
        stamp = f"[{_elapsed(rollout, now)}{self.clock_label}]"
        for wave in sorted(waves, key=lambda w: w.index):
            if self._seen.get(f"wave{wave.index}") != wave.state.value:
                self._seen[f"wave{wave.index}"] = wave.state.value
                if wave.state.value == "PENDING":
                    continue
                counts = format_counts(all_counts(wave.counts))
                nodes = "node" if wave.size == 1 else "nodes"
                self._line(
                    f"{stamp} wave {wave.index} ({wave.size} {nodes}) {wave.state.value}: {counts}; "
                    f"budget {rollout.budget_used}/{rollout.budget_allowed} used"
                )
        key = f"{rollout.state.value}:{rollout.current_wave}"
        if self._seen.get("rollout") != key:
            self._seen["rollout"] = key
            line = f"{stamp} rollout {rollout.rollout_id} {rollout.state.value}"
            if rollout.state.value == "BAKING" and rollout.bake_until:
                line += f" until +{format_duration((rollout.bake_until - rollout.started_at).total_seconds())}"
            if rollout.reason:
                line += f": {rollout.reason}"
            self._line(line)

    def _line(self, line: str) -> None:
        self.console.print(line, highlight=False, markup=False, soft_wrap=True)


# ----------------------------------------------------------------------------------------------------- summaries
def _offset(started: str | None, moment: str | None) -> str:
    if not started or not moment:
        return "-"
    start = datetime.fromisoformat(started.replace("Z", "+00:00"))
    at = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return "+" + format_duration((at - start).total_seconds())


def summary_renderables(doc: Mapping[str, Any], *, failed_shown: int = 10) -> list[RenderableType]:
    """The end-of-rollout summary: waves table, totals, budget, failures (first few), AWS calls."""
    out: list[RenderableType] = []
    table = Table(title=f"{doc['spec']} {doc['rollout_id']}", title_justify="left")
    for name in ("wave", "size", "sent", "Success", "Failed", "TimedOut", "other", "state", "start", "end"):
        table.add_column(name, justify="left" if name in ("state", "other") else "right")
    timed_out = ("ExecutionTimedOut", "DeliveryTimedOut")
    for wave in doc["waves"]:
        counts = wave["counts"]
        other = {k: v for k, v in counts.items() if k not in ("Success", "Failed", *timed_out)}
        table.add_row(
            str(wave["index"]),
            str(wave["size"]),
            str(wave["dispatched"]),
            str(counts["Success"]),
            str(counts["Failed"]),
            str(sum(counts[k] for k in timed_out)),
            format_counts(other),
            Text(wave["state"], style=STATE_STYLES.get(wave["state"], "")),
            _offset(doc["started_at"], wave["started_at"]),
            _offset(doc["started_at"], wave["completed_at"]),
        )
    out.append(table)
    state = Text("state ")
    state.append(doc["state"], style=STATE_STYLES.get(doc["state"], ""))
    if doc.get("reason"):
        state.append(f" ({doc['reason']})")
    out.append(state)
    who = f"started by {doc.get('started_by') or '-'} ({doc.get('trigger') or '-'})"
    if doc.get("cancelled_by"):
        who += f", cancelled by {doc['cancelled_by']}"
    out.append(Text(who))
    succeeded = doc["counts"]["Success"]
    out.append(
        Text(
            f"targets {doc['target_count']} (skipped {doc['skipped_count']}), succeeded {succeeded}, "
            f"not succeeded {doc['failed_total']}"
        )
    )
    budget = doc["budget"]
    budget_line = budget_text(budget["allowed"], budget["used"])
    budget_line.append(f" (counts {', '.join(budget['statuses'])})")
    out.append(budget_line)
    duration = doc.get("virtual_duration_seconds")
    if duration is not None:
        rollout_time = format_duration(doc["duration_seconds"])
        out.append(Text(f"virtual time {format_duration(duration)} (rollout {rollout_time})"))
    elif doc.get("duration_seconds") is not None:
        out.append(Text(f"duration {format_duration(doc['duration_seconds'])}"))
    if doc["failed_instances"]:
        failed = Table(title=f"not succeeded ({doc['failed_total']})", title_justify="left")
        for name in ("instance", "wave", "status", "details"):
            failed.add_column(name)
        for item in doc["failed_instances"][:failed_shown]:
            failed.add_row(
                item["instance_id"],
                str(item["wave"]),
                Text(item["status"], style=STATUS_STYLES.get(item["status"], "")),
                item["status_details"],
            )
        if doc["failed_total"] > failed_shown:
            failed.caption = f"{doc['failed_total'] - failed_shown} more (--json or --report lists them all)"
        out.append(failed)
    if doc["skipped"]:
        shown = ", ".join(f"{s['instance_id']} ({s['reason']})" for s in doc["skipped"][:5])
        more = f" and {len(doc['skipped']) - 5} more" if len(doc["skipped"]) > 5 else ""
        out.append(Text(f"skipped: {shown}{more}"))
    calls = doc.get("api_calls")
    if calls:
        top: list[tuple[int, str]] = []
        for service, operations in calls["by_service"].items():
            top.extend((n, f"{service}:{op}") for op, n in operations.items())
        top.sort(key=lambda item: (-item[0], item[1]))
        listed = ", ".join(f"{name} {n}" for n, name in top[:6])
        out.append(Text(f"AWS API calls {calls['total']}: {listed}" + (", ..." if len(top) > 6 else "")))
    return out


def plan_renderables(doc: Mapping[str, Any], *, ids_shown: int = 3) -> list[RenderableType]:
    out: list[RenderableType] = []
    document = doc.get("document") or {}
    out.append(
        Text(
            f"{doc['spec']}: {doc['target_count']} targets in {len(doc['waves'])} waves, "
            f"document {document.get('name', '?')} version {document.get('version', '?')}, "
            f"error budget {doc['budget_allowed']}"
        )
    )
    table = Table(box=None, pad_edge=False)
    for name in ("wave", "reach", "size", "concurrency", "chunks", "targets"):
        table.add_column(name, justify="left" if name == "targets" else "right")
    for wave in doc["waves"]:
        ids = wave["instance_ids"]
        listed = ", ".join(ids[:ids_shown]) + (f" (+{len(ids) - ids_shown})" if len(ids) > ids_shown else "")
        table.add_row(
            str(wave["index"]),
            wave["mark"],
            str(wave["size"]),
            str(wave["max_concurrency"]),
            str(wave["chunks"]),
            listed,
        )
    out.append(table)
    if doc.get("schedule"):
        from fleetwave_local.cli.authoring import schedule_line

        out.append(Text(schedule_line(doc["schedule"])))
    if doc["dropped_marks"]:
        out.append(Text(f"marks that add no target (dropped): {', '.join(doc['dropped_marks'])}", style="yellow"))
    if doc["deferred"]:
        out.append(Text(f"deferred to the end (active Session Manager session): {', '.join(doc['deferred'])}"))
    if doc["skipped"]:
        skipped = Table(title=f"skipped ({len(doc['skipped'])})", title_justify="left", box=None, pad_edge=False)
        skipped.add_column("instance")
        skipped.add_column("reason")
        for item in doc["skipped"]:
            skipped.add_row(item["instance_id"], item["reason"])
        out.append(skipped)
    else:
        out.append(Text("skipped: none"))
    return out
