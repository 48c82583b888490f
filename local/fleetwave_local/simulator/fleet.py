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

The simulator composes its parts, each in its own module: `SsmState` (nodes, commands, sessions, calendars),
`AgentOutcomes` (every node's fate, seeded: the same seed gives every node the same fate whatever the order of calls),
`RunCommandService` (the model: statuses over virtual time), `EventEmitter` (status events on EventBridge and SNS),
and `SsmApi` (the JSON API), reached through the hook in `botocore_hook`.
"""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Final

import botocore.loaders
import botocore.session
from botocore.awsrequest import AWSPreparedRequest, AWSResponse

from . import botocore_hook
from .api import SendCommand, SsmApi
from .botocore_hook import internal_calls
from .calendars import ChangeCalendars
from .clock import VirtualClock
from .events import EventEmitter
from .model import (
    CONNECTION_LOST,
    INSTANCE_ID_PATTERN,
    ONLINE,
    PING_STATUSES,
    PLATFORMS,
    Command,
    EmittedEvent,
    Invocation,
    ManagedNode,
    OutcomeKind,
    Session,
    SimStats,
)
from .outcomes import AgentOutcomes
from .run_command import RunCommandService
from .state import SsmState

DEFAULT_IMAGE_ID: Final = "ami-12c6146b"


_LOADER: list[botocore.loaders.Loader] = []


def _shared_loader() -> botocore.loaders.Loader:
    if not _LOADER:
        _LOADER.append(botocore.loaders.create_loader())
    return _LOADER[0]


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
        self.clock = clock or VirtualClock()
        self.seed = seed
        self.region = region
        self.account_id = account_id
        self.event_bus_name = event_bus_name
        #: the seeded fate of every node (`planned_outcome`, `set_outcome`)
        self.outcomes = AgentOutcomes(
            seed=seed,
            fail_rate=fail_rate,
            execution_timeout_rate=execution_timeout_rate,
            delivery_timeout_rate=delivery_timeout_rate,
            undeliverable_rate=undeliverable_rate,
            slow_rate=slow_rate,
            offline_rate=offline_rate,
            cancel_race_rate=cancel_race_rate,
            run_seconds=run_seconds,
        )
        self.state = SsmState(self.clock, region, account_id)
        self.stats = SimStats()
        #: every status event produced, per path, with whether it was dropped or duplicated
        self.events: list[EmittedEvent] = []
        self._lock = threading.RLock()
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
        self._run_command = RunCommandService(self.state, self.outcomes, self._emitter)
        send_command = SendCommand(
            self.state,
            self._run_command,
            client_factory=self.client,
            visibility_delay=visibility_delay,
            execution_timeout_seconds=execution_timeout_seconds,
        )
        self._api = SsmApi(self.state, self._run_command, send_command)

    @property
    def calendars(self) -> ChangeCalendars:
        """SSM Change Calendars (GetCalendarState)."""
        return self.state.calendars

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
                rng = random.Random(f"{self.seed}:node-ids:{len(self.state.nodes)}")
                ids: list[str] = []
                while len(ids) < n:
                    candidate = "i-" + "".join(rng.choice("0123456789abcdef") for _ in range(17))
                    if candidate not in self.state.nodes and candidate not in ids:
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
            if instance_id in self.state.nodes:
                raise ValueError(f"node {instance_id} already exists")
            if ping_status is None:
                ping_status = CONNECTION_LOST if self.outcomes.offline(instance_id) else ONLINE
            now = self.clock.now()
            node = ManagedNode(
                instance_id=instance_id,
                platform=platform,
                tags=dict(tags or {}),
                ping_status=ping_status,
                registered_at=now,
                last_ping_at=now,
            )
            self.state.nodes[instance_id] = node
            return node

    def node(self, instance_id: str) -> ManagedNode:
        return self.state.nodes[instance_id]

    def nodes(self) -> list[ManagedNode]:
        return list(self.state.nodes.values())

    def planned_outcome(self, instance_id: str) -> OutcomeKind:
        """The failure mode `instance_id` will show (an override from `set_outcome` wins)."""
        return self.outcomes.planned(instance_id)

    def set_outcome(self, instance_id: str, outcome: OutcomeKind | None) -> None:
        """Force the outcome of invocations sent to `instance_id` from now on (None: back to the seeded draw).

        Outcomes: success, fail, execution_timeout, delivery_timeout, undeliverable, slow (a slow success).
        """
        self.outcomes.override(instance_id, outcome)

    def set_ping_status(self, instance_id: str, ping_status: str) -> None:
        """Change a node's agent ping status. Back Online: its Delayed invocations are delivered now."""
        if ping_status not in PING_STATUSES:
            raise ValueError(f"ping_status must be one of {sorted(PING_STATUSES)}")
        with self._lock:
            now = self.clock.now()
            self._run_command.process_until(now)
            node = self.state.nodes[instance_id]
            if node.ping_status == ONLINE:
                node.last_ping_at = now
            node.ping_status = ping_status
            if ping_status == ONLINE:
                node.last_ping_at = now
                self._run_command.deliver_delayed(instance_id, now)
            self._emitter.flush()

    def set_connection_status(self, instance_id: str, connected: bool | None) -> None:
        """Force GetConnectionStatus for a node (None: follow its ping status)."""
        self.state.nodes[instance_id].connection_override = connected

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
        if instance_id not in self.state.nodes:
            raise KeyError(instance_id)
        owner = owner or f"arn:aws:iam::{self.account_id}:user/operator"
        with self._lock:
            self._session_seq += 1
            rng = random.Random(f"{self.seed}:session:{self._session_seq}")
            user = owner.rsplit("/", 1)[-1] or "session"
            session_id = f"{user}-{''.join(rng.choice('0123456789abcdef') for _ in range(17))}"
            self.state.sessions[session_id] = Session(
                session_id=session_id,
                target=instance_id,
                owner=owner,
                status=status,
                start_date=started_at or self.clock.now(),
                document_name=document_name,
            )
            return session_id

    def session(self, session_id: str) -> Session:
        return self.state.sessions[session_id]

    def sessions(self) -> list[Session]:
        return list(self.state.sessions.values())

    # --- virtual time ----------------------------------------------------------------------------------------------

    def next_event_time(self) -> datetime | None:
        """When the next scheduled transition is due (None: nothing left to happen)."""
        with self._lock:
            return self._run_command.next_due()

    def advance_to(self, when: datetime | None = None) -> int:
        """Apply, in time order, every transition due at or before `when` (default: the clock's now).

        The clock is moved forward to each transition as it is applied and finally to `when`, so events carry
        their own times. Returns how many transitions were applied.
        """
        with self._lock:
            target = when or self.clock.now()
            applied = self._run_command.process_until(target)
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
        return list(self.state.commands.values())

    def command(self, command_id: str) -> Command:
        return self.state.commands[command_id]

    def invocations(self, command_id: str | None = None) -> list[Invocation]:
        if command_id is not None:
            return list(self.state.commands[command_id].invocations.values())
        return [inv for cmd in self.state.commands.values() for inv in cmd.invocations.values()]

    def invocation(self, command_id: str, instance_id: str) -> Invocation:
        return self.state.commands[command_id].invocations[instance_id]

    # --- the HTTP side (called by botocore_hook's dispatcher) ------------------------------------------------------

    def handle_ssm_request(self, operation: str, event_name: str, request: AWSPreparedRequest) -> AWSResponse | None:
        with self._lock:
            self.stats.api_calls[operation] += 1
            self._run_command.process_until(self.clock.now())
            try:
                return self._api.handle(operation, event_name, request)
            finally:
                self._emitter.flush()
