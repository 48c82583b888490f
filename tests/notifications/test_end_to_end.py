"""Whole rollouts on the local twin, with Slack on a loopback webhook: what subscribers of each channel see.

Given a fleet and a spec, when a rollout runs to its end, then the fleetwave bus carries one event per transition,
the summary topic one summary, and Slack one message per wave transition plus one for the final state; redelivering
the whole stream changes none of it; and a Slack outage changes nothing about the rollout.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fleetwave.core.model import Rollout
from fleetwave.observability import logger as fleetwave_logger
from fleetwave_local.twin import Twin, TwinOptions

from ..integration.rollouts import assert_counters_exact, shell_spec, summaries_for
from .conftest import WEBHOOK_PATH, Golden, SlackServer
from .streams import StreamReader, notify

THREE_WAVES = Counter({"Rollout Started": 1, "Wave Started": 3, "Wave Completed": 3, "Rollout Finished": 1})
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_INSTANCE = re.compile(r"\bi-[0-9a-f]{17}\b")


def normalise(value: Any, rollout_id: str) -> Any:
    """Stable goldens: the rollout ID's random part, instance IDs and UUIDs become placeholders, numbered in order."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False).replace(rollout_id, "<rollout-id>")
    for pattern, label in ((_UUID, "uuid"), (_INSTANCE, "instance")):
        placeholders: dict[str, str] = {}
        for found in pattern.findall(text):
            placeholders.setdefault(found, f"<{label}-{len(placeholders) + 1}>")
        for found, placeholder in placeholders.items():
            text = text.replace(found, placeholder)
    return json.loads(text)


def slack_headers(server: SlackServer) -> list[str]:
    return [m["attachments"][0]["blocks"][0]["text"]["text"] for m in server.messages]


def test_a_rollout_is_told_once_per_transition_on_every_channel_even_when_the_stream_is_redelivered(
    slack_server: SlackServer, golden: Golden
):
    with Twin(TwinOptions(seed=31, slack_webhook_url=slack_server.url, slack_secret_json=True)) as twin:
        twin.add_nodes(6, tags={"env": "test"})
        started = twin.start(shell_spec(name="nightly", waves=[1, "50%", "100%"]))
        rollout = twin.run(started["rollout_id"])

        assert rollout.state.value == "SUCCEEDED"
        # The bus: one event per transition, in the ledger's order
        assert Counter(e["detail-type"] for e in twin.events) == THREE_WAVES
        assert [e["detail-type"] for e in twin.events][:2] == ["Rollout Started", "Wave Started"]
        assert {e["source"] for e in twin.events} == {"fleetwave"}
        assert all(e["detail"]["rollout_id"] == rollout.rollout_id for e in twin.events)
        # SNS: one summary, filterable by its attributes
        [summary] = twin.summaries
        assert summary["attributes"] == {
            "kind": "summary",
            "rollout_id": rollout.rollout_id,
            "spec": "nightly",
            "state": "SUCCEEDED",
            "severity": "info",
        }
        # Slack: one message per wave transition and one for the final state (which tells the last wave's end)
        assert slack_headers(slack_server) == [
            ":arrow_forward: nightly: wave 0 started (waves 0-2)",
            ":white_check_mark: nightly: wave 0 complete (waves 0-2)",
            ":arrow_forward: nightly: wave 1 started (waves 0-2)",
            ":white_check_mark: nightly: wave 1 complete (waves 0-2)",
            ":arrow_forward: nightly: wave 2 started (waves 0-2)",
            ":white_check_mark: nightly SUCCEEDED",
        ]
        assert set(slack_server.paths) == {WEBHOOK_PATH}
        golden.check(
            "e2e/rollout_succeeded.json",
            normalise(
                {
                    "events": [{"detail-type": e["detail-type"], "detail": e["detail"]} for e in twin.events],
                    "sns": [{**summary, "message": json.loads(summary["message"])}],
                    "slack": slack_server.messages,
                },
                rollout.rollout_id,
            ),
        )
        published = (len(twin.events), len(twin.summaries), len(slack_server.requests))
        puts = twin.api_calls["events:PutEvents"]

        # When the whole stream is delivered again, then in other batch splits (as after a crash or a bisect)
        twin.replay_stream()
        records = StreamReader(twin).read()
        for start in range(0, len(records), 7):
            assert notify(twin, records[start : start + 7]) == []

        # Then nothing is published twice
        assert (len(twin.events), len(twin.summaries), len(slack_server.requests)) == published
        assert twin.api_calls["events:PutEvents"] == puts == 8
        assert twin.api_calls["sns:Publish"] == 1
        assert twin.handler_errors == []


def run_halting_rollout(
    options: TwinOptions, on_ready: Callable[[], None] | None = None
) -> tuple[Rollout, list[dict[str, Any]], list[str], list[str]]:
    """12 nodes; three of wave 1's five fail, spending a budget of 1: the rollout halts in wave 1."""
    with Twin(options) as twin:
        if on_ready:
            on_ready()
        ids = sorted(twin.add_nodes(12, tags={"env": "test"}))
        for instance_id in ids[1:4]:
            twin.sim.set_outcome(instance_id, "fail")
        started = twin.start(shell_spec(waves=[1, "50%", "100%"], error_budget=1))
        rollout = twin.run(started["rollout_id"])
        assert_counters_exact(twin, rollout.rollout_id)
        events = [e["detail-type"] for e in twin.events]
        return rollout, summaries_for(twin, rollout.rollout_id), events, list(twin.handler_errors)


@pytest.fixture(scope="module")
def baseline() -> tuple[Rollout, list[dict[str, Any]], list[str], list[str]]:
    return run_halting_rollout(TwinOptions(seed=32))


class DebugLogs:
    """Every log record at DEBUG once started, with its extra keys: fleetwave's own logger (which does not
    propagate) and everything that reaches the root logger (slack-sdk, urllib, botocore, Powertools children)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        lines = self.lines

        class Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                lines.append(record.getMessage() + " " + json.dumps(record.__dict__, default=str))

        self.handler = Keep(level=logging.DEBUG)
        self.root = logging.getLogger()
        # botocore's wire log (DEBUG) prints every response body, GetSecretValue's too: it is never on in Lambda
        # unless someone turns it on, which docs/notifications.md warns against. Everything else runs at DEBUG.
        self.botocore = logging.getLogger("botocore")
        self.levels = (fleetwave_logger.log_level, self.root.level, self.botocore.level)

    def start(self) -> None:
        """Called once the twin is set up: the test's own set-up (which writes the secret) is not fleetwave's."""
        fleetwave_logger.setLevel("DEBUG")
        self.root.setLevel(logging.DEBUG)
        self.botocore.setLevel(logging.INFO)
        for target in (fleetwave_logger, self.root):
            target.addHandler(self.handler)

    def stop(self) -> None:
        for target in (fleetwave_logger, self.root):
            target.removeHandler(self.handler)
        fleetwave_logger.setLevel(self.levels[0])
        self.root.setLevel(self.levels[1])
        self.botocore.setLevel(self.levels[2])


@pytest.fixture
def debug_logs() -> Iterator[DebugLogs]:
    logs = DebugLogs()
    try:
        yield logs
    finally:
        logs.stop()


@pytest.mark.parametrize("outage", ["server-errors", "closed-port"])
def test_a_slack_outage_does_not_change_the_rollout_or_its_summary(
    outage: str,
    baseline,
    slack_server: SlackServer,
    closed_port_url: str,
    debug_logs: DebugLogs,
    capfd: pytest.CaptureFixture[str],
):
    # Given Slack answering 500 to everything, or nothing listening at all
    slack_server.statuses = [500] * 100
    url = slack_server.url if outage == "server-errors" else closed_port_url
    rollout, summaries, events, handler_errors = run_halting_rollout(
        TwinOptions(seed=32, slack_webhook_url=url), on_ready=debug_logs.start
    )
    expected, expected_summaries, expected_events, _ = baseline

    # Then the rollout ends as it does without Slack, and its summary still went to SNS
    assert rollout.state.value == expected.state.value == "HALTED"
    assert rollout.reason == expected.reason
    assert rollout.counts == expected.counts
    assert [s["state"] for s in summaries] == [s["state"] for s in expected_summaries] == ["HALTED"]
    assert events == expected_events
    # Slack's failure failed no stream record, and cost one message's bounded retries before the breaker opened
    assert handler_errors == []
    assert len(slack_server.requests) == (3 if outage == "server-errors" else 0)
    # And the webhook URL appears in no log
    assert any("Slack message not delivered" in line for line in debug_logs.lines)
    captured = capfd.readouterr()
    token = WEBHOOK_PATH.rsplit("/", 1)[-1]
    for text in (*debug_logs.lines, captured.out, captured.err):
        assert token not in text


def test_a_spec_that_opts_out_of_email_and_slack_still_publishes_events(slack_server: SlackServer):
    with Twin(TwinOptions(seed=33, slack_webhook_url=slack_server.url)) as twin:
        twin.add_nodes(2, tags={"env": "test"})
        spec = shell_spec(waves=["100%"], notifications={"slack": False, "email": False})
        rollout = twin.run(twin.start(spec)["rollout_id"])

        assert rollout.state.value == "SUCCEEDED"
        assert Counter(e["detail-type"] for e in twin.events) == Counter(
            {"Rollout Started": 1, "Wave Started": 1, "Wave Completed": 1, "Rollout Finished": 1}
        )
        assert twin.summaries == []
        assert slack_server.requests == []
