"""Slack through an incoming webhook whose URL lives in Secrets Manager.

The URL is a credential: anyone holding it can post to the channel. It is read with Powertools Parameters (cached
for ``max_age`` seconds), handed to slack-sdk's WebhookClient, and never logged: slack-sdk logs request URLs at
INFO/DEBUG, so the client gets a logger of its own that emits nothing, and errors are reported by type and status
code only, never by their text.

Slack being down must never hold a rollout up: the client retries a few times (connection errors, 5xx, short rate
limits), then ``post`` raises SlackError, and after a failure a circuit breaker skips Slack for a while instead of
paying the retries again for every message.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from http.client import HTTPException
from typing import Any, Protocol
from urllib.parse import urlsplit

from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import BotoCoreError, ClientError
from slack_sdk.errors import SlackRequestError
from slack_sdk.http_retry import (
    BackoffRetryIntervalCalculator,
    ConnectionErrorRetryHandler,
    HttpRequest,
    HttpResponse,
    Jitter,
    RateLimitErrorRetryHandler,
    RetryHandler,
    RetryState,
)
from slack_sdk.webhook import WebhookClient

from fleetwave.constants import DEFAULT_SLACK_WEBHOOK_HOSTS
from fleetwave.errors import FleetwaveError

SECRET_MAX_AGE_SECONDS = 300
REQUEST_TIMEOUT_SECONDS = 5
MAX_RETRIES = 2
BACKOFF_FACTOR = 0.25
# A 429 asking to wait longer than this is not waited for (the notify function has a batch to finish).
MAX_RATE_LIMIT_WAIT_SECONDS = 5
BREAKER_SECONDS = 60.0


class SlackError(FleetwaveError):
    """A Slack message was not delivered. Never retried by the caller: Slack is best effort."""


class SlackConfigError(SlackError):
    """The webhook secret is missing, unreadable or does not hold a webhook URL."""


class SlackUnavailableError(SlackError):
    """Slack did not take the message after the client's retries, or the breaker is open after a recent failure."""


class SecretSource(Protocol):
    """What Powertools' SecretsProvider offers (``get`` with a cache ``max_age``)."""

    def get(self, name: str, max_age: int | None = None, **kwargs: Any) -> Any: ...


def is_loopback(host: str) -> bool:
    """localhost or a loopback address (where plain http is acceptable: tests and the local twin)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def webhook_url_from_secret(value: Any, allowed_hosts: Sequence[str] = DEFAULT_SLACK_WEBHOOK_HOSTS) -> str:
    """The webhook URL from the secret's value: the plain URL, or JSON ``{"webhook_url": "..."}``.

    Only https URLs to one of ``allowed_hosts`` are accepted (http only to a loopback address, for tests and the
    local twin): whoever can change the secret cannot send fleetwave's messages elsewhere. Error messages never
    contain the value.
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise SlackConfigError("the Slack secret looks like JSON but does not parse") from None
        else:
            value = text
    if isinstance(value, dict):
        value = value.get("webhook_url")
        if not isinstance(value, str):
            raise SlackConfigError('the Slack secret is JSON without a "webhook_url" string')
        value = value.strip()
    if not isinstance(value, str) or not value:
        raise SlackConfigError("the Slack secret is empty")
    parts = urlsplit(value)
    host = parts.hostname or ""
    if not host or not (parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host))):
        raise SlackConfigError("the Slack secret does not hold an https webhook URL")
    if parts.scheme == "https" and host.lower() not in {allowed.lower() for allowed in allowed_hosts}:
        raise SlackConfigError(
            f"the Slack secret's webhook URL points at a host that is not allowed (allowed: {', '.join(allowed_hosts)})"
        )
    return value


class _FullJitter(Jitter):
    """Sleep a random time between half and all of the backoff (slack-sdk's default adds up to a whole second)."""

    def recalculate(self, duration: float) -> float:
        return random.uniform(duration / 2, duration)


class ServerErrorRetries(RetryHandler):
    """Retry any 5xx answer (slack-sdk's ServerErrorRetryHandler covers only 500 and 503)."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and response.status_code >= 500


class ShortRateLimitRetries(RateLimitErrorRetryHandler):
    """Retry a 429 only when its Retry-After is short: a long wait would stall the whole stream batch."""

    def __init__(self, max_retry_count: int, max_wait_seconds: float) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait_seconds = max_wait_seconds

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        wait = next((values[0] for key, values in response.headers.items() if key.lower() == "retry-after"), "1")
        try:
            return float(wait) <= self.max_wait_seconds
        except ValueError:
            return False


def _silent_logger() -> logging.Logger:
    """slack-sdk logs request URLs (the secret) at INFO and DEBUG: give it a logger that emits nothing."""
    silent = logging.getLogger("fleetwave.slack.webhook")
    silent.setLevel(logging.CRITICAL + 10)  # also turns off slack-sdk's own `logger.level <= DEBUG` checks
    silent.propagate = False
    if not silent.handlers:
        silent.addHandler(logging.NullHandler())
    return silent


class SlackWebhook:
    """Posts Block Kit messages to the webhook named by a Secrets Manager secret."""

    def __init__(
        self,
        secret_name: str,
        secrets: SecretSource,
        *,
        max_age: int = SECRET_MAX_AGE_SECONDS,
        timeout: int = REQUEST_TIMEOUT_SECONDS,
        max_retries: int = MAX_RETRIES,
        backoff_factor: float = BACKOFF_FACTOR,
        breaker_seconds: float = BREAKER_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        allowed_hosts: Sequence[str] = DEFAULT_SLACK_WEBHOOK_HOSTS,
    ) -> None:
        self.secret_name = secret_name
        self.allowed_hosts = tuple(allowed_hosts)
        self.secrets = secrets
        self.max_age = max_age
        self.timeout = timeout
        self.breaker_seconds = breaker_seconds
        self.clock = clock
        intervals = BackoffRetryIntervalCalculator(backoff_factor=backoff_factor, jitter=_FullJitter())
        self.retry_handlers: list[RetryHandler] = [
            # Connection refused/reset before Slack answered: the message was not taken, a retry cannot double it.
            ConnectionErrorRetryHandler(max_retry_count=max_retries, interval_calculator=intervals),
            ServerErrorRetries(max_retry_count=max_retries, interval_calculator=intervals),
            ShortRateLimitRetries(max_retry_count=max_retries, max_wait_seconds=MAX_RATE_LIMIT_WAIT_SECONDS),
        ]
        self._client: WebhookClient | None = None
        self._client_url = ""
        self._open_until = 0.0

    @property
    def breaker_open(self) -> bool:
        return self.clock() < self._open_until

    def _webhook(self) -> WebhookClient:
        try:
            value = self.secrets.get(self.secret_name, max_age=self.max_age)
        except (GetParameterError, ClientError, BotoCoreError) as error:
            raise SlackConfigError(f"cannot read the Slack secret: {type(error).__name__}") from None
        url = webhook_url_from_secret(value, self.allowed_hosts)
        if self._client is None or url != self._client_url:
            self._client = WebhookClient(
                url, timeout=self.timeout, logger=_silent_logger(), retry_handlers=self.retry_handlers
            )
            self._client_url = url
        return self._client

    def post(self, message: dict[str, Any]) -> None:
        """Deliver one message (``text`` plus ``attachments``/``blocks``). Raises SlackError when it was not."""
        if self.breaker_open:
            raise SlackUnavailableError("skipped: Slack failed recently (breaker open)")
        try:
            self._post(message)
        except SlackError:
            self._open_until = self.clock() + self.breaker_seconds
            raise

    def _post(self, message: dict[str, Any]) -> None:
        webhook = self._webhook()
        try:
            response = webhook.send_dict(message)
        except (OSError, HTTPException, SlackRequestError, ValueError) as error:
            # The error's text may quote the URL: report its type only.
            raise SlackUnavailableError(f"Slack unreachable: {type(error).__name__}") from None
        if response.status_code != 200:
            # Slack's error bodies are short codes (invalid_blocks, no_service, ...): safe to report.
            body = (response.body or "")[:80]
            raise SlackUnavailableError(f"Slack answered {response.status_code} {body}".rstrip())
