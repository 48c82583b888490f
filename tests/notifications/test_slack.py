"""The Slack adapter against an incoming-webhook stand-in on 127.0.0.1: payloads, retries, the breaker, the secret.

Given a webhook secret (plain URL or JSON), when fleetwave posts, then Slack gets the Block Kit payload; when Slack
fails, the client retries a bounded number of times and then gives up with SlackError, never logging the URL.
"""

from __future__ import annotations

import json
import logging

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from fleetwave.adapters.slack import (
    SlackConfigError,
    SlackUnavailableError,
    SlackWebhook,
    webhook_url_from_secret,
)
from moto import mock_aws

from .conftest import WEBHOOK_PATH, SlackServer

MESSAGE = {
    "text": "fleetwave: monthly-patching SUCCEEDED",
    "attachments": [{"color": "#2EB67D", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]}],
}
TOKEN = WEBHOOK_PATH.rsplit("/", 1)[-1]


class FakeSecrets:
    """Powertools' SecretsProvider as far as SlackWebhook uses it."""

    def __init__(self, value: object) -> None:
        self.value = value
        self.calls: list[tuple[str, int | None]] = []

    def get(self, name: str, max_age: int | None = None, **_: object) -> object:
        self.calls.append((name, max_age))
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def webhook(value: object, **options: object) -> SlackWebhook:
    defaults: dict[str, object] = {"backoff_factor": 0.0, "timeout": 2}
    defaults.update(options)
    return SlackWebhook("fleetwave/slack", FakeSecrets(value), **defaults)  # type: ignore[arg-type]


def test_posts_the_block_kit_payload_to_the_webhook(slack_server: SlackServer):
    webhook(slack_server.url).post(MESSAGE)

    assert slack_server.messages == [MESSAGE]
    assert slack_server.paths == [WEBHOOK_PATH]


def test_the_secret_may_hold_json_with_a_webhook_url(slack_server: SlackServer):
    webhook(json.dumps({"webhook_url": slack_server.url, "channel": "#ops"})).post(MESSAGE)

    assert slack_server.messages == [MESSAGE]


def test_server_errors_are_retried_then_delivered(slack_server: SlackServer):
    slack_server.statuses = [500, 503]
    webhook(slack_server.url).post(MESSAGE)

    assert [r["status"] for r in slack_server.requests] == [500, 503, 200]
    assert slack_server.messages == [MESSAGE]


def test_a_slack_outage_gives_up_after_bounded_retries_then_the_breaker_skips_slack(slack_server: SlackServer):
    slack_server.statuses = [502] * 20
    clock = FakeClock()
    client = webhook(slack_server.url, max_retries=2, breaker_seconds=60, clock=clock)

    with pytest.raises(SlackUnavailableError, match="502"):
        client.post(MESSAGE)
    assert len(slack_server.requests) == 3  # one attempt, two retries

    # While the breaker is open, messages are dropped without a request
    with pytest.raises(SlackUnavailableError, match="breaker"):
        client.post(MESSAGE)
    assert len(slack_server.requests) == 3

    # After it, Slack is tried again
    clock.now += 61
    slack_server.statuses = []
    client.post(MESSAGE)
    assert slack_server.messages == [MESSAGE]


def test_a_closed_port_is_retried_then_given_up(closed_port_url: str):
    with pytest.raises(SlackUnavailableError, match="unreachable"):
        webhook(closed_port_url).post(MESSAGE)


def test_a_short_rate_limit_is_waited_for_a_long_one_is_not(slack_server: SlackServer):
    slack_server.statuses = [(429, {"Retry-After": "0"})]
    webhook(slack_server.url).post(MESSAGE)
    assert [r["status"] for r in slack_server.requests] == [429, 200]

    slack_server.requests.clear()
    slack_server.statuses = [(429, {"Retry-After": "120"})]
    with pytest.raises(SlackUnavailableError, match="429"):
        webhook(slack_server.url).post(MESSAGE)
    assert [r["status"] for r in slack_server.requests] == [429]


def test_a_rejected_payload_is_not_retried(slack_server: SlackServer):
    slack_server.statuses = [400]
    with pytest.raises(SlackUnavailableError, match="400 invalid_payload"):
        webhook(slack_server.url).post(MESSAGE)
    assert len(slack_server.requests) == 1


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ('{"url": "https://hooks.slack.com/services/T/B/x"}', "webhook_url"),
        ('{"webhook_url": ', "does not parse"),
        ("hooks.slack.com/services/T/B/x", "https webhook URL"),
        ("http://hooks.slack.com/services/T/B/x", "https webhook URL"),
        ("ftp://127.0.0.1/x", "https webhook URL"),
    ],
)
def test_a_secret_without_a_webhook_url_is_a_config_error_that_does_not_quote_it(value: str, problem: str):
    with pytest.raises(SlackConfigError, match=problem) as raised:
        webhook_url_from_secret(value)
    assert "hooks.slack.com" not in str(raised.value)


def test_a_webhook_on_a_host_that_is_not_allowed_is_a_config_error():
    # Whoever can change the secret cannot send fleetwave's messages to a host of their choosing
    for url in ("https://evil.example/services/T/B/x", "https://hooks.slack.com.evil.example/services/T/B/x"):
        with pytest.raises(SlackConfigError, match="host that is not allowed") as raised:
            webhook_url_from_secret(url)
        assert "evil" not in str(raised.value)
    # The allow-list is configurable (fleetwave:slackWebhookHosts)
    assert (
        webhook_url_from_secret("https://chat.example.com/hook", ["chat.example.com"])
        == "https://chat.example.com/hook"
    )
    with pytest.raises(SlackConfigError):
        webhook_url_from_secret("https://hooks.slack.com/services/T/B/x", ["chat.example.com"])


def test_accepted_secret_forms():
    url = "https://hooks.slack.com/services/T0/B0/xyz"
    assert webhook_url_from_secret(url) == url
    assert webhook_url_from_secret(f"  {url}\n") == url
    assert webhook_url_from_secret(json.dumps({"webhook_url": url})) == url
    assert webhook_url_from_secret(url.encode()) == url
    assert webhook_url_from_secret("http://127.0.0.1:8080/hook") == "http://127.0.0.1:8080/hook"
    assert webhook_url_from_secret("http://[::1]:8080/hook") == "http://[::1]:8080/hook"


def test_an_unreadable_secret_is_a_config_error():
    client = webhook(GetParameterError("AccessDeniedException"))
    with pytest.raises(SlackConfigError, match="cannot read the Slack secret"):
        client.post(MESSAGE)


def test_the_secret_is_read_with_powertools_parameters_and_cached(slack_server: SlackServer):
    with mock_aws():
        secretsmanager = boto3.client("secretsmanager", region_name="us-east-1")
        secretsmanager.create_secret(Name="fleetwave/slack", SecretString=json.dumps({"webhook_url": slack_server.url}))
        reads: list[str] = []
        secretsmanager.meta.events.register("before-call.secrets-manager.GetSecretValue", lambda **_: reads.append("x"))
        client = SlackWebhook("fleetwave/slack", SecretsProvider(boto3_client=secretsmanager), max_age=300)

        client.post(MESSAGE)
        client.post(MESSAGE)

    assert len(slack_server.messages) == 2
    assert reads == ["x"]  # the second message used the cached value


def test_the_webhook_url_never_reaches_a_log(
    slack_server: SlackServer, closed_port_url: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture
):
    # Given every logger at DEBUG (slack-sdk logs request URLs at INFO and DEBUG)
    caplog.set_level(logging.DEBUG)
    logging.getLogger("slack_sdk").setLevel(logging.DEBUG)
    try:
        # When messages go out, are retried, fail, and fail to connect
        slack_server.statuses = [500]
        webhook(slack_server.url).post(MESSAGE)
        slack_server.statuses = [500, 500, 500]
        with pytest.raises(SlackUnavailableError) as failed:
            webhook(slack_server.url).post(MESSAGE)
        with pytest.raises(SlackUnavailableError) as unreachable:
            webhook(closed_port_url).post(MESSAGE)
    finally:
        logging.getLogger("slack_sdk").setLevel(logging.NOTSET)

    # Then neither the URL nor its token appears in any log record, output, or error
    captured = capsys.readouterr()
    for text in (caplog.text, captured.out, captured.err, str(failed.value), str(unreachable.value)):
        assert TOKEN not in text
        assert "127.0.0.1" not in text
