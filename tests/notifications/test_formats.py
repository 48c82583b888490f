"""What people and subscribers read: event details, SNS subjects and bodies, Slack Block Kit, against golden files.

Inputs are fixed (tests/notifications/fixtures.py), so the goldens need no normalising; UPDATE_GOLDENS=1 rewrites them.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from fleetwave import constants
from fleetwave.core.model import RolloutState, WaveState
from fleetwave.core.notifications.common import (
    NoticeRecord,
    OutputLocation,
    RemediationRecord,
    RolloutReport,
    event_id,
    format_duration,
    output_link,
    s3_console_url_for_object,
    top_failed,
)
from fleetwave.core.notifications.events import (
    remediation_detail_type,
    remediation_event_detail,
    rollout_detail_type,
    rollout_event_detail,
    wave_detail_type,
    wave_event_detail,
)
from fleetwave.core.notifications.slack import slack_final_message, slack_wants_wave_message, slack_wave_message
from fleetwave.core.notifications.sns import notice_message, summary_message
from fleetwave.core.spec import OutputSpec
from fleetwave.core.summary import FailedInvocation, build_summary

from .conftest import Golden
from .fixtures import ROLLOUT_ID, T0, S, counts, halted, rollout, succeeded_waves, wave

DOCS = Path(__file__).resolve().parents[2] / "docs" / "notifications.md"


def sns_text(message) -> str:
    attributes = ", ".join(f"{k}={v}" for k, v in sorted(message.attributes.items()))
    return f"Subject: {message.subject}\nAttributes: {attributes}\n\n{message.body}\n"


def succeeded_report() -> RolloutReport:
    return RolloutReport(rollout=rollout(), waves=succeeded_waves(), location=OutputLocation(region="eu-west-1"))


def all_event_details() -> dict[str, dict]:
    """One example detail per detail-type, from the fixed rollout."""
    running = rollout(RolloutState.RUNNING, current_wave=0, counts=counts(), ended_at=None)
    identity = f"ROLLOUT#{ROLLOUT_ID}|ROLLOUT|RUNNING"
    mid = rollout(RolloutState.BAKING, current_wave=1, counts=counts(Success=13), ended_at=None)
    wave_running = wave(1, 12, WaveState.RUNNING)
    wave_done = wave(1, 12, WaveState.COMPLETE)
    started = RemediationRecord(
        rule="restart-nginx",
        outcome="started",
        alarm_name="web-1-nginx-down",
        instance_id="i-0123456789abcdef0",
        reason="alarm web-1-nginx-down in ALARM",
        rollout_id="20260310T020500-d4e5f6",
        document="AWS-RunShellScript",
    )
    skipped = RemediationRecord(
        rule="restart-nginx",
        outcome="skipped",
        alarm_name="web-1-nginx-down",
        instance_id="i-0123456789abcdef0",
        reason="cooldown: remediated 12 minutes ago",
    )
    unverified = RemediationRecord(
        rule="restart-nginx",
        outcome="verification_failed",
        alarm_name="web-1-nginx-down",
        instance_id="i-0123456789abcdef0",
        reason="alarm still in ALARM 10 minutes after the runbook succeeded",
        rollout_id="20260310T020500-d4e5f6",
    )
    at = T0 + timedelta(minutes=5)
    return {
        "Rollout Started": rollout_event_detail(
            "Rollout Started", running, RolloutState.PENDING, event_id=event_id(identity)
        ),
        "Wave Started": wave_event_detail("Wave Started", mid, wave_running, event_id=event_id("wave-1-running")),
        "Wave Completed": wave_event_detail("Wave Completed", mid, wave_done, event_id=event_id("wave-1-complete")),
        "Rollout Halted": rollout_event_detail(
            "Rollout Halted", halted().rollout, RolloutState.RUNNING, event_id=event_id("halted")
        ),
        "Rollout Finished": rollout_event_detail(
            "Rollout Finished", rollout(), RolloutState.RUNNING, event_id=event_id("finished")
        ),
        "Remediation Started": remediation_event_detail(started, event_id=event_id("r1"), occurred_at=at),
        "Remediation Skipped": remediation_event_detail(skipped, event_id=event_id("r2"), occurred_at=at),
        "Remediation Verification Failed": remediation_event_detail(
            unverified, event_id=event_id("r3"), occurred_at=at + timedelta(minutes=12)
        ),
    }


# ------------------------------------------------------------------------------------------- which changes are news
@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (None, "PENDING", None),
        ("PENDING", "RUNNING", "Rollout Started"),
        ("RUNNING", "BAKING", None),
        ("BAKING", "RUNNING", None),
        ("RUNNING", "SUCCEEDED", "Rollout Finished"),
        ("RUNNING", "COMPLETED_WITH_ERRORS", "Rollout Finished"),
        ("RUNNING", "HALTED", "Rollout Halted"),
        ("BAKING", "CANCELLED", "Rollout Halted"),
        ("PENDING", "FAILED", "Rollout Halted"),
        ("HALTED", "HALTED", None),
    ],
)
def test_only_a_rollouts_start_and_end_are_news(old, new, expected):
    assert rollout_detail_type(RolloutState(old) if old else None, RolloutState(new)) == expected


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (None, "PENDING", None),
        ("PENDING", "RUNNING", "Wave Started"),
        ("RUNNING", "COMPLETE", "Wave Completed"),
        ("RUNNING", "HALTED", None),
        ("RUNNING", "CANCELLED", None),
    ],
)
def test_a_wave_is_news_when_it_starts_and_when_it_completes(old, new, expected):
    assert wave_detail_type(WaveState(old) if old else None, WaveState(new)) == expected


def test_remediation_outcomes_map_to_their_detail_types():
    def record(outcome: str) -> RemediationRecord:
        return RemediationRecord(rule="r", outcome=outcome)

    assert remediation_detail_type(record("started")) == "Remediation Started"
    assert remediation_detail_type(record("skipped")) == "Remediation Skipped"
    assert remediation_detail_type(record("verification_failed")) == "Remediation Verification Failed"


def test_event_ids_depend_on_the_change_only():
    assert event_id("ROLLOUT#x|ROLLOUT|RUNNING") == event_id("ROLLOUT#x|ROLLOUT|RUNNING")
    assert event_id("ROLLOUT#x|ROLLOUT|RUNNING") != event_id("ROLLOUT#x|ROLLOUT|SUCCEEDED")


# ------------------------------------------------------------------------------------------- event details
@pytest.mark.parametrize("detail_type", list(constants.FLEETWAVE_DETAIL_TYPES))
def test_event_details_match_their_golden_files(detail_type: str, golden: Golden):
    detail = all_event_details()[detail_type]
    golden.check(f"events/{detail_type.lower().replace(' ', '_')}.json", detail)


def _documented_examples() -> dict[str, dict]:
    """docs/notifications.md: under each '### <detail-type>' heading, the first JSON block is an example event."""
    text = DOCS.read_text(encoding="utf-8")
    examples = {}
    for match in re.finditer(r"^### (.+?)\n(.*?)```json\n(.*?)```", text, flags=re.S | re.M):
        examples[match.group(1).strip()] = json.loads(match.group(3))
    return examples


def test_every_detail_type_is_documented_with_an_example_of_the_same_fields():
    examples = _documented_examples()
    produced = all_event_details()
    for detail_type in constants.FLEETWAVE_DETAIL_TYPES:
        assert detail_type in examples, f"docs/notifications.md has no example for {detail_type}"
        example = examples[detail_type]
        assert example["source"] == constants.FLEETWAVE_EVENT_SOURCE
        assert example["detail-type"] == detail_type
        assert set(example["detail"]) == set(produced[detail_type]), detail_type


# ------------------------------------------------------------------------------------------- SNS
def test_sns_summary_of_a_successful_rollout(golden: Golden):
    report = succeeded_report()
    message = summary_message(report, build_summary(report.rollout, report.waves, []))
    assert message.subject == "[fleetwave] monthly-patching SUCCEEDED: 120/120 succeeded in 1h 52m"
    assert message.attributes == {
        "kind": "summary",
        "rollout_id": ROLLOUT_ID,
        "spec": "monthly-patching",
        "state": "SUCCEEDED",
        "severity": "info",
    }
    golden.check("sns/summary_succeeded.txt", sns_text(message))


def test_sns_summary_of_a_halted_rollout_lists_failures_first_with_links(golden: Golden):
    report = halted()
    message = summary_message(report, build_summary(report.rollout, report.waves, report.failed))
    assert message.subject.startswith("[fleetwave] monthly-patching HALTED at wave 1: error budget exceeded")
    assert message.attributes["severity"] == "critical"
    golden.check("sns/summary_halted.txt", sns_text(message))
    golden.check("sns/summary_halted.payload.json", message.payload)


def test_sns_summary_of_a_rollout_that_completed_with_errors(golden: Golden):
    failed = [FailedInvocation("i-0bb0000000000000a", S.DELIVERY_TIMED_OUT, "Delivery Timed Out", 2, "cmd-3", "")]
    r = rollout(RolloutState.COMPLETED_WITH_ERRORS, counts=counts(Success=119, DeliveryTimedOut=1))
    waves = succeeded_waves()
    waves[2].counts = counts(Success=106, DeliveryTimedOut=1)
    location = OutputLocation.of(OutputSpec(cloudwatch_enabled=True), r.document_name, "eu-west-1")
    report = RolloutReport(rollout=r, waves=waves, failed=failed, location=location)
    message = summary_message(report, build_summary(r, waves, failed))
    assert message.attributes["severity"] == "warning"
    golden.check("sns/summary_completed_with_errors.txt", sns_text(message))


def test_sns_notice_of_a_skipped_start(golden: Golden):
    notice = NoticeRecord(kind="start_skipped", spec_name="monthly-patching", reason="calendar change-freeze is CLOSED")
    message = notice_message(notice, event_id=event_id("NOTICE#monthly-patching|x|INSERT"), occurred_at=T0)
    assert message.attributes == {
        "kind": "notice",
        "notice": "start_skipped",
        "spec": "monthly-patching",
        "severity": "warning",
    }
    golden.check("sns/notice_start_skipped.txt", sns_text(message))
    golden.check("sns/notice_start_skipped.payload.json", message.payload)


def test_sns_subjects_are_short_printable_ascii():
    r = rollout(RolloutState.HALTED, reason="alarm gate “web-5xx” is in ALARM\nand " + "x" * 200)
    subject = summary_message(RolloutReport(rollout=r, waves=[]), {}).subject
    assert len(subject) <= 100
    assert subject.isascii() and subject.isprintable()


# ------------------------------------------------------------------------------------------- Slack
def test_slack_final_message_of_a_successful_rollout(golden: Golden):
    message = slack_final_message(succeeded_report())
    [attachment] = message["attachments"]
    assert attachment["color"] == "#2EB67D"
    golden.check("slack/final_succeeded.json", message)


def test_slack_final_message_of_a_halted_rollout(golden: Golden):
    message = slack_final_message(halted())
    [attachment] = message["attachments"]
    assert attachment["color"] == "#E01E5A"
    text = json.dumps(message)
    # The top failed instances: budget-spending failures first, with links to their output
    assert text.index("i-0aa0000000000000a") < text.index("i-0aa0000000000000c")
    assert "https://s3.console.aws.amazon.com/s3/object/patch-logs?region=eu-west-1&prefix=fleetwave" in text
    golden.check("slack/final_halted.json", message)


def test_slack_wave_messages(golden: Golden):
    mid = rollout(RolloutState.RUNNING, current_wave=1, counts=counts(Success=5), ended_at=None)
    waves = [
        wave(0, 1, WaveState.COMPLETE),
        wave(1, 12, WaveState.RUNNING, counts=counts(Success=4, InProgress=8)),
        wave(2, 107, WaveState.PENDING),
    ]
    report = RolloutReport(rollout=mid, waves=waves)
    started = slack_wave_message(report, "Wave Started", wave(1, 12, WaveState.RUNNING))
    assert started["attachments"][0]["color"] == "#36C5F0"
    golden.check("slack/wave_started.json", started)
    baking = rollout(RolloutState.BAKING, current_wave=1, counts=counts(Success=13), ended_at=None)
    done = [wave(0, 1, WaveState.COMPLETE), wave(1, 12, WaveState.COMPLETE), wave(2, 107, WaveState.PENDING)]
    completed = slack_wave_message(RolloutReport(rollout=baking, waves=done), "Wave Completed", done[1])
    golden.check("slack/wave_completed.json", completed)


def test_the_last_waves_completion_is_told_by_the_final_message_only():
    last = wave(2, 107, WaveState.COMPLETE)
    assert not slack_wants_wave_message("Wave Completed", last, wave_count=3)
    assert slack_wants_wave_message("Wave Started", last, wave_count=3)
    assert slack_wants_wave_message("Wave Completed", wave(1, 12, WaveState.COMPLETE), wave_count=3)


def test_slack_messages_stay_within_block_kit_limits_for_fifty_waves():
    waves = [wave(i, 100, WaveState.COMPLETE) for i in range(50)]
    r = rollout(wave_count=50, target_count=5000, counts=counts(Success=5000))
    message = slack_final_message(RolloutReport(rollout=r, waves=waves))
    blocks = message["attachments"][0]["blocks"]
    assert len(blocks) <= 50
    for block in blocks:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
    assert sum(block.get("text", {}).get("text", "").count("*wave ") for block in blocks) == 50


def test_slack_text_escapes_control_characters_from_the_ledger():
    r = rollout(RolloutState.HALTED, reason="alarm <web-5xx> & friends")
    message = slack_final_message(RolloutReport(rollout=r, waves=[]))
    assert "alarm &lt;web-5xx&gt; &amp; friends" in json.dumps(message)


# ------------------------------------------------------------------------------------------- links and helpers
FAILED = FailedInvocation("i-0123456789abcdef0", S.FAILED, "Failed", 1, "cmd-1", "")


@pytest.mark.parametrize(
    ("location", "output_url", "expected"),
    [
        (
            OutputLocation(region="eu-west-1", s3_bucket="logs", s3_prefix="/fleetwave/x/"),
            "",
            "https://s3.console.aws.amazon.com/s3/buckets/logs?region=eu-west-1"
            "&prefix=fleetwave%2Fx%2Fcmd-1%2Fi-0123456789abcdef0%2F",
        ),
        (
            OutputLocation(region="eu-west-1", log_group="/aws/ssm/AWS-RunShellScript"),
            "",
            "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logsV2:log-groups/log-group/"
            "$252Faws$252Fssm$252FAWS-RunShellScript$3FlogStreamNameFilter$3Dcmd-1$252Fi-0123456789abcdef0$252F",
        ),
        (
            OutputLocation(region="eu-west-1", s3_bucket="logs"),
            "https://s3.eu-west-1.amazonaws.com/logs/cmd-1/i-0123456789abcdef0/awsrunShellScript/stdout",
            "https://s3.console.aws.amazon.com/s3/object/logs?region=eu-west-1"
            "&prefix=cmd-1%2Fi-0123456789abcdef0%2FawsrunShellScript%2Fstdout",
        ),
        (
            OutputLocation(region="eu-west-1"),
            "",
            "https://eu-west-1.console.aws.amazon.com/systems-manager/run-command/cmd-1/i-0123456789abcdef0"
            "?region=eu-west-1",
        ),
    ],
)
def test_failed_instances_link_to_their_output(location, output_url, expected):
    item = FailedInvocation(FAILED.instance_id, FAILED.status, "Failed", 1, "cmd-1", output_url)
    assert output_link(item, location) == expected


def test_cloudwatch_output_defaults_to_ssms_log_group_for_the_document():
    assert OutputLocation.of(OutputSpec(cloudwatch_enabled=True), "AWS-RunPatchBaseline", "us-east-1").log_group == (
        "/aws/ssm/AWS-RunPatchBaseline"
    )
    spec_group = OutputSpec(cloudwatch_log_group="/patching/output")
    assert OutputLocation.of(spec_group, "AWS-RunPatchBaseline", "us-east-1").log_group == "/patching/output"
    assert OutputLocation.of(OutputSpec(), "AWS-RunPatchBaseline", "us-east-1").log_group is None


def test_s3_urls_in_virtual_host_style_and_foreign_urls():
    assert s3_console_url_for_object("https://logs.s3.us-east-1.amazonaws.com/a/b/stdout", "us-east-1") == (
        "https://s3.console.aws.amazon.com/s3/object/logs?region=us-east-1&prefix=a%2Fb%2Fstdout"
    )
    assert s3_console_url_for_object("https://example.com/x", "us-east-1") == "https://example.com/x"


def test_top_failed_puts_budget_failures_before_consequences_of_the_halt():
    ordered = [f.instance_id[-1] for f in top_failed(halted().failed, halted().rollout.budget_statuses, 10)]
    assert ordered == ["a", "b", "d", "e", "c", "f"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0, "0s"),
        (45, "45s"),
        (725, "12m 05s"),
        (3 * 3600 + 120, "3h 02m"),
        (2 * 86400 + 3 * 3600, "2d 03h"),
    ],
)
def test_durations_read_at_a_glance(seconds, text):
    assert format_duration(seconds) == text
