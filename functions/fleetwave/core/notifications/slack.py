"""Slack Block Kit messages: a rollout's final state and its wave transitions, in an attachment coloured by state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fleetwave.constants import DETAIL_TYPE_WAVE_COMPLETED, DETAIL_TYPE_WAVE_STARTED
from fleetwave.core.model import Rollout, RolloutState, Wave, WaveState
from fleetwave.core.notifications.common import (
    RolloutReport,
    budget_text,
    counts_text,
    duration_seconds,
    format_duration,
    output_link,
)
from fleetwave.core.status import InvocationStatus

# Failed instances a Slack message lists (with links); the SNS e-mail body lists a few more.
TOP_FAILED_SLACK = 5
# Slack: a section's text is at most 3,000 characters, a header's 150.
_MAX_SECTION_TEXT = 2900
_MAX_HEADER_TEXT = 150
_BAR_CELLS = 10

# Slack's own palette: green, yellow, red, grey, blue.
COLOR_GOOD = "#2EB67D"
COLOR_WARNING = "#ECB22E"
COLOR_DANGER = "#E01E5A"
COLOR_NEUTRAL = "#868686"
COLOR_ACTIVE = "#36C5F0"
STATE_COLOR: Mapping[RolloutState, str] = {
    RolloutState.SUCCEEDED: COLOR_GOOD,
    RolloutState.COMPLETED_WITH_ERRORS: COLOR_WARNING,
    RolloutState.HALTED: COLOR_DANGER,
    RolloutState.FAILED: COLOR_DANGER,
    RolloutState.CANCELLED: COLOR_NEUTRAL,
    RolloutState.PENDING: COLOR_ACTIVE,
    RolloutState.RUNNING: COLOR_ACTIVE,
    RolloutState.BAKING: COLOR_ACTIVE,
}
_STATE_EMOJI: Mapping[RolloutState, str] = {
    RolloutState.SUCCEEDED: ":white_check_mark:",
    RolloutState.COMPLETED_WITH_ERRORS: ":warning:",
    RolloutState.HALTED: ":octagonal_sign:",
    RolloutState.FAILED: ":x:",
    RolloutState.CANCELLED: ":no_entry_sign:",
}
_WAVE_EMOJI: Mapping[WaveState, str] = {
    WaveState.PENDING: ":white_circle:",
    WaveState.RUNNING: ":large_blue_circle:",
    WaveState.COMPLETE: ":white_check_mark:",
    WaveState.HALTED: ":octagonal_sign:",
    WaveState.CANCELLED: ":no_entry_sign:",
}


def _failures_in(counts: Mapping[InvocationStatus, int]) -> int:
    return sum(n for status, n in counts.items() if status.is_terminal and status is not InvocationStatus.SUCCESS)


def _escape(text: str) -> str:
    """Slack mrkdwn: &, < and > are control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ---------------------------------------------------------------------------------------------------- blocks
def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:_MAX_HEADER_TEXT], "emoji": True}}


def _sections(title: str, lines: Sequence[str]) -> list[dict[str, Any]]:
    """Lines under a bold title, split into as many sections as Slack's 3,000-character limit needs."""
    blocks: list[dict[str, Any]] = []
    current = f"*{title}*"
    for line in lines:
        if len(current) + 1 + len(line) > _MAX_SECTION_TEXT:
            blocks.append({"type": "section", "text": _mrkdwn(current)})
            current = line
        else:
            current = f"{current}\n{line}"
    blocks.append({"type": "section", "text": _mrkdwn(current)})
    return blocks


def progress_bar(done: int, total: int) -> str:
    filled = _BAR_CELLS if total and done >= total else (_BAR_CELLS * done // total if total else 0)
    return "█" * filled + "░" * (_BAR_CELLS - filled)


def wave_progress_line(wave: Wave) -> str:
    """One wave at a glance: ``:white_check_mark: *wave 1*  `██████████`  9/9  COMPLETE · 9 Success``."""
    emoji = _WAVE_EMOJI.get(wave.state, ":white_circle:")
    if wave.state is WaveState.COMPLETE and _failures_in(wave.counts):
        emoji = ":warning:"
    counts = counts_text(wave.counts, empty="not dispatched" if not wave.dispatched else "none yet")
    return (
        f"{emoji} *wave {wave.index}*  `{progress_bar(wave.terminal_count, wave.size)}`  "
        f"{wave.terminal_count}/{wave.size}  {wave.state.value} · {counts}"
    )


def _failed_lines(report: RolloutReport) -> list[str]:
    lines = []
    for item in report.top_failed(TOP_FAILED_SLACK):
        details = f" ({item.status_details})" if item.status_details and item.status_details != item.status else ""
        link = output_link(item, report.location)
        lines.append(f"• <{link}|{item.instance_id}>  {item.status.value}{_escape(details)} · wave {item.wave}")
    more = len(report.failed) - len(lines)
    if more > 0:
        lines.append(f"_and {more} more_")
    return lines


def _context(rollout: Rollout) -> dict[str, Any]:
    text = (
        f"fleetwave · `{rollout.rollout_id}` · {_escape(rollout.document_name)} v{rollout.document_version} · "
        f"trigger {_escape(rollout.trigger or '-')}"
    )
    if rollout.started_by:
        text += f" · started by {_escape(rollout.started_by)}"
    if rollout.cancelled_by:
        text += f" · cancelled by {_escape(rollout.cancelled_by)}"
    return {"type": "context", "elements": [_mrkdwn(text)]}


def _slack_payload(text: str, color: str, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    # Blocks inside an attachment get the colour bar; ``text`` is what notifications and old clients show.
    return {"text": text, "attachments": [{"color": color, "blocks": blocks}]}


def _body_blocks(report: RolloutReport, lead: str, elapsed_label: str, elapsed: float | None) -> list[dict[str, Any]]:
    rollout = report.rollout
    skipped = f" ({rollout.skipped_count} skipped)" if rollout.skipped_count else ""
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": _mrkdwn(lead)},
        {
            "type": "section",
            "fields": [
                _mrkdwn(f"*State*\n{rollout.state.value}"),
                _mrkdwn(f"*Error budget*\n{budget_text(rollout)}"),
                _mrkdwn(f"*Targets*\n{rollout.target_count}{skipped}"),
                _mrkdwn(f"*{elapsed_label}*\n{format_duration(elapsed)}"),
            ],
        },
        *_sections("Waves", [wave_progress_line(wave) for wave in report.waves]),
    ]
    if report.failed:
        blocks.extend(_sections(f"Top failed instances ({len(report.failed)} in all)", _failed_lines(report)))
    blocks.append(_context(rollout))
    return blocks


def slack_final_message(report: RolloutReport) -> dict[str, Any]:
    """The Slack message of a rollout's final state."""
    rollout = report.rollout
    state = rollout.state
    spec = rollout.spec_name
    lead = f"Rollout of *{_escape(spec)}* ended *{state.value}*: {counts_text(rollout.counts, empty='nothing ran')}."
    if rollout.reason:
        lead += f"\n>{_escape(rollout.reason)}"
    text = f"fleetwave: {spec} {state.value}"
    if rollout.reason:
        text += f": {rollout.reason}"
    blocks = [
        _header(f"{_STATE_EMOJI.get(state, '')} {spec} {state.value}".strip()),
        *_body_blocks(report, lead, "Duration", duration_seconds(rollout.started_at, rollout.ended_at)),
    ]
    return _slack_payload(text, STATE_COLOR.get(state, COLOR_NEUTRAL), blocks)


def slack_wave_message(report: RolloutReport, detail_type: str, wave: Wave) -> dict[str, Any]:
    """The Slack message of a wave transition (``wave`` as it changed; the report as read at publication)."""
    rollout = report.rollout
    spec = rollout.spec_name
    if detail_type == DETAIL_TYPE_WAVE_STARTED:
        at = wave.started_at
        header = f":arrow_forward: {spec}: wave {wave.index} started ({report.wave_range})"
        concurrency = f", {wave.max_concurrency} at a time" if wave.max_concurrency < wave.size else ""
        lead = f"Wave {wave.index} of *{_escape(spec)}* started: {wave.size} targets{concurrency}."
        text = f"fleetwave: {spec} wave {wave.index} started ({wave.size} targets)"
        color = COLOR_ACTIVE
    else:
        at = wave.completed_at
        failures = _failures_in(wave.counts)
        header = f"{':warning:' if failures else ':white_check_mark:'} {spec}: wave {wave.index} complete"
        header += f" ({report.wave_range})"
        lead = f"Wave {wave.index} of *{_escape(spec)}* complete: {counts_text(wave.counts)}."
        if wave.index < rollout.wave_count - 1:
            bake = f" after a {format_duration(rollout.bake_time)} bake" if rollout.bake_time else ""
            lead += f"\nNext: wave {wave.index + 1}{bake}."
        text = f"fleetwave: {spec} wave {wave.index} complete: {counts_text(wave.counts)}"
        color = COLOR_WARNING if failures else COLOR_GOOD
    blocks = [_header(header), *_body_blocks(report, lead, "Elapsed", duration_seconds(rollout.started_at, at))]
    return _slack_payload(text, color, blocks)


def slack_wants_wave_message(detail_type: str, wave: Wave, wave_count: int) -> bool:
    """One Slack message per wave transition, except the last wave's completion: the final message tells it."""
    return not (detail_type == DETAIL_TYPE_WAVE_COMPLETED and wave.index >= wave_count - 1)
