"""Fleet simulator: SSM agents answering Run Command over virtual time, for tests and the local twin.

moto serves EC2, SSM documents, SNS, SQS and EventBridge, but marks every command Success at once, emits no status
events and lacks ListCommandInvocations, CancelCommand, DescribeInstanceInformation, DescribeSessions,
GetConnectionStatus and TerminateSession. A `FleetSimulator`, once installed, answers those SSM operations (and
SendCommand, ListCommands, GetCommandInvocation) at the botocore HTTP layer, exactly where moto answers, and moves
every invocation through SSM's real statuses on a `VirtualClock`, emitting the documented status events through
moto's EventBridge and SNS. Every other SSM operation (documents...) still goes to moto.

    with mock_aws():
        clock = VirtualClock()
        with FleetSimulator(clock, seed=7, fail_rate=0.1) as sim:
            ids = sim.add_nodes(20, tags={"env": "prod"})
            ssm = boto3.client("ssm")      # any client created after this module was imported
            ssm.send_command(InstanceIds=ids, DocumentName="My-Doc", MaxConcurrency="5")
            sim.run_until_idle()           # or: clock moves, then sim.advance_to(clock.now())

Import this module before boto3 creates the session your clients come from (see `botocore_hook`); clients created
before that import do not see the simulator unless passed to `patch_client()`.

Outcomes are seeded per node: the failure mode of node X is drawn from `Random(f"{seed}:{X}:outcome")`, so the same
seed gives every node the same fate whatever the order of calls. Draw order: undeliverable, delivery timeout,
fail, execution timeout (cumulative rates), else success; `slow` (5-10x the runtime) and `offline` are drawn
independently. The k-th invocation on a node draws its runtime from `Random(f"{seed}:{X}:run:{k}")`.
"""

from __future__ import annotations

import heapq
import random
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Final

import botocore.loaders
import botocore.session
from botocore.awsrequest import AWSPreparedRequest, AWSResponse

from . import botocore_hook
from .botocore_hook import SsmApiError, internal_calls, patch_client
from .clock import VirtualClock
from .events import EventEmitter
from .model import (
    CANCELLED,
    CANCELLING,
    CONNECTION_LOST,
    D_CANCELLED,
    D_CANCELLING,
    D_DELAYED,
    D_DELIVERY_TIMED_OUT,
    D_EXECUTION_TIMED_OUT,
    D_FAILED,
    D_IN_PROGRESS,
    D_INCOMPLETE,
    D_INVALID_PLATFORM,
    D_PENDING,
    D_SUCCESS,
    D_TERMINATED,
    D_UNDELIVERABLE,
    DELAYED,
    FAILED,
    IN_PROGRESS,
    INACTIVE,
    INSTANCE_ID_PATTERN,
    ONLINE,
    OUTCOME_KINDS,
    PENDING,
    PING_STATUSES,
    PLATFORMS,
    SUCCESS,
    TIMED_OUT,
    Command,
    EmittedEvent,
    Invocation,
    ManagedNode,
    OutcomeKind,
    Plan,
    Session,
    SimStats,
    Transition,
)

__all__ = [
    "Command",
    "EmittedEvent",
    "FleetSimulator",
    "Invocation",
    "ManagedNode",
    "Session",
    "SimStats",
    "SsmApiError",
    "VirtualClock",
    "patch_client",
]

#: from SendCommand to the rate controller's first hand-out (so Pending is observable)
DISPATCH_DELAY: Final = timedelta(seconds=1)
#: how long SSM tries an undeliverable node before giving up
UNDELIVERABLE_AFTER: Final = timedelta(seconds=5)
#: how long an agent takes to acknowledge a cancel
CANCEL_ACK_DELAY: Final = timedelta(seconds=2)
DEFAULT_IMAGE_ID: Final = "ami-12c6146b"


_LOADER: list[botocore.loaders.Loader] = []


def _shared_loader() -> botocore.loaders.Loader:
    if not _LOADER:
        _LOADER.append(botocore.loaders.create_loader())
    return _LOADER[0]


@dataclass(order=True)
class _Entry:
    when: datetime
    seq: int
    action: str = field(compare=False)
    target: Invocation | Command = field(compare=False)
    version: int = field(compare=False)


class FleetSimulator:
    """SSM agents and the Run Command service, simulated. See the module docstring."""

    def __init__(
        self,
        clock: VirtualClock | None = None,
        *,
        seed: int | str = 0,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        fail_rate: float = 0.0,
        execution_timeout_rate: float = 0.0,
        delivery_timeout_rate: float = 0.0,
        undeliverable_rate: float = 0.0,
        slow_rate: float = 0.0,
        offline_rate: float = 0.0,
        cancel_race_rate: float = 0.2,
        drop_rate: float = 0.0,
        duplicate_rate: float = 0.0,
        visibility_delay: float = 0,
        run_seconds: tuple[int, int] = (30, 120),
        event_bus_name: str = "default",
        execution_timeout_seconds: int | None = None,
    ) -> None:
        outcome_total = fail_rate + execution_timeout_rate + delivery_timeout_rate + undeliverable_rate
        if outcome_total > 1.0:
            raise ValueError("fail/execution_timeout/delivery_timeout/undeliverable rates add up to more than 1")
        if run_seconds[0] < 1 or run_seconds[1] < run_seconds[0]:
            raise ValueError("run_seconds must be (low, high) with 1 <= low <= high")
        self.clock = clock or VirtualClock()
        self.seed = seed
        self.region = region
        self.account_id = account_id
        self.fail_rate = fail_rate
        self.execution_timeout_rate = execution_timeout_rate
        self.delivery_timeout_rate = delivery_timeout_rate
        self.undeliverable_rate = undeliverable_rate
        self.slow_rate = slow_rate
        self.offline_rate = offline_rate
        self.cancel_race_rate = cancel_race_rate
        self.visibility_delay = visibility_delay
        self.run_seconds = run_seconds
        self.event_bus_name = event_bus_name
        self.execution_timeout_seconds = execution_timeout_seconds

        self.stats = SimStats()
        #: every status event produced, per path, with whether it was dropped or duplicated
        self.events: list[EmittedEvent] = []
        self._lock = threading.RLock()
        self._nodes: dict[str, ManagedNode] = {}
        self._outcome_overrides: dict[str, OutcomeKind] = {}
        self._commands: dict[str, Command] = {}
        self._sessions: dict[str, Session] = {}
        self._heap: list[_Entry] = []
        self._seq = 0
        self._session_seq = 0
        self._botocore_session: botocore.session.Session | None = None
        self._clients: dict[str, Any] = {}
        self._emitter = EventEmitter(
            seed=seed,
            region=region,
            account_id=account_id,
            event_bus_name=event_bus_name,
            drop_rate=drop_rate,
            duplicate_rate=duplicate_rate,
            stats=self.stats,
            log=self.events,
            client_factory=self.client,
        )
        from .api import SsmApi  # here: the api module imports this one (for typing)
        from .calendars import ChangeCalendars

        #: SSM Change Calendars (GetCalendarState)
        self.calendars = ChangeCalendars(self.clock)
        self._api = SsmApi(self)

    # --- installation ----------------------------------------------------------------------------------------------

    def install(self) -> FleetSimulator:
        """Start answering SSM calls (for every client created after this module was imported)."""
        botocore_hook.activate(self)
        return self

    def uninstall(self) -> None:
        botocore_hook.deactivate(self)

    @property
    def installed(self) -> bool:
        return botocore_hook.active_handler() is self

    def __enter__(self) -> FleetSimulator:
        return self.install()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.uninstall()

    def client(self, service: str) -> Any:
        """The simulator's own boto3 client for `service` (created lazily; its calls bypass the simulator)."""
        if service not in self._clients:
            if self._botocore_session is None:
                self._botocore_session = botocore.session.Session()
                # service models are big JSON files: parse them once per process, not once per simulator
                self._botocore_session.register_component("data_loader", _shared_loader())
            self._clients[service] = self._botocore_session.create_client(service, region_name=self.region)
        return self._clients[service]

    # --- fleet -----------------------------------------------------------------------------------------------------

    def add_nodes(
        self,
        n: int,
        *,
        tags: dict[str, str] | None = None,
        platform: str = "Linux",
        ec2: bool = True,
        image_id: str = DEFAULT_IMAGE_ID,
    ) -> list[str]:
        """Create `n` managed nodes and return their instance IDs.

        With `ec2=True` (default) they are real moto EC2 instances carrying `tags` (so DescribeInstances tag filters
        find them); moto takes ~10 ms per instance. `ec2=False` makes seeded `i-` IDs without EC2, for big fleets.
        """
        if n < 1:
            return []
        tags = dict(tags or {})
        with self._lock:
            if not ec2:
                rng = random.Random(f"{self.seed}:node-ids:{len(self._nodes)}")
                ids: list[str] = []
                while len(ids) < n:
                    candidate = "i-" + "".join(rng.choice("0123456789abcdef") for _ in range(17))
                    if candidate not in self._nodes and candidate not in ids:
                        ids.append(candidate)
                for instance_id in ids:
                    self.add_node(instance_id, tags=tags, platform=platform)
                return ids
            request: dict[str, Any] = {"ImageId": image_id, "MinCount": n, "MaxCount": n, "InstanceType": "t3.micro"}
            if tags:
                request["TagSpecifications"] = [
                    {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
                ]
            with internal_calls():
                reservation = self.client("ec2").run_instances(**request)
            created: list[str] = []
            for instance in reservation["Instances"]:
                node = self.add_node(instance["InstanceId"], tags=tags, platform=platform)
                node.ip_address = instance.get("PrivateIpAddress", "")
                node.computer_name = instance.get("PrivateDnsName", "")
                created.append(node.instance_id)
            return created

    def add_node(
        self,
        instance_id: str,
        *,
        tags: dict[str, str] | None = None,
        platform: str = "Linux",
        ping_status: str | None = None,
    ) -> ManagedNode:
        """Register `instance_id` as a managed node (no EC2 call). Offline per `offline_rate` unless `ping_status`."""
        if not INSTANCE_ID_PATTERN.match(instance_id):
            raise ValueError(f"not an SSM managed node id: {instance_id!r}")
        if platform not in PLATFORMS:
            raise ValueError(f"platform must be one of {PLATFORMS}")
        if ping_status is not None and ping_status not in PING_STATUSES:
            raise ValueError(f"ping_status must be one of {sorted(PING_STATUSES)}")
        with self._lock:
            if instance_id in self._nodes:
                raise ValueError(f"node {instance_id} already exists")
            if ping_status is None:
                offline = random.Random(f"{self.seed}:{instance_id}:offline").random() < self.offline_rate
                ping_status = CONNECTION_LOST if offline else ONLINE
            now = self.clock.now()
            node = ManagedNode(
                instance_id=instance_id,
                platform=platform,
                tags=dict(tags or {}),
                ping_status=ping_status,
                registered_at=now,
                last_ping_at=now,
            )
            self._nodes[instance_id] = node
            return node

    def node(self, instance_id: str) -> ManagedNode:
        return self._nodes[instance_id]

    def nodes(self) -> list[ManagedNode]:
        return list(self._nodes.values())

    def planned_outcome(self, instance_id: str) -> OutcomeKind:
        """The failure mode `instance_id` will show (an override from `set_outcome` wins)."""
        if instance_id in self._outcome_overrides:
            return self._outcome_overrides[instance_id]
        draw = random.Random(f"{self.seed}:{instance_id}:outcome").random()
        threshold = 0.0
        rates: tuple[tuple[OutcomeKind, float], ...] = (
            ("undeliverable", self.undeliverable_rate),
            ("delivery_timeout", self.delivery_timeout_rate),
            ("fail", self.fail_rate),
            ("execution_timeout", self.execution_timeout_rate),
        )
        for kind, rate in rates:
            threshold += rate
            if draw < threshold:
                return kind
        return "success"

    def set_outcome(self, instance_id: str, outcome: OutcomeKind | None) -> None:
        """Force the outcome of invocations sent to `instance_id` from now on (None: back to the seeded draw).

        Outcomes: success, fail, execution_timeout, delivery_timeout, undeliverable, slow (a slow success).
        """
        if outcome is None:
            self._outcome_overrides.pop(instance_id, None)
            return
        if outcome not in OUTCOME_KINDS:
            raise ValueError(f"outcome must be one of {OUTCOME_KINDS}")
        self._outcome_overrides[instance_id] = outcome

    def set_ping_status(self, instance_id: str, ping_status: str) -> None:
        """Change a node's agent ping status. Back Online: its Delayed invocations are delivered now."""
        if ping_status not in PING_STATUSES:
            raise ValueError(f"ping_status must be one of {sorted(PING_STATUSES)}")
        with self._lock:
            now = self.clock.now()
            self._process_until(now)
            node = self._nodes[instance_id]
            if node.ping_status == ONLINE:
                node.last_ping_at = now
            node.ping_status = ping_status
            if ping_status == ONLINE:
                node.last_ping_at = now
                for inv in self._invocations_of(instance_id):
                    if inv.status == DELAYED and inv.plan.kind != "delivery_timeout":
                        self._start(inv, now)
                        self._settle(inv.command, now)
            self._emitter.flush()

    def set_connection_status(self, instance_id: str, connected: bool | None) -> None:
        """Force GetConnectionStatus for a node (None: follow its ping status)."""
        self._nodes[instance_id].connection_override = connected

    # --- sessions --------------------------------------------------------------------------------------------------

    def open_session(
        self,
        instance_id: str,
        owner: str | None = None,
        started_at: datetime | None = None,
        *,
        status: str = "Connected",
        document_name: str = "SSM-SessionManagerRunShell",
    ) -> str:
        """Record a Session Manager session to a node; returns its SessionId."""
        if instance_id not in self._nodes:
            raise KeyError(instance_id)
        owner = owner or f"arn:aws:iam::{self.account_id}:user/operator"
        with self._lock:
            self._session_seq += 1
            rng = random.Random(f"{self.seed}:session:{self._session_seq}")
            user = owner.rsplit("/", 1)[-1] or "session"
            session_id = f"{user}-{''.join(rng.choice('0123456789abcdef') for _ in range(17))}"
            self._sessions[session_id] = Session(
                session_id=session_id,
                target=instance_id,
                owner=owner,
                status=status,
                start_date=started_at or self.clock.now(),
                document_name=document_name,
            )
            return session_id

    def session(self, session_id: str) -> Session:
        return self._sessions[session_id]

    def sessions(self) -> list[Session]:
        return list(self._sessions.values())

    # --- virtual time ----------------------------------------------------------------------------------------------

    def next_event_time(self) -> datetime | None:
        """When the next scheduled transition is due (None: nothing left to happen)."""
        with self._lock:
            while self._heap and self._stale(self._heap[0]):
                heapq.heappop(self._heap)
            return self._heap[0].when if self._heap else None

    def advance_to(self, when: datetime | None = None) -> int:
        """Apply, in time order, every transition due at or before `when` (default: the clock's now).

        The clock is moved forward to each transition as it is applied and finally to `when`, so events carry
        their own times. Returns how many transitions were applied.
        """
        with self._lock:
            target = when or self.clock.now()
            applied = self._process_until(target)
            if self.clock.now() < target:
                self.clock.advance_to(target)
            self._emitter.flush()
            return applied

    def advance(self, seconds: float) -> int:
        return self.advance_to(self.clock.now() + timedelta(seconds=seconds))

    def run_until_idle(self, until: datetime | None = None) -> datetime:
        """Apply transitions until none is left (or the next is after `until`). Returns the clock's time."""
        while True:
            due = self.next_event_time()
            if due is None or (until is not None and due > until):
                break
            self.advance_to(max(due, self.clock.now()))
        if until is not None and self.clock.now() < until:
            self.advance_to(until)
        return self.clock.now()

    # --- inspection ------------------------------------------------------------------------------------------------

    def commands(self) -> list[Command]:
        return list(self._commands.values())

    def command(self, command_id: str) -> Command:
        return self._commands[command_id]

    def invocations(self, command_id: str | None = None) -> list[Invocation]:
        if command_id is not None:
            return list(self._commands[command_id].invocations.values())
        return [inv for cmd in self._commands.values() for inv in cmd.invocations.values()]

    def invocation(self, command_id: str, instance_id: str) -> Invocation:
        return self._commands[command_id].invocations[instance_id]

    # --- the HTTP side (called by botocore_hook's dispatcher) ------------------------------------------------------

    def handle_ssm_request(self, operation: str, event_name: str, request: AWSPreparedRequest) -> AWSResponse | None:
        with self._lock:
            self.stats.api_calls[operation] += 1
            self._process_until(self.clock.now())
            try:
                return self._api.handle(operation, event_name, request)
            finally:
                self._emitter.flush()

    # --- model: commands -------------------------------------------------------------------------------------------

    def _register_command(self, command: Command) -> Command:
        """Take a validated SendCommand (invocations not yet created) and start it."""
        now = command.requested_at
        self._commands[command.command_id] = command
        self._record(command, PENDING, D_PENDING, now, emit=False)
        for instance_id in command.instance_ids:
            node = self._nodes[instance_id]
            plan = self._plan(instance_id, node.invocation_count)
            node.invocation_count += 1
            inv = Invocation(command=command, instance_id=instance_id, plan=plan)
            command.invocations[instance_id] = inv
            self._record(inv, PENDING, D_PENDING, now)
            self._schedule(command.expires_after, "expire", inv)
        self._emitter.command_changed(command, now)
        self._schedule(now + DISPATCH_DELAY, "dispatch", command)
        return command

    def _plan(self, instance_id: str, attempt: int) -> Plan:
        kind = self.planned_outcome(instance_id)
        rng = random.Random(f"{self.seed}:{instance_id}:run:{attempt}")
        runtime = rng.randint(*self.run_seconds)
        if instance_id in self._outcome_overrides:
            slow = kind == "slow"
        else:
            slow = random.Random(f"{self.seed}:{instance_id}:slow").random() < self.slow_rate
        if slow:
            runtime = int(runtime * rng.uniform(5.0, 10.0))
        race = random.Random(f"{self.seed}:{instance_id}:cancel:{attempt}").random() < self.cancel_race_rate
        return Plan(kind=kind, runtime_seconds=runtime, cancel_race=race)

    def _cancel(self, command: Command, instance_ids: list[str] | None, at: datetime) -> None:
        if command.terminal:
            return
        if instance_ids is None:
            command.cancel_requested = True
            targets = list(command.invocations.values())
        else:
            targets = [command.invocations[i] for i in instance_ids if i in command.invocations]
        for inv in targets:
            if inv.status in (PENDING, DELAYED):
                self._finish(inv, CANCELLED, D_CANCELLED, at)
            elif inv.status == IN_PROGRESS:
                self._record(inv, CANCELLING, D_CANCELLING, at)
                if inv.plan.cancel_race and inv.planned_end is not None:
                    # CancelCommand does not guarantee a running invocation stops: this one finishes anyway
                    end, action = inv.planned_end
                    self._schedule(max(end, at), action, inv)
                else:
                    self._schedule(at + CANCEL_ACK_DELAY, "cancel_ack", inv)
        self._settle(command, at)

    # --- model: the scheduler --------------------------------------------------------------------------------------

    def _schedule(self, when: datetime, action: str, target: Invocation | Command) -> None:
        self._seq += 1
        heapq.heappush(self._heap, _Entry(when, self._seq, action, target, target.version))

    @staticmethod
    def _stale(entry: _Entry) -> bool:
        if isinstance(entry.target, Command):
            # a command's own status changes do not cancel its hand-out; only its end does
            return entry.target.terminal
        return entry.version != entry.target.version or entry.target.terminal

    def _process_until(self, when: datetime) -> int:
        applied = 0
        while self._heap and self._heap[0].when <= when:
            entry = heapq.heappop(self._heap)
            if self._stale(entry):
                continue
            if self.clock.now() < entry.when:
                self.clock.advance_to(entry.when)
            self._apply(entry)
            applied += 1
        return applied

    def _apply(self, entry: _Entry) -> None:
        at = entry.when
        target = entry.target
        if isinstance(target, Command):
            if entry.action == "dispatch":
                target.dispatching = True
                self._settle(target, at)
            return
        inv = target
        if entry.action == "expire" and inv.status in (PENDING, DELAYED):
            self._finish(inv, TIMED_OUT, D_DELIVERY_TIMED_OUT, at)
        elif entry.action == "undeliverable" and inv.status == PENDING:
            self._finish(inv, FAILED, D_UNDELIVERABLE, at)
        elif entry.action == "finish" and inv.status in (IN_PROGRESS, CANCELLING):
            if inv.plan.kind == "fail":
                inv.stderr = "failed to run commands: exit status 1\n"
                self._finish(inv, FAILED, D_FAILED, at, response_code=1)
            else:
                inv.stdout = f"simulated output of {inv.command.document_name} on {inv.instance_id}\n"
                self._finish(inv, SUCCESS, D_SUCCESS, at, response_code=0)
        elif entry.action == "exec_timeout" and inv.status in (IN_PROGRESS, CANCELLING):
            inv.stderr = "command timed out\n"
            self._finish(inv, TIMED_OUT, D_EXECUTION_TIMED_OUT, at)
        elif entry.action == "cancel_ack" and inv.status == CANCELLING:
            self._finish(inv, CANCELLED, D_CANCELLED, at)
        else:
            return
        self._settle(inv.command, at)

    # --- model: transitions ----------------------------------------------------------------------------------------

    def _record(self, obj: Invocation | Command, status: str, details: str, at: datetime, *, emit: bool = True) -> None:
        obj.status = status
        obj.status_details = details
        obj.version += 1
        obj.history.append(Transition(at, status, details))
        if emit and isinstance(obj, Invocation):
            self._emitter.invocation_changed(obj, at)
        elif emit and isinstance(obj, Command):
            self._emitter.command_changed(obj, at)

    def _finish(self, inv: Invocation, status: str, details: str, at: datetime, *, response_code: int = -1) -> None:
        inv.response_code = response_code
        inv.ended_at = at
        self._record(inv, status, details, at)

    def _start(self, inv: Invocation, at: datetime) -> None:
        command = inv.command
        inv.started_at = at
        self._record(inv, IN_PROGRESS, D_IN_PROGRESS, at)
        timeout = command.execution_timeout_seconds
        if inv.plan.kind == "execution_timeout" or inv.plan.runtime_seconds >= timeout:
            inv.planned_end = (at + timedelta(seconds=timeout), "exec_timeout")
        else:
            inv.planned_end = (at + timedelta(seconds=inv.plan.runtime_seconds), "finish")
        self._schedule(*inv.planned_end, inv)

    def _dispatch(self, inv: Invocation, at: datetime) -> None:
        """The rate controller hands an invocation to its node."""
        command = inv.command
        node = self._nodes[inv.instance_id]
        inv.dispatched = True
        if node.ping_status == INACTIVE or inv.plan.kind == "undeliverable":
            inv.version += 1  # still Pending; replace the schedule
            self._schedule(at + UNDELIVERABLE_AFTER, "undeliverable", inv)
            self._schedule(command.expires_after, "expire", inv)
        elif command.platform_types and node.platform not in command.platform_types:
            self._finish(inv, FAILED, D_INVALID_PLATFORM, at)
        elif node.ping_status == CONNECTION_LOST or inv.plan.kind == "delivery_timeout":
            self._record(inv, DELAYED, D_DELAYED, at)
            self._schedule(command.expires_after, "expire", inv)
        else:
            self._start(inv, at)

    def _settle(self, command: Command, at: datetime) -> None:
        """After any change: enforce MaxErrors, refill concurrency slots, recompute the command status."""
        while True:
            self._enforce_max_errors(command, at)
            if not self._fill_slots(command, at):
                break
        self._refresh_command(command, at)

    def _enforce_max_errors(self, command: Command, at: datetime) -> None:
        if command.errors_exceeded or command.error_count <= command.error_limit:
            return
        # "When the command fails one more time beyond the value of MaxErrors, the system stops sending the
        # command to additional targets": the rest become Terminated (Status Cancelled: canceled by the system)
        command.errors_exceeded = True
        for inv in command.invocations.values():
            if inv.status == PENDING and not inv.dispatched:
                self._finish(inv, CANCELLED, D_TERMINATED, at)

    def _fill_slots(self, command: Command, at: datetime) -> bool:
        if not command.dispatching or command.cancel_requested or command.errors_exceeded:
            return False
        active = sum(1 for inv in command.invocations.values() if inv.active)
        dispatched_any = False
        for inv in command.invocations.values():
            if active >= command.concurrency_limit:
                break
            if inv.status == PENDING and not inv.dispatched:
                self._dispatch(inv, at)
                active += 1
                dispatched_any = True
        return dispatched_any

    def _refresh_command(self, command: Command, at: datetime) -> None:
        invocations = list(command.invocations.values())
        if all(inv.terminal for inv in invocations):
            status, details = self._final_command_status(command)
        elif command.cancel_requested:
            status, details = CANCELLING, D_CANCELLING
        elif any(inv.dispatched for inv in invocations):
            status, details = IN_PROGRESS, D_IN_PROGRESS
        else:
            status, details = PENDING, D_PENDING
        if (status, details) != (command.status, command.status_details):
            self._record(command, status, details, at)

    @staticmethod
    def _final_command_status(command: Command) -> tuple[str, str]:
        details = [inv.status_details for inv in command.invocations.values()]
        if command.cancel_requested or all(d == D_CANCELLED for d in details):
            return CANCELLED, D_CANCELLED
        failed = details.count(D_FAILED)
        execution_timed_out = details.count(D_EXECUTION_TIMED_OUT)
        if failed + execution_timed_out > command.error_limit:
            return (FAILED, D_FAILED) if failed >= execution_timed_out else (TIMED_OUT, D_EXECUTION_TIMED_OUT)
        # Undeliverable invocations do not count towards Success or Incomplete
        counted = [d for d in details if d != D_UNDELIVERABLE]
        if not counted:
            return FAILED, D_UNDELIVERABLE
        if all(d == D_SUCCESS for d in counted):
            return SUCCESS, D_SUCCESS
        if all(d == D_DELIVERY_TIMED_OUT for d in counted):
            return TIMED_OUT, D_DELIVERY_TIMED_OUT
        # The CommandStatus enum has no Incomplete: SSM reports it in StatusDetails
        return FAILED, D_INCOMPLETE

    def _invocations_of(self, instance_id: str) -> list[Invocation]:
        return [cmd.invocations[instance_id] for cmd in self._commands.values() if instance_id in cmd.invocations]
