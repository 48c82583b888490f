"""A self-contained HTML report of one rollout, drawn from its result document (see ``document``).

One file, inline CSS and inline SVG, no script, no font or image fetched: it opens in a browser with no network.
Every piece of text from the document goes through ``html.escape`` (``cli.html``); the failures and what a halt
stopped are ``cli.failures``. The only URLs are links a person may follow to a failed node's output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from fleetwave.core.status import InvocationStatus

from fleetwave_local.cli.document import format_duration
from fleetwave_local.cli.errors import CliError, ExitCode
from fleetwave_local.cli.failures import failures_html, stopped_html, wave_verdict
from fleetwave_local.cli.html import escape, table

STATUS_COLORS: Mapping[str, str] = {
    InvocationStatus.SUCCESS.value: "#2e9e44",
    InvocationStatus.FAILED.value: "#d62f2f",
    InvocationStatus.EXECUTION_TIMED_OUT.value: "#a83cbf",
    InvocationStatus.DELIVERY_TIMED_OUT.value: "#e0a100",
    InvocationStatus.UNDELIVERABLE.value: "#c77d00",
    InvocationStatus.INVALID_PLATFORM.value: "#8a6d3b",
    InvocationStatus.ACCESS_DENIED.value: "#7a1f1f",
    InvocationStatus.CANCELLED.value: "#8c8c8c",
    InvocationStatus.TERMINATED.value: "#5f5f5f",
    InvocationStatus.CANCELLING.value: "#b0b0b0",
    InvocationStatus.IN_PROGRESS.value: "#2f7fd6",
    InvocationStatus.DELAYED.value: "#7fb2e8",
    InvocationStatus.PENDING.value: "#a9c9ee",
}
NOT_DISPATCHED = "#eeeeee"
STATE_COLORS: Mapping[str, str] = {
    "SUCCEEDED": "#2e9e44",
    "COMPLETED_WITH_ERRORS": "#d08a00",
    "HALTED": "#d62f2f",
    "CANCELLED": "#6b6b6b",
    "FAILED": "#d62f2f",
}
PHASE_COLORS: Mapping[str, str] = {
    "running": "#2f7fd6",
    "baking": "#b9a3e3",
    "halted": "#d62f2f",
    "cancelled": "#8c8c8c",
}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1040px;color:#222;
padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.25rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
.state{display:inline-block;padding:.15rem .6rem;border-radius:.3rem;color:#fff;font-weight:600}
.muted{color:#666}.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:.5rem 1.5rem;
margin:1rem 0}.facts div{border-left:3px solid #ddd;padding-left:.6rem}.facts b{display:block;font-size:1.15rem}
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{text-align:left;padding:.3rem .5rem;
border-bottom:1px solid #eee;vertical-align:top}th{background:#f6f6f6}td.num,th.num{text-align:right}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85rem}
svg{display:block;margin:.5rem 0;max-width:100%;height:auto}svg text{font-family:inherit;font-size:12px}
.legend span{display:inline-block;margin-right:1rem;font-size:.85rem}
details{margin:.5rem 0}summary{cursor:pointer;color:#444}a{color:#1f5fae}
.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:-1px;border-radius:2px}
"""


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _legend(items: Sequence[tuple[str, str]]) -> str:
    return (
        '<div class="legend">'
        + "".join(f'<span><i style="background:{escape(color)}"></i>{escape(label)}</span>' for label, color in items)
        + "</div>"
    )


def _nice_step(span: float, ticks: int = 8) -> float:
    """A tick step (seconds) from a friendly list that gives at most ``ticks`` ticks over ``span`` seconds."""
    for step in (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800):
        if span / step <= ticks:
            return float(step)
    return span / ticks


def _tick_label(seconds: float) -> str:
    """``+0``, ``+45s``, ``+30m``, ``+1h``, ``+1h30m``, ``+2d``."""
    total = round(seconds)
    if total == 0:
        return "+0"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "+" + "".join(parts)


class _TimeAxis:
    def __init__(self, start: datetime, end: datetime, left: float, width: float) -> None:
        self.start = start
        self.span = max((end - start).total_seconds(), 1.0)
        self.left = left
        self.width = width

    def x(self, moment: datetime | None) -> float:
        if moment is None:
            return self.left + self.width
        seconds = min(max((moment - self.start).total_seconds(), 0.0), self.span)
        return self.left + self.width * seconds / self.span

    def ticks(self, top: float, bottom: float) -> str:
        step = _nice_step(self.span)
        parts = []
        at = 0.0
        while at <= self.span + 1e-6:
            x = self.left + self.width * at / self.span
            parts.append(
                f'<line x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{bottom:.1f}" stroke="#e4e4e4"/>'
                f'<text x="{x:.1f}" y="{bottom + 14:.1f}" text-anchor="middle" fill="#666">'
                f"{escape(_tick_label(at))}</text>"
            )
            at += step
        return "".join(parts)


def _rollout_window(doc: Mapping[str, Any]) -> tuple[datetime | None, datetime | None]:
    start = _time(doc.get("started_at"))
    moments = [_time(doc.get("ended_at"))]
    for wave in doc["waves"]:
        moments += [_time(wave.get("started_at")), _time(wave.get("completed_at"))]
    for point in doc["budget"].get("history", []):
        moments.append(_time(point.get("at")))
    known = [m for m in moments if m is not None]
    return start, max(known) if known else start


def timeline_svg(doc: Mapping[str, Any]) -> str:
    """A bar per wave: running (dispatched until every target finished), baking, halted; the rollout's end."""
    start, end = _rollout_window(doc)
    if start is None or end is None:
        return '<p class="muted">No timing recorded.</p>'
    waves = doc["waves"]
    row, left, width = 30, 130, 820
    top = 22
    height = top + row * len(waves) + 30
    axis = _TimeAxis(start, end, left, width)
    ended = _time(doc.get("ended_at"))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {left + width + 20} {height}" '
        f'width="{left + width + 20}" height="{height}" role="img" aria-label="wave timeline">',
        axis.ticks(top, top + row * len(waves)),
    ]
    for position, wave in enumerate(waves):
        y = top + position * row + 6
        label = f"wave {wave['index']} ({wave['size']})"
        parts.append(f'<text x="{left - 8}" y="{y + 13}" text-anchor="end">{escape(label)}</text>')
        begun, finished = _time(wave.get("started_at")), _time(wave.get("completed_at"))
        state = wave["state"]
        if begun is None:
            parts.append(f'<text x="{left + 6}" y="{y + 13}" fill="#999">not started</text>')
            continue
        stopped = state in ("HALTED", "CANCELLED")
        phase = "running" if not stopped else ("cancelled" if state == "CANCELLED" else "halted")
        run_end = finished or ended or end
        x1, x2 = axis.x(begun), axis.x(run_end)
        tip = f"wave {wave['index']} {state}: +{format_duration((begun - start).total_seconds())} to "
        tip += f"+{format_duration((run_end - start).total_seconds())}"
        parts.append(
            f'<rect x="{x1:.1f}" y="{y}" width="{max(x2 - x1, 2):.1f}" height="18" rx="2" '
            f'fill="{PHASE_COLORS[phase]}"><title>{escape(tip)}</title></rect>'
        )
        if finished is not None and not stopped:
            following = waves[position + 1] if position + 1 < len(waves) else None
            next_start = _time(following.get("started_at")) if following else None
            bake_end = next_start or (ended if following is not None else None)
            if bake_end is not None and bake_end > finished:
                b1, b2 = axis.x(finished), axis.x(bake_end)
                bake_tip = f"wave {wave['index']} baking {format_duration((bake_end - finished).total_seconds())}"
                parts.append(
                    f'<rect x="{b1:.1f}" y="{y + 3}" width="{max(b2 - b1, 1):.1f}" height="12" rx="2" '
                    f'fill="{PHASE_COLORS["baking"]}"><title>{escape(bake_tip)}</title></rect>'
                )
    if ended is not None:
        x = axis.x(ended)
        color = STATE_COLORS.get(doc["state"], "#333")
        parts.append(
            f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{top + row * len(waves)}" stroke="{color}" '
            f'stroke-width="2" stroke-dasharray="4 3"/>'
            f'<text x="{x:.1f}" y="{top - 8}" text-anchor="end" fill="{color}" '
            f'font-weight="600">{escape(doc["state"])}</text>'
        )
    parts.append("</svg>")
    legend = _legend(
        [
            ("dispatched → finished", PHASE_COLORS["running"]),
            ("baking", PHASE_COLORS["baking"]),
            ("halted", PHASE_COLORS["halted"]),
            ("cancelled", PHASE_COLORS["cancelled"]),
        ]
    )
    return "".join(parts) + legend


def status_chart_svg(doc: Mapping[str, Any]) -> str:
    """Stacked bars: each wave's invocations by status, to the scale of the largest wave; grey = not dispatched."""
    waves = doc["waves"]
    row, left, width = 30, 130, 700
    largest = max([w["size"] for w in waves] + [1])
    height = 10 + row * len(waves) + 10
    present: dict[str, str] = {}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {left + width + 120} {height}" '
        f'width="{left + width + 120}" height="{height}" role="img" aria-label="status counts per wave">'
    ]
    for position, wave in enumerate(waves):
        y = 10 + position * row
        name = f"wave {wave['index']}"
        parts.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">{escape(name)}</text>')
        x = float(left)
        scale = width / largest
        for status, count in wave["counts"].items():
            if not count:
                continue
            color = STATUS_COLORS.get(status, "#444")
            present[status] = color
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{count * scale:.1f}" height="20" fill="{color}">'
                f"<title>{escape(f'{name}: {status} {count}')}</title></rect>"
            )
            x += count * scale
        recorded = sum(wave["counts"].values())
        rest = max(wave["size"] - recorded, 0)
        if rest:
            present["not dispatched"] = NOT_DISPATCHED
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{rest * scale:.1f}" height="20" fill="{NOT_DISPATCHED}" '
                f'stroke="#ccc"><title>{escape(f"{name}: not dispatched {rest}")}</title></rect>'
            )
            x += rest * scale
        done = f"{wave['counts'].get('Success', 0)}/{wave['size']} succeeded"
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 14}" fill="#444">{escape(done)}</text>')
    parts.append("</svg>")
    return "".join(parts) + _legend(list(present.items()))


def budget_svg(doc: Mapping[str, Any]) -> str:
    """The budget gauge (used of allowed) and, when the course is known, used over time against the allowed line."""
    budget = doc["budget"]
    allowed, used = int(budget["allowed"]), int(budget["used"])
    left, width = 130, 700
    top_of_scale = max(allowed + 1, used, 1)
    mark = left + width * allowed / top_of_scale
    color = "#d62f2f" if used > allowed else ("#d08a00" if used == allowed and used else "#2e9e44")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {left + width + 120} 40" width="{left + width + 120}" '
        'height="40" role="img" aria-label="error budget">',
        f'<text x="{left - 8}" y="24" text-anchor="end">budget used</text>',
        f'<rect x="{left}" y="10" width="{width}" height="20" fill="#f1f1f1" stroke="#ddd"/>',
        f'<rect x="{left}" y="10" width="{width * used / top_of_scale:.1f}" height="20" fill="{color}"/>',
        f'<line x1="{mark:.1f}" y1="4" x2="{mark:.1f}" y2="36" stroke="#222" stroke-width="2"/>',
        f'<text x="{left + width + 8}" y="24">{escape(f"used {used}, allowed {allowed}")}</text>',
        "</svg>",
    ]
    history = budget.get("history") or []
    start, end = _rollout_window(doc)
    if history and start is not None and end is not None:
        plot_top, plot_height = 10, 120
        axis = _TimeAxis(start, end, left, width)
        peak = max([p["used"] for p in history] + [allowed + 1, 1])

        def y_of(value: float) -> float:
            return plot_top + plot_height - plot_height * value / peak

        points: list[str] = []
        previous = 0
        for point in history:
            x = axis.x(_time(point["at"]))
            points.append(f"{x:.1f},{y_of(previous):.1f}")
            points.append(f"{x:.1f},{y_of(point['used']):.1f}")
            previous = point["used"]
        points.append(f"{axis.x(end):.1f},{y_of(previous):.1f}")
        allowed_y = y_of(allowed)
        parts += [
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {left + width + 120} {plot_top + plot_height + 30}" '
            f'width="{left + width + 120}" height="{plot_top + plot_height + 30}" role="img" '
            'aria-label="budget used over time">',
            axis.ticks(plot_top, plot_top + plot_height),
            f'<text x="{left - 8}" y="{plot_top + plot_height}" text-anchor="end">0</text>',
            f'<text x="{left - 8}" y="{allowed_y + 4:.1f}" text-anchor="end">{escape(f"allowed {allowed}")}</text>',
            f'<polyline fill="none" stroke="#2f7fd6" stroke-width="2.5" points="{" ".join(points)}"/>',
            f'<line x1="{left}" y1="{allowed_y:.1f}" x2="{left + width}" y2="{allowed_y:.1f}" stroke="#d62f2f" '
            'stroke-width="1.5" stroke-dasharray="6 4"/>',
            f'<text x="{left + width + 8}" y="{y_of(previous) + 4:.1f}">{escape(f"used {previous}")}</text>',
            "</svg>",
        ]
    return "".join(parts)


def render_report(doc: Mapping[str, Any]) -> str:
    """The whole HTML page for one rollout's result document."""
    state = doc["state"]
    counts = doc["counts"]
    facts = [
        ("targets", doc["target_count"]),
        ("succeeded", counts.get("Success", 0)),
        ("failed", doc["failed_total"] - doc.get("stopped_total", 0)),
        ("cancelled or terminated", doc.get("stopped_total", 0)),
        ("skipped", doc["skipped_count"]),
        ("budget", f"{doc['budget']['used']} of {doc['budget']['allowed']} used"),
        ("waves", len(doc["waves"])),
        ("rollout duration", format_duration(doc.get("duration_seconds"))),
    ]
    if doc.get("virtual_duration_seconds") is not None:
        facts.append(("virtual time", format_duration(doc["virtual_duration_seconds"])))
    if doc.get("seed") is not None:
        facts.append(("seed", doc["seed"]))
    if doc.get("api_calls"):
        facts.append(("AWS API calls", doc["api_calls"]["total"]))
    document = doc.get("document") or {}
    title = f"fleetwave {doc['spec']} {doc['rollout_id']} {state}"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{escape(doc['spec'])} "
        f'<span class="state" style="background:{STATE_COLORS.get(state, "#2f7fd6")}">{escape(state)}</span></h1>',
        f'<p class="muted">rollout <code>{escape(doc["rollout_id"])}</code> · document '
        f"<code>{escape(document.get('name', ''))}</code> version {escape(document.get('version', ''))} · started "
        f"{escape(doc.get('started_at') or '-')} · ended {escape(doc.get('ended_at') or '-')}</p>",
    ]
    if doc.get("reason"):
        out.append(f"<p><b>Reason:</b> {escape(doc['reason'])}</p>")
    out.append(
        '<div class="facts">' + "".join(f"<div>{escape(k)}<b>{escape(v)}</b></div>" for k, v in facts) + "</div>"
    )
    out.append(failures_html(doc))
    out.append("<h2>Timeline</h2>" + timeline_svg(doc))
    out.append("<h2>Status by wave</h2>" + status_chart_svg(doc))
    wave_rows = [
        (
            w["index"],
            w["size"],
            w["max_concurrency"],
            w["dispatched"],
            ", ".join(f"{k} {v}" for k, v in w["counts"].items() if v) or "-",
            wave_verdict(w),
            w.get("started_at") or "-",
            w.get("completed_at") or "-",
        )
        for w in doc["waves"]
    ]
    out.append(
        table(
            ("wave", "size", "concurrency", "dispatched", "by status", "verdict", "started", "finished"),
            wave_rows,
            numeric=(0, 1, 2, 3),
        )
    )
    budget = doc["budget"]
    out.append(
        "<h2>Error budget</h2>"
        + f'<p class="muted">Counts {escape(", ".join(budget["statuses"]))}; one error past the allowance halts the '
        "rollout.</p>" + budget_svg(doc)
    )
    out.append(stopped_html(doc))
    if doc["skipped"]:
        out.append(f"<h2>Skipped nodes ({escape(len(doc['skipped']))})</h2>")
        out.append(table(("instance", "reason"), [(s["instance_id"], s["reason"]) for s in doc["skipped"]]))
    calls = doc.get("api_calls")
    if calls:
        rows = [
            (service, operation, n)
            for service, operations in calls["by_service"].items()
            for operation, n in operations.items()
        ]
        rows.sort(key=lambda r: (-int(r[2]), r[0], r[1]))
        out.append(f"<h2>AWS API calls ({escape(calls['total'])})</h2>")
        out.append(table(("service", "operation", "calls"), rows, numeric=(2,)))
    fleet = doc.get("fleet")
    if fleet:
        rates = ", ".join(f"{k} {v:g}" for k, v in fleet.get("rates", {}).items() if v) or "none"
        out.append(
            "<h2>Simulation</h2>" + f"<p>Fleet {escape(fleet.get('size'))} nodes tagged {escape(fleet.get('tags'))}, "
            f"{escape(fleet.get('explicit_instance_ids'))} explicit IDs; seed {escape(doc.get('seed'))}; "
            f"failure rates: {escape(rates)}.</p>"
        )
    out.append(f'<p class="muted">fleetwave report · {escape(doc.get("schema", ""))}</p></body></html>')
    return "\n".join(out)


def check_report_path(report: Path | None) -> None:
    """Refuse, before any work, a report path that cannot be written (exit 73)."""
    if report is None:
        return
    parent = report.parent if str(report.parent) else Path(".")
    if not parent.is_dir():
        raise CliError(ExitCode.CANT_CREATE, f"{report}: cannot write the report: {parent} is not a directory")
    if report.is_dir():
        raise CliError(ExitCode.CANT_CREATE, f"{report}: cannot write the report: it is a directory")


def write_report(report: Path, document: Mapping[str, Any]) -> None:
    try:
        report.write_text(render_report(document), encoding="utf-8")
    except OSError as error:
        raise CliError(ExitCode.CANT_CREATE, f"{report}: cannot write the report: {error.strerror or error}") from None
