"""The result document and the HTML report, from ledger records made by hand (pure: no twin, no moto)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from fleetwave.core.model import Rollout, RolloutState, SkippedTarget, Wave, WaveState, empty_counts
from fleetwave.core.notifications.common import OutputLocation
from fleetwave.core.status import InvocationStatus
from fleetwave.core.summary import FailedInvocation
from fleetwave_local.cli.document import RolloutView, rollout_document
from fleetwave_local.cli.report import render_report

T0 = datetime(2026, 1, 1, tzinfo=UTC)
EVIL = "<script>alert('x')</script> & \"quotes\""


def counts(**by_status: int) -> dict[InvocationStatus, int]:
    result = empty_counts()
    for name, n in by_status.items():
        result[InvocationStatus(name)] = n
    return result


def halted_view() -> RolloutView:
    """Wave 0 done and baked, wave 1 halted on the budget part-way, wave 2 never started."""
    rollout = Rollout(
        rollout_id="20260101T000000-abcdef",
        spec_name="demo",
        state=RolloutState.HALTED,
        current_wave=1,
        wave_count=3,
        target_count=20,
        skipped_count=1,
        budget_allowed=1,
        budget_statuses=frozenset({InvocationStatus.FAILED, InvocationStatus.EXECUTION_TIMED_OUT}),
        document_name="AWS-RunShellScript",
        document_version="1",
        document_hash="h",
        started_at=T0,
        bake_time=300,
        counts=counts(Success=3, Failed=2, Cancelled=5),
        ended_at=T0 + timedelta(minutes=9),
        reason=f"error budget exceeded {EVIL}",
    )
    waves = [
        Wave(0, 2, 2, WaveState.COMPLETE, 1, 2, counts(Success=1, Failed=1), T0, T0 + timedelta(minutes=2)),
        Wave(1, 8, 8, WaveState.HALTED, 1, 8, counts(Success=2, Failed=1, Cancelled=5), T0 + timedelta(minutes=7)),
        Wave(2, 10, 10, WaveState.PENDING),
    ]
    failed = [
        FailedInvocation("i-0123456789abcdef0", InvocationStatus.FAILED, EVIL, 0, "cmd-1"),
        FailedInvocation("i-0123456789abcdef1", InvocationStatus.CANCELLED, "", 1, "cmd-2"),
    ]
    return RolloutView(rollout, waves, [SkippedTarget("i-0123456789abcdef9", "SSM agent ConnectionLost")], failed)


def test_the_document_has_every_status_and_the_exit_code() -> None:
    doc = rollout_document(halted_view())

    assert doc["exit_code"] == 2 and doc["state"] == "HALTED"
    assert set(doc["counts"]) == {s.value for s in InvocationStatus}
    assert doc["budget"] == {
        "allowed": 1,
        "used": 2,
        "remaining": -1,
        "statuses": ["ExecutionTimedOut", "Failed"],
    }
    assert doc["waves"][2]["started_at"] is None and doc["duration_seconds"] == 540
    assert rollout_document(halted_view(), failed_limit=1)["failed_instances"][0]["instance_id"].endswith("f0")
    assert rollout_document(halted_view(), failed_limit=1)["failed_total"] == 2


def test_the_report_escapes_every_text_and_shows_the_halt() -> None:
    page = render_report(rollout_document(halted_view()))

    assert "<script>" not in page and "alert(&#x27;x&#x27;)" in page and "&amp; &quot;quotes&quot;" in page
    assert "i-0123456789abcdef0" in page and "i-0123456789abcdef1" in page  # failed instances
    assert "SSM agent ConnectionLost" in page  # skipped nodes
    assert "not started" in page  # wave 2 on the timeline
    assert 'fill="#d62f2f"><title>wave 1 HALTED' in page  # the halted wave's bar
    assert "wave 0 baking 5m00s" in page  # the bake between wave 0 and wave 1
    assert "used 2, allowed 1" in page
    assert not re.search(r"<script|<link|<img|@import|url\(|src=", page, re.IGNORECASE)


def test_a_report_of_a_rollout_that_never_dispatched_still_renders() -> None:
    view = halted_view()
    view.rollout.counts = empty_counts()
    view.waves = [Wave(i, 5, 5, WaveState.PENDING) for i in range(2)]
    view.failed = []

    page = render_report(rollout_document(view))

    assert page.count('fill="#999">not started</text>') == 2 and "None." in page
    assert page.count("<td>not started</td>") == 2  # the verdict of each wave


def test_failures_come_first_with_links_and_the_halts_cancellations_are_grouped_apart() -> None:
    view = halted_view()
    cancelled = [
        FailedInvocation(f"i-0000000000000{n:04x}", InvocationStatus.CANCELLED, "", 1, "cmd-2") for n in range(22)
    ]
    view.failed = [
        *cancelled[:11],
        FailedInvocation("i-0123456789abcdef3", InvocationStatus.DELIVERY_TIMED_OUT, "Delivery Timed Out", 1, "cmd-2"),
        *cancelled[11:],
        FailedInvocation(
            "i-0123456789abcdef0",
            InvocationStatus.FAILED,
            "Failed",
            1,
            "cmd-2",
            output_url="https://my-bucket.s3.us-east-1.amazonaws.com/out/cmd-2/i-0123456789abcdef0/stdout",
        ),
    ]
    view.location = OutputLocation(region="us-east-1")
    view.rollout.counts = counts(Success=3, Failed=1, DeliveryTimedOut=1, Cancelled=22)

    doc = rollout_document(view)
    page = render_report(doc)

    # The document lists the budget's failure first, the other failure next, the 22 cancellations last.
    assert [f["status"] for f in doc["failed_instances"][:2]] == ["Failed", "DeliveryTimedOut"]
    assert {f["group"] for f in doc["failed_instances"][2:]} == {"stopped"} and doc["stopped_total"] == 22
    assert doc["failed_instances"][0]["output_link"] == (
        "https://s3.console.aws.amazon.com/s3/object/my-bucket?region=us-east-1&prefix=out%2Fcmd-2%2F"
        "i-0123456789abcdef0%2Fstdout"
    )
    # The page: failures before the timeline, with their links; the cancellations apart, folded.
    failures = page.index("<h2>Failures (2)</h2>")
    assert failures < page.index("<h2>Timeline</h2>") < page.index("<h2>Cancelled and terminated (22)</h2>")
    section = page[failures : page.index("<h2>Timeline</h2>")]
    assert "Cancelled" not in section
    assert section.index("i-0123456789abcdef0") < section.index("i-0123456789abcdef3")
    assert 'href="https://s3.console.aws.amazon.com/s3/object/my-bucket?region=us-east-1&amp;prefix=' in section
    # Without output settings, a failure links to its Run Command page.
    assert (
        'href="https://us-east-1.console.aws.amazon.com/systems-manager/run-command/cmd-2/i-0123456789abcdef3'
        in section
    )
    assert "Cancelled 22: stopped by the halt or a cancel" in page
    assert "<details><summary>22 instances</summary>" in page


def test_each_wave_has_a_verdict() -> None:
    page = render_report(rollout_document(halted_view()))
    assert "<td>passed with 1 failure</td>" in page  # wave 0: complete, one failure within the budget
    assert "<td>halted (1 failure)</td>" in page  # wave 1
    assert "<td>not started</td>" in page  # wave 2


def test_a_link_that_is_not_https_is_shown_never_followed() -> None:
    view = halted_view()
    view.failed = [FailedInvocation("i-0123456789abcdef0", InvocationStatus.FAILED, "", 0, "c", "javascript:alert(1)")]
    doc = rollout_document(view)
    doc["failed_instances"][0]["output_link"] = "javascript:alert(1)"
    page = render_report(doc)
    assert 'href="javascript' not in page and "javascript:alert(1)" in page
