"""The outbox: ledger changes (the table's DynamoDB stream) become fleetwave events on EventBridge, SNS summaries
and notices, and Slack messages.

What is news (fleetwave.core.notifications.events decides):
  rollout item  PENDING -> RUNNING                    Rollout Started
                -> HALTED | CANCELLED | FAILED        Rollout Halted    + SNS summary + Slack
                -> SUCCEEDED | COMPLETED_WITH_ERRORS  Rollout Finished  + SNS summary + Slack
  wave item     -> RUNNING                            Wave Started      + Slack
                -> COMPLETE                           Wave Completed    + Slack (not for the last wave)
  remediation item inserted                           Remediation Started | Remediation Skipped
  notice item inserted                                SNS notice
Every other record (invocations, chunks, counters, idempotency records) returns at once.

Exactly once: each (ledger change, channel) is published under a Powertools Idempotency record keyed on the item's
key and its new state, so a redelivered stream batch, a retried record or a bisected batch publishes nothing twice.
A failed PutEvents or SNS Publish raises: the record (and, to keep the stream's order, every later record of the
batch) is reported as a batch item failure and retried. Slack is best effort: a failure is logged and counted, never
retried by the stream.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from fleetwave.adapters.aws import client
from fleetwave.adapters.events_bus import BusEvent, EventBus
from fleetwave.adapters.ledger import LedgerChange, ledger_change
from fleetwave.adapters.notifier import SummaryPublisher
from fleetwave.adapters.slack import SlackError, SlackWebhook
from fleetwave.constants import (
    NOTIFY_IDEMPOTENCY_PK,
    PK,
    SK,
    TTL_ATTRIBUTE,
)
from fleetwave.core.model import Rollout, RolloutState, WaveState
from fleetwave.core.notifications.common import OutputLocation, RolloutReport, event_id
from fleetwave.core.notifications.events import (
    remediation_detail_type,
    remediation_event_detail,
    rollout_detail_type,
    rollout_event_detail,
    wave_detail_type,
    wave_event_detail,
)
from fleetwave.core.notifications.slack import slack_final_message, slack_wants_wave_message, slack_wave_message
from fleetwave.core.notifications.sns import SnsMessage, notice_message, summary_message
from fleetwave.core.spec import RolloutSpec
from fleetwave.core.status import InvocationStatus
from fleetwave.core.summary import build_summary
from fleetwave.core.times import parse_moment
from fleetwave.errors import RetryLaterError
from fleetwave.observability import metrics
from fleetwave.service.deps import Deps

logger = Logger(service="fleetwave", child=True)

# Stream records live 24 hours and the event source gives up after 6: a week of idempotency records is ample.
IDEMPOTENCY_TTL_SECONDS = 7 * 86400
SUCCESS = InvocationStatus.SUCCESS


class OutboxBlockedError(RetryLaterError):
    """An earlier record of this batch failed: later ones wait for it, so subscribers see changes in order."""


# ---------------------------------------------------------------------------------------------------- channels
@dataclass
class Channels:
    """Where notify publishes. Tests and the local twin may pass their own."""

    events: EventBus
    summaries: SummaryPublisher
    slack: SlackWebhook | None = None


def build_channels(deps: Deps) -> Channels:
    settings = deps.settings
    slack = None
    if settings.SLACK_SECRET_NAME:
        slack = SlackWebhook(
            settings.SLACK_SECRET_NAME,
            SecretsProvider(boto3_client=client("secretsmanager")),
            allowed_hosts=settings.SLACK_WEBHOOK_HOSTS,
        )
    return Channels(events=EventBus(client("events"), settings.EVENT_BUS_NAME), summaries=deps.summaries, slack=slack)


_channels: tuple[Deps, Channels] | None = None


def default_channels(deps: Deps) -> Channels:
    """The channels of ``deps``, built once (the Slack secret's cache and breaker live as long as they do)."""
    global _channels
    if _channels is None or _channels[0] is not deps:
        _channels = (deps, build_channels(deps))
    return _channels[1]


# ---------------------------------------------------------------------------------------------------- specs
def _spec(spec_json: str | None) -> RolloutSpec | None:
    if spec_json is None:
        return None
    try:
        return RolloutSpec.model_validate(json.loads(spec_json))
    except (ValueError, ValidationError):
        return None


# ---------------------------------------------------------------------------------------------------- idempotency
_persistence: tuple[str, int, DynamoDBPersistenceLayer] | None = None


def persistence_layer(deps: Deps) -> DynamoDBPersistenceLayer:
    """Idempotency records in the ledger under one partition key (the notify role may write only there)."""
    global _persistence
    db = deps.ledger.db
    if _persistence is None or _persistence[0] != deps.settings.TABLE_NAME or _persistence[1] != id(db):
        layer = DynamoDBPersistenceLayer(
            table_name=deps.settings.TABLE_NAME,
            key_attr=PK,
            sort_key_attr=SK,
            static_pk_value=NOTIFY_IDEMPOTENCY_PK,
            expiry_attr=TTL_ATTRIBUTE,
            boto3_client=db,
        )
        _persistence = (deps.settings.TABLE_NAME, id(db), layer)
    return _persistence[2]


# One configuration for every channel (a persistence layer keeps the first one it sees); channels differ by prefix.
IDEMPOTENCY_CONFIG = IdempotencyConfig(
    event_key_jmespath="key", raise_on_no_idempotency_key=True, expires_after_seconds=IDEMPOTENCY_TTL_SECONDS
)


# ---------------------------------------------------------------------------------------------------- the outbox
@dataclass
class Outbox:
    """Publishes the news in one batch of stream records, each piece once per channel."""

    deps: Deps
    channels: Channels
    context: LambdaContext | None = None
    _failed: str | None = None

    def __post_init__(self) -> None:
        if self.context is not None:
            # In-progress records of a crashed invocation expire when its time is up; then a retry may publish.
            IDEMPOTENCY_CONFIG.register_lambda_context(self.context)

    def handle(self, record: Any) -> None:
        """The BatchProcessor record handler (``record`` is Powertools' DynamoDBRecord or a raw dict)."""
        raw = getattr(record, "raw_event", record)
        if self._failed:
            raise OutboxBlockedError(f"waiting for an earlier record of the batch ({self._failed})")
        try:
            change = ledger_change(raw)
            if change is not None:
                self._publish(change)
        except Exception:
            self._failed = str(raw.get("dynamodb", {}).get("SequenceNumber", "?"))
            raise

    def _publish(self, change: LedgerChange) -> None:
        match change.item_type:
            case "rollout":
                self._rollout(change)
            case "wave":
                self._wave(change)
            case "remediation":
                self._remediation(change)
            case "notice":
                self._notice(change)

    # -------------------------------------------------------------- once per (change, channel)
    def _once(self, channel: str, identity: str, publish: Callable[[], dict[str, Any]]) -> None:
        @idempotent_function(
            data_keyword_argument="change",
            config=IDEMPOTENCY_CONFIG,
            persistence_store=persistence_layer(self.deps),
            key_prefix=f"notify.{channel}",
        )
        def publish_once(change: dict[str, str]) -> dict[str, Any]:
            return publish()

        publish_once(change={"key": identity})

    def _skip_unpublishable(self, change: LedgerChange, error: Exception) -> None:
        # Retrying cannot fix a malformed item; blocking the stream on it would hold every later change up.
        logger.error(
            "ledger change not publishable; skipped",
            extra={"pk": change.pk, "sk": change.sk, "error": type(error).__name__},
        )
        metrics.add_metric(name="UnpublishableChanges", unit="Count", value=1)

    def _put_event(self, identity: str, detail_type: str, detail: dict[str, Any], at: datetime | None) -> None:
        def put() -> dict[str, Any]:
            event_ref = self.channels.events.put(BusEvent(detail_type, detail, time=at))
            metrics.add_metric(name="EventsPublished", unit="Count", value=1)
            logger.info("event published", extra={"detail_type": detail_type, "event_id": detail["event_id"]})
            return {"event": event_ref}

        self._once("events", identity, put)

    def _post_slack(self, identity: str, message: Callable[[], dict[str, Any]], spec: RolloutSpec | None) -> None:
        slack = self.channels.slack
        if slack is None or (spec is not None and not spec.notifications.slack):
            return

        def post() -> dict[str, Any]:
            try:
                slack.post(message())
            except SlackError as error:
                # Best effort: counted and logged (never with the URL), never retried by the stream.
                metrics.add_metric(name="SlackMessagesFailed", unit="Count", value=1)
                logger.warning("Slack message not delivered", extra={"change": identity, "error": str(error)})
                return {"slack": "failed"}
            metrics.add_metric(name="SlackMessagesSent", unit="Count", value=1)
            return {"slack": "sent"}

        self._once("slack", identity, post)

    def _publish_sns(self, identity: str, message: Callable[[], SnsMessage], metric: str) -> None:
        def publish() -> dict[str, Any]:
            sns = message()
            message_id = self.channels.summaries.publish(sns.subject, sns.body, sns.payload, sns.attributes)
            metrics.add_metric(name=metric, unit="Count", value=1)
            return {"sns": message_id}

        self._once("sns", identity, publish)

    # -------------------------------------------------------------- rollouts and waves
    def _report(self, rollout: Rollout, spec: RolloutSpec | None) -> RolloutReport:
        ledger = self.deps.ledger
        failures = any(n for status, n in rollout.counts.items() if status.is_terminal and status is not SUCCESS)
        output = spec.output if spec else None
        return RolloutReport(
            rollout=rollout,
            waves=ledger.plans.waves(rollout.rollout_id),
            # The query reads every invocation of the rollout: only worth it when some failed.
            failed=ledger.invocations.failed(rollout.rollout_id) if failures else (),
            location=OutputLocation.of(output, rollout.document_name, self.deps.settings.AWS_REGION),
        )

    def _rollout(self, change: LedgerChange) -> None:
        try:
            new_state = RolloutState(str(change.new_state))
            old_state = RolloutState(change.old_state) if change.old_state else None
            detail_type = rollout_detail_type(old_state, new_state)
            if detail_type is None:
                return
            rollout = change.rollout()
        except (KeyError, ValueError, TypeError) as error:
            self._skip_unpublishable(change, error)
            return
        identity = change.identity(new_state.value)
        detail = rollout_event_detail(detail_type, rollout, old_state, event_id=event_id(identity))
        self._put_event(identity, detail_type, detail, parse_moment(detail["occurred_at"]))
        if not new_state.is_terminal:
            return
        spec = _spec(change.spec_json())
        rollout_id = rollout.rollout_id
        if spec is None or spec.notifications.email:

            def summary() -> SnsMessage:
                latest = self.deps.ledger.rollouts.get(rollout_id)  # late invocations may have ended since
                report = self._report(latest, spec)
                payload = build_summary(latest, report.waves, report.failed, self.deps.ledger.plans.skipped(rollout_id))
                return summary_message(report, payload)

            self._publish_sns(identity, summary, "SummariesPublished")
        self._post_slack(
            identity, lambda: slack_final_message(self._report(self.deps.ledger.rollouts.get(rollout_id), spec)), spec
        )

    def _wave(self, change: LedgerChange) -> None:
        try:
            new_state = WaveState(str(change.new_state))
            old_state = WaveState(change.old_state) if change.old_state else None
            detail_type = wave_detail_type(old_state, new_state)
            if detail_type is None:
                return
            wave = change.wave()
        except (KeyError, ValueError, TypeError) as error:
            self._skip_unpublishable(change, error)
            return
        rollout, spec_json = self.deps.ledger.rollouts.get_with_spec(change.rollout_id)
        identity = change.identity(new_state.value)
        detail = wave_event_detail(detail_type, rollout, wave, event_id=event_id(identity))
        self._put_event(identity, detail_type, detail, parse_moment(detail["occurred_at"]))
        if slack_wants_wave_message(detail_type, wave, rollout.wave_count):
            spec = _spec(spec_json)
            self._post_slack(identity, lambda: slack_wave_message(self._report(rollout, spec), detail_type, wave), spec)

    # -------------------------------------------------------------- remediations and notices
    def _remediation(self, change: LedgerChange) -> None:
        try:
            record = change.remediation()
        except ValidationError as error:
            self._skip_unpublishable(change, error)
            return
        identity = change.identity("INSERT")
        at = change.happened_at()
        detail = remediation_event_detail(record, event_id=event_id(identity), occurred_at=at)
        self._put_event(identity, remediation_detail_type(record), detail, at)

    def _notice(self, change: LedgerChange) -> None:
        try:
            notice = change.notice()
        except ValidationError as error:
            self._skip_unpublishable(change, error)
            return
        identity = change.identity("INSERT")
        at = change.happened_at()
        self._publish_sns(
            identity, lambda: notice_message(notice, event_id=event_id(identity), occurred_at=at), "NoticesPublished"
        )
