"""The report's account of what went wrong: the failures first (each with a link to its output), the invocations
a halt or a cancel stopped apart, and each wave's verdict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fleetwave.core.status import HALT_CONSEQUENCES, InvocationStatus

from fleetwave_local.cli.html import escape, link, table

_STOPPED = frozenset(status.value for status in HALT_CONSEQUENCES)


def _failures(wave: Mapping[str, Any]) -> int:
    """Invocations of a wave that ended in failure of their own (not Success, not cancelled by a halt)."""
    return sum(
        n
        for status, n in wave["counts"].items()
        if status not in _STOPPED and status != "Success" and InvocationStatus(status).is_terminal
    )


def wave_verdict(wave: Mapping[str, Any]) -> str:
    """What a wave came to, in words: passed, passed with failures within the budget, halted, cancelled, ..."""
    failures = _failures(wave)
    counted = f"{failures} failure{'s' if failures != 1 else ''}"
    state = wave["state"]
    if state == "COMPLETE":
        return f"passed with {counted}" if failures else "passed"
    if state == "HALTED":
        return f"halted ({counted})"
    if state == "CANCELLED":
        return "cancelled"
    if state == "PENDING":
        return "not started"
    return f"running ({counted})" if failures else "running"


def _failure_rows(items: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            f["instance_id"],
            f["wave"],
            f["status"],
            f["status_details"],
            f["command_id"],
            link(f.get("output_link") or f.get("output_url") or ""),
        )
        for f in items
    ]


def failures_html(doc: Mapping[str, Any]) -> str:
    """The failures, those that spent the budget first, each with a link to its output (the halt's cancellations
    and terminations are apart: ``stopped_html``)."""
    failures = [f for f in doc["failed_instances"] if f["status"] not in _STOPPED]
    stopped_total = int(doc.get("stopped_total", 0))
    failed_total = int(doc["failed_total"]) - stopped_total
    headers = ("instance", "wave", "status", "status details", "command", "output")
    out = [f"<h2>Failures ({escape(failed_total)})</h2>"]
    if failures:
        out.append(
            f'<p class="muted">Failed, timed out, undeliverable: those that spent the error budget '
            f"({escape(', '.join(doc['budget']['statuses']))}) first.</p>"
        )
        out.append(table(headers, _failure_rows(failures), numeric=(1,), html=(5,)))
    else:
        out.append('<p class="muted">None.</p>')
    if failed_total > len(failures):
        out.append(f'<p class="muted">{escape(failed_total - len(failures))} more not listed.</p>')
    return "".join(out)


def stopped_html(doc: Mapping[str, Any]) -> str:
    """The invocations a halt or a cancel stopped: counted by status, their list folded."""
    stopped = [f for f in doc["failed_instances"] if f["status"] in _STOPPED]
    stopped_total = int(doc.get("stopped_total", len(stopped)))
    headers = ("instance", "wave", "status", "status details", "command", "output")
    out: list[str] = []
    if stopped_total:
        counted = ", ".join(
            f"{status} {doc['counts'].get(status, 0)}" for status in sorted(_STOPPED) if doc["counts"].get(status)
        )
        out.append(f"<h2>Cancelled and terminated ({escape(stopped_total)})</h2>")
        out.append(
            f'<p class="muted">{escape(counted)}: stopped by the halt or a cancel, not failures of their own.</p>'
        )
        if stopped:
            out.append(
                f"<details><summary>{escape(len(stopped))} instances</summary>"
                + table(headers, _failure_rows(stopped), numeric=(1,), html=(5,))
                + "</details>"
            )
    return "".join(out)
