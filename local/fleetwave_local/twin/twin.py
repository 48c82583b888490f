"""The local twin: fleetwave's cloud wiring reproduced in process, on moto, the fleet simulator and a virtual clock.

What runs is the real thing: the Lambda handlers, the boto3 calls they make, the EventBridge rule and the SNS
subscription that feed the status queue, the DynamoDB stream that feeds notify, the alarm queue that feeds remediate,
and the Scheduler schedules that invoke advance_wave or queue a verification. Operators start and cancel through the
operator function, with the identity a function URL's request context would carry. Only the glue the cloud provides
(Lambda's pollers and function URL, Scheduler's firing) is done here, on a virtual clock, so a four-hour rollout with
bake times runs in seconds.

`Twin` puts the pieces together: the environment and moto, the simulator (`fleetwave_local.simulator`), the
resources (`resources`), the functions' deps, and the glue (`delivery`, `schedules`), and runs the clock (`run`).
"""

from __future__ import annotations

import json
import logging
import os
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import boto3
from fleetwave.adapters.ledger import Ledger, forget_placements
from fleetwave.constants import TABLE_NAME
from fleetwave.core.model import Rollout, Wave
from fleetwave.core.spec import parse_spec, spec_digest
from fleetwave.settings import Settings

from fleetwave_local.twin.account import ACCOUNT, REGION, alarm_arn
from fleetwave_local.twin.alarms import alarm_state_change_event
from fleetwave_local.twin.delivery import Delivery
from fleetwave_local.twin.lambdas import function_url_event, invoke_handler, process_alarm_batch
from fleetwave_local.twin.moto_patches import composite_alarms, fast_transactions
from fleetwave_local.twin.options import TwinOptions
from fleetwave_local.twin.resources import create_resources, function_settings
from fleetwave_local.twin.schedules import Schedules

_COUNTED_SERVICES = ("ssm", "ec2", "dynamodb", "scheduler", "cloudwatch", "sns", "events")


@dataclass
class Snapshot:
    """What the CLI shows while a rollout runs."""

    rollout: Rollout
    waves: list[Wave]
    now: datetime


class TwinTimeoutError(RuntimeError):
    """The rollout did not end within the virtual time allowed."""


@contextmanager
def _environment(values: dict[str, str | None]) -> Iterator[None]:
    """Set (or, for None, unset) environment variables for the twin's lifetime."""
    saved = {key: os.environ.get(key) for key in values}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class Twin:
    """Use as a context manager: ``with Twin(TwinOptions(seed=7)) as twin: twin.add_nodes(...); twin.start(spec)``."""

    options: TwinOptions = field(default_factory=TwinOptions)
    api_calls: Counter[str] = field(default_factory=Counter)
    summaries: list[dict[str, Any]] = field(default_factory=list)
    handler_errors: list[str] = field(default_factory=list)
    # Every event notify put on the fleetwave bus, as a rule on the bus delivered it to an SQS queue.
    events: list[dict[str, Any]] = field(default_factory=list)
    # What remediate decided for each alarm-queue message it handled (its log lines, as dicts).
    remediations: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stack = ExitStack()
        self._rng = random.Random(f"{self.options.seed}:twin")
        self._plumbing_clients: dict[str, Any] = {}
        self._scheduled_specs: dict[str, str] = {}

    # ------------------------------------------------------------------ set-up
    def __enter__(self) -> Twin:
        env: dict[str, str | None] = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SECURITY_TOKEN": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "POWERTOOLS_SERVICE_NAME": "fleetwave",
            "POWERTOOLS_METRICS_NAMESPACE": "fleetwave",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": os.environ.get("FLEETWAVE_TWIN_LOG_LEVEL", "ERROR"),
        }
        # No real endpoint may be reached from the twin: moto answers everything in process.
        env.update({key: None for key in os.environ if key.startswith("AWS_ENDPOINT_URL") or key == "AWS_PROFILE"})
        self._stack.enter_context(_environment(env))
        # The functions' Powertools logger was created at import, perhaps before this environment existed: the twin
        # hosts the functions, so it sets their level (FLEETWAVE_TWIN_LOG_LEVEL, default ERROR) for its lifetime.
        self._set_functions_log_level(str(env["POWERTOOLS_LOG_LEVEL"]).upper())
        from moto import mock_aws

        self._stack.enter_context(mock_aws())
        from moto.moto_api._internal import mock_random

        # moto's IDs (instances, commands) come from its own random: seeded, the same seed gives the same fleet.
        mock_random.seed(self.options.seed)
        self._stack.enter_context(fast_transactions())
        self._stack.enter_context(composite_alarms())
        from fleetwave.adapters.aws import reset_clients

        from fleetwave_local.simulator import FleetSimulator, VirtualClock

        reset_clients()
        forget_placements()
        boto3.DEFAULT_SESSION = None
        self.clock = VirtualClock(self.options.start)
        o = self.options
        self.sim = FleetSimulator(
            self.clock,
            seed=o.seed,
            region=REGION,
            account_id=ACCOUNT,
            fail_rate=o.fail_rate,
            execution_timeout_rate=o.execution_timeout_rate,
            delivery_timeout_rate=o.delivery_timeout_rate,
            undeliverable_rate=o.undeliverable_rate,
            slow_rate=o.slow_rate,
            offline_rate=o.offline_rate,
            cancel_race_rate=o.cancel_race_rate,
            drop_rate=o.drop_rate,
            duplicate_rate=o.duplicate_rate,
            run_seconds=o.run_seconds,
        )
        self._stack.enter_context(self.sim)
        self._plumbing = boto3.session.Session(region_name=REGION)
        self.resources = create_resources(self.plumbing, self.options)
        self.deps = self._build_deps()
        self._delivery = Delivery(
            self.plumbing,
            self.resources,
            self.invoke,
            lambda event: process_alarm_batch(event, self.deps),
            rng=self._rng,
            shuffle=self.options.shuffle,
            summaries=self.summaries,
            events=self.events,
            remediations=self.remediations,
            errors=self.handler_errors,
        )
        self._schedules = Schedules(self.plumbing, self.invoke, self.clock.now)
        # The twin's own reads (progress, checks) go through an uncounted client.
        self.reader = Ledger(TABLE_NAME, self.plumbing("dynamodb"))
        self._stack.callback(reset_clients)
        return self

    def _set_functions_log_level(self, level: str) -> None:
        """The "fleetwave" logger and its children (Powertools sets a child's level when it is created, from the
        environment of that moment): all at ``level`` while the twin lives, as they were afterwards."""
        existing = logging.root.manager.loggerDict
        # Only loggers that exist: getLogger on a placeholder would put a handler-less logger between a child and
        # its Powertools parent.
        children = [n for n, v in existing.items() if n.startswith("fleetwave.") and isinstance(v, logging.Logger)]
        for name in ["fleetwave", *children]:
            logger = logging.getLogger(name)
            self._stack.callback(logger.setLevel, logger.level)
            logger.setLevel(level if name == "fleetwave" else logging.NOTSET)

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def plumbing(self, service: str) -> Any:
        """A client for the twin's own glue (not counted as fleetwave's API calls)."""
        if service not in self._plumbing_clients:
            endpoint = None
            if service == "dynamodbstreams":
                # moto 5.2 routes DynamoDB Streams only for a URL whose path is "/", which botocore no longer sends.
                endpoint = f"https://streams.dynamodb.{REGION}.amazonaws.com/"
            self._plumbing_clients[service] = self._plumbing.client(service, region_name=REGION, endpoint_url=endpoint)
        return self._plumbing_clients[service]

    def settings(self) -> Settings:
        return function_settings(self.resources, self.options, self._scheduled_specs)

    def _build_deps(self) -> Any:
        from fleetwave.adapters.aws import client
        from fleetwave.service.deps import build_deps

        for service in _COUNTED_SERVICES:
            client(service).meta.events.register("before-call", self._count_call)
        return build_deps(self.settings(), clock=self.clock.now)

    def _count_call(self, model: Any, **_: Any) -> None:
        self.api_calls[f"{model.service_model.service_name}:{model.name}"] += 1

    # ------------------------------------------------------------------ fleet and documents
    def add_nodes(self, n: int, *, tags: dict[str, str] | None = None, ec2: bool = True) -> list[str]:
        """Managed nodes carrying ``tags`` and, like every node fleetwave may reach by default, the managed tag."""
        return list(self.sim.add_nodes(n, tags={**(self.options.managed_tag or {}), **(tags or {})}, ec2=ec2))

    def create_document(self, name: str, content: dict[str, Any], document_type: str = "Command") -> None:
        self.plumbing("ssm").create_document(
            Name=name, Content=json.dumps(content), DocumentType=document_type, DocumentFormat="JSON"
        )

    def put_alarm(
        self,
        name: str,
        state: str = "OK",
        *,
        dimensions: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        """Create (or update) a metric alarm in moto's CloudWatch and set its state; returns its ARN."""
        cloudwatch = self.plumbing("cloudwatch")
        extra: dict[str, Any] = {}
        if dimensions:
            extra["Dimensions"] = [{"Name": key, "Value": value} for key, value in dimensions.items()]
        if tags:
            extra["Tags"] = [{"Key": key, "Value": value} for key, value in tags.items()]
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            MetricName="Errors",
            Namespace="App",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
            **extra,
        )
        cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason="twin")
        return alarm_arn(name)

    def put_composite_alarm(self, name: str, state: str = "OK", *, tags: dict[str, str] | None = None) -> str:
        """Create (or update) a composite alarm (no metric, so no dimension) and set its state; returns its ARN."""
        cloudwatch = self.plumbing("cloudwatch")
        extra: dict[str, Any] = {}
        if tags:
            extra["Tags"] = [{"Key": key, "Value": value} for key, value in tags.items()]
        cloudwatch.put_composite_alarm(AlarmName=name, AlarmRule=f"ALARM({name}-a) OR ALARM({name}-b)", **extra)
        cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason="twin")
        return alarm_arn(name)

    def set_alarm_state(self, name: str, state: str) -> None:
        self.plumbing("cloudwatch").set_alarm_state(AlarmName=name, StateValue=state, StateReason="twin")

    def set_calendar(self, name: str, state: str = "OPEN") -> None:
        """An SSM Change Calendar that is OPEN or CLOSED from now on (the simulator answers GetCalendarState)."""
        self.sim.calendars.set_state(name, "CLOSED" if state == "CLOSED" else "OPEN")

    def alarm_event(self, alarm_name: str, **kwargs: Any) -> dict[str, Any]:
        """A CloudWatch Alarm State Change event as EventBridge delivers it (see alarm_state_change_event)."""
        kwargs.setdefault("event_id", str(uuid.UUID(int=self._rng.getrandbits(128), version=4)))
        kwargs.setdefault("at", self.clock.now())
        return alarm_state_change_event(alarm_name, **kwargs)

    def alarm(self, alarm_name: str, **kwargs: Any) -> dict[str, Any]:
        """CloudWatch's alarm state change, as the alarm rule (this account and region only) delivers it to the alarm
        queue; returns what remediate decided. An event the rule's pattern would not match never reaches the queue."""
        event = self.alarm_event(alarm_name, **kwargs)
        if (event["account"], event["region"]) != (ACCOUNT, REGION):
            return {"outcome": "not delivered", "reason": "the alarm rule matches this account and region only"}
        return self.remediate(event)

    def remediate(self, message: dict[str, Any]) -> dict[str, Any]:
        """Put a message on the alarm queue (as the rule, a verification timer, or anyone allowed sqs:SendMessage
        would), let remediate handle the queue, and return what it decided for that message."""
        handled = len(self.remediations)
        self.plumbing("sqs").send_message(QueueUrl=self.resources.alarm_queue_url, MessageBody=json.dumps(message))
        self.deliver()
        decided = self.remediations[handled:]
        return decided[0] if decided else {"outcome": "retry", "reason": "the message failed; SQS will redeliver it"}

    def redeliver_alarm_queue(self) -> int:
        """Messages whose handling failed come back once their visibility timeout lapses: now, in the twin."""
        return self._delivery.redeliver_alarm_queue()

    def register_schedule(self, spec: dict[str, Any]) -> None:
        """As the stack does for a scheduled spec: start_rollout now knows it by its digest (SCHEDULED_SPECS)."""
        self._scheduled_specs[spec["name"]] = spec_digest(parse_spec(spec))
        self.deps.settings = self.settings()

    def schedule_start(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Scheduler fires a schedule of ``spec`` (registered first, as the stack would have)."""
        self.register_schedule(spec)
        result: dict[str, Any] = self.invoke("start_rollout", {"spec": spec})
        self.deliver()
        return result

    # ------------------------------------------------------------------ invoking the functions
    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        return invoke_handler(name, event, self.deps)

    def operator_request(
        self, method: str, path: str, body: Any = None, *, caller_arn: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """A request to the operator function URL, as Lambda passes it on after AWS_IAM auth: (status, JSON body)."""
        caller = self.options.operator_arn if caller_arn is None else caller_arn
        event = function_url_event(method, path, body, caller_arn=caller)
        response = self.invoke("operator", event)
        self.deliver()
        return int(response["statusCode"]), json.loads(response.get("body") or "{}")

    def start(self, spec: dict[str, Any]) -> dict[str, Any]:
        """An operator starts ``spec`` through the operator entry point; returns its answer."""
        return self.operator_request("POST", "/rollouts", {"spec": spec})[1]

    def cancel(self, rollout_id: str, reason: str = "cancelled by operator") -> dict[str, Any]:
        return self.operator_request("POST", f"/rollouts/{rollout_id}/cancel", {"reason": reason})[1]

    # ------------------------------------------------------------------ the cloud's glue
    def deliver(self) -> int:
        """Feed the status queue, the table's stream and the alarm queue to their functions until all are empty."""
        return self._delivery.deliver()

    def collect_notifications(self) -> None:
        """Move what notify published (SNS messages, bus events) from their inbox queues to ``summaries``/``events``."""
        self._delivery.collect_notifications()

    def replay_stream(self) -> int:
        """Deliver the whole stream to notify again, from its first record (a redelivery, as after a crash)."""
        return self._delivery.replay_stream()

    # ------------------------------------------------------------------ running
    def wave_snapshot(self, rollout_id: str) -> Snapshot:
        ledger = self.reader
        return Snapshot(ledger.rollouts.get(rollout_id), ledger.plans.waves(rollout_id), self.clock.now())

    def _open_invocations(self, rollout: Rollout) -> int:
        return sum(max(0, c.open) for c in self.reader.dispatch.chunks(rollout.rollout_id, rollout.current_wave))

    def run(
        self,
        rollout_id: str,
        *,
        max_virtual: timedelta = timedelta(days=7),
        on_progress: Callable[[Snapshot], None] | None = None,
    ) -> Rollout:
        """Run virtual time until the rollout ended and every invocation it sent has settled."""
        deadline = self.clock.now() + max_virtual
        next_reconcile = self.clock.now() + self.options.reconcile_every
        while True:
            self.deliver()
            snapshot = self.wave_snapshot(rollout_id)
            if on_progress:
                on_progress(snapshot)
            rollout = snapshot.rollout
            sim_next = self.sim.next_event_time()
            schedules = self._schedules.pending()
            if rollout.state.is_terminal and sim_next is None and not schedules and not self._open_invocations(rollout):
                return rollout
            timers = [t for t in (schedules[0][0] if schedules else None, next_reconcile) if t]
            moment = min([*timers, *([sim_next + self.options.batching_window] if sim_next else [])])
            moment = max(moment, self.clock.now())
            if moment > deadline:
                raise TwinTimeoutError(f"rollout {rollout_id} still {rollout.state.value} after {max_virtual}")
            self.clock.advance_to(moment)
            self.sim.advance_to(moment)
            self.deliver()
            self._schedules.fire_due()
            if self.clock.now() >= next_reconcile:
                self.invoke("reconcile", {})
                next_reconcile = self.clock.now() + self.options.reconcile_every
