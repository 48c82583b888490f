"""Data model of the fleet simulator: nodes, commands, invocations, sessions, and SSM's status vocabulary.

`Status` values are exactly the API enums (CommandInvocationStatus / CommandStatus). The richer outcomes SSM
documents (Delivery Timed Out, Execution Timed Out, Undeliverable, Terminated, InvalidPlatform, Incomplete) live in
`StatusDetails`, because the API's `Status` enum has no member for them:

| outcome             | Status     | StatusDetails         | counts against MaxErrors |
|---------------------|------------|-----------------------|--------------------------|
| success             | Success    | Success               | no                       |
| script failed       | Failed     | Failed                | yes                      |
| execution timeout   | TimedOut   | Execution Timed Out   | yes                      |
| delivery timeout    | TimedOut   | Delivery Timed Out    | no                       |
| undeliverable       | Failed     | Undeliverable         | no                       |
| wrong platform      | Failed     | InvalidPlatform       | no                       |
| MaxErrors exceeded  | Cancelled  | Terminated            | no                       |
| CancelCommand       | Cancelled  | Cancelled             | no                       |
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

# --- invocation Status (CommandInvocationStatus enum) -------------------------------------------------------------
PENDING: Final = "Pending"
IN_PROGRESS: Final = "InProgress"
DELAYED: Final = "Delayed"
SUCCESS: Final = "Success"
CANCELLED: Final = "Cancelled"
TIMED_OUT: Final = "TimedOut"
FAILED: Final = "Failed"
CANCELLING: Final = "Cancelling"

INVOCATION_STATUSES: Final = frozenset(
    {PENDING, IN_PROGRESS, DELAYED, SUCCESS, CANCELLED, TIMED_OUT, FAILED, CANCELLING}
)
COMMAND_STATUSES: Final = frozenset({PENDING, IN_PROGRESS, SUCCESS, CANCELLED, FAILED, TIMED_OUT, CANCELLING})
TERMINAL_STATUSES: Final = frozenset({SUCCESS, CANCELLED, TIMED_OUT, FAILED})

# --- StatusDetails ------------------------------------------------------------------------------------------------
D_PENDING: Final = "Pending"
D_IN_PROGRESS: Final = "In Progress"
D_DELAYED: Final = "Delayed"
D_SUCCESS: Final = "Success"
D_FAILED: Final = "Failed"
D_DELIVERY_TIMED_OUT: Final = "Delivery Timed Out"
D_EXECUTION_TIMED_OUT: Final = "Execution Timed Out"
D_CANCELLED: Final = "Cancelled"
D_CANCELLING: Final = "Cancelling"
D_UNDELIVERABLE: Final = "Undeliverable"
D_TERMINATED: Final = "Terminated"
D_INVALID_PLATFORM: Final = "InvalidPlatform"
D_INCOMPLETE: Final = "Incomplete"

#: StatusDetails that count against MaxErrors (and into ErrorCount).
ERROR_DETAILS: Final = frozenset({D_FAILED, D_EXECUTION_TIMED_OUT})

# --- node ping status -----------------------------------------------------------------------------------------------
ONLINE: Final = "Online"
CONNECTION_LOST: Final = "ConnectionLost"
INACTIVE: Final = "Inactive"
PING_STATUSES: Final = frozenset({ONLINE, CONNECTION_LOST, INACTIVE})

PLATFORMS: Final = ("Linux", "Windows", "MacOS")

OutcomeKind = Literal["success", "fail", "execution_timeout", "delivery_timeout", "undeliverable", "slow"]
OUTCOME_KINDS: Final[tuple[OutcomeKind, ...]] = (
    "success",
    "fail",
    "execution_timeout",
    "delivery_timeout",
    "undeliverable",
    "slow",
)

# --- SSM limits (SendCommand / ListCommandInvocations pages in shared/seeds) ---------------------------------------
MAX_INSTANCE_IDS: Final = 50
MAX_COMMENT_LENGTH: Final = 100
MIN_TIMEOUT_SECONDS: Final = 30
MAX_TIMEOUT_SECONDS: Final = 2_592_000
DEFAULT_TIMEOUT_SECONDS: Final = 3600
DEFAULT_EXECUTION_TIMEOUT: Final = 3600
DEFAULT_MAX_CONCURRENCY: Final = "50"
DEFAULT_MAX_ERRORS: Final = "0"
MAX_CONCURRENCY_PATTERN: Final = re.compile(r"^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$")
MAX_ERRORS_PATTERN: Final = re.compile(r"^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$")
INSTANCE_ID_PATTERN: Final = re.compile(r"(^i-(\w{8}|\w{17})$)|(^mi-\w{17}$)")


def resolve_rate(value: str, target_count: int, *, minimum: int) -> int:
    """Turn a MaxConcurrency/MaxErrors string ("10" or "10%") into a count for `target_count` targets.

    Percentages round down (10% of 15 targets is 1); `minimum` is 1 for concurrency, 0 for errors.
    """
    if value.endswith("%"):
        return max(minimum, int(value[:-1]) * target_count // 100)
    return max(minimum, int(value))


@dataclass(frozen=True)
class Plan:
    """What a node will do with one invocation, drawn from the seed before anything runs."""

    kind: OutcomeKind
    runtime_seconds: int
    cancel_race: bool


@dataclass
class ManagedNode:
    """An SSM managed node (an EC2 instance with a registered agent)."""

    instance_id: str
    platform: str
    tags: dict[str, str]
    ping_status: str
    registered_at: datetime
    last_ping_at: datetime
    agent_version: str = "3.3.1142.0"
    ip_address: str = ""
    computer_name: str = ""
    #: None: follow the ping status (Online -> connected). True/False: forced Session Manager connectivity.
    connection_override: bool | None = None
    #: how many invocations this node has received (the k-th invocation seeds its runtime draw)
    invocation_count: int = 0

    @property
    def platform_name(self) -> str:
        return {"Linux": "Amazon Linux", "Windows": "Microsoft Windows Server 2022 Datacenter", "MacOS": "macOS"}.get(
            self.platform, self.platform
        )

    @property
    def platform_version(self) -> str:
        return {"Linux": "2023", "Windows": "10.0.20348", "MacOS": "14.4"}.get(self.platform, "")

    @property
    def connected(self) -> bool:
        if self.connection_override is not None:
            return self.connection_override
        return self.ping_status == ONLINE


@dataclass
class Transition:
    """One recorded status change of an invocation or a command."""

    at: datetime
    status: str
    status_details: str


@dataclass(eq=False)
class Invocation:
    """(CommandId, InstanceId): one node's copy of a command. Compared by identity."""

    command: Command = field(repr=False)
    instance_id: str
    plan: Plan
    status: str = PENDING
    status_details: str = D_PENDING
    response_code: int = -1
    #: taken by the rate controller: occupies one MaxConcurrency slot until terminal
    dispatched: bool = False
    started_at: datetime | None = None
    ended_at: datetime | None = None
    #: the transition a started invocation is heading for, kept so a cancel race can let it happen
    planned_end: tuple[datetime, str] | None = None
    stdout: str = ""
    stderr: str = ""
    history: list[Transition] = field(default_factory=list)
    #: bumped on every change: schedule entries carry the version they were made for, stale ones are skipped
    version: int = 0

    @property
    def command_id(self) -> str:
        return self.command.command_id

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def active(self) -> bool:
        """Holds a concurrency slot: dispatched and not yet terminal (InProgress, Delayed, Cancelling...)."""
        return self.dispatched and not self.terminal


@dataclass(eq=False)
class Command:
    """One SendCommand call as the simulator tracks it. Compared by identity."""

    command_id: str
    document_name: str
    document_version: str
    comment: str
    parameters: dict[str, list[str]]
    instance_ids: list[str]
    max_concurrency: str
    max_errors: str
    concurrency_limit: int
    error_limit: int
    timeout_seconds: int
    execution_timeout_seconds: int
    requested_at: datetime
    expires_after: datetime
    visible_at: datetime
    notification_config: dict[str, Any] | None
    service_role_arn: str
    output_s3_bucket_name: str
    output_s3_key_prefix: str
    cloudwatch_output_config: dict[str, Any] | None
    plugin_name: str
    plugin_action: str
    platform_types: frozenset[str]
    invocations: dict[str, Invocation] = field(default_factory=dict, repr=False)
    status: str = PENDING
    status_details: str = D_PENDING
    #: CancelCommand was called for the whole command
    cancel_requested: bool = False
    #: MaxErrors was exceeded: no new invocation is dispatched
    errors_exceeded: bool = False
    #: the rate controller has started handing invocations to nodes
    dispatching: bool = False
    history: list[Transition] = field(default_factory=list)
    version: int = 0

    @property
    def target_count(self) -> int:
        return len(self.invocations)

    def count_details(self, *details: str) -> int:
        return sum(1 for inv in self.invocations.values() if inv.status_details in details)

    @property
    def completed_count(self) -> int:
        return sum(1 for inv in self.invocations.values() if inv.terminal)

    @property
    def error_count(self) -> int:
        return self.count_details(*ERROR_DETAILS)

    @property
    def delivery_timed_out_count(self) -> int:
        return self.count_details(D_DELIVERY_TIMED_OUT)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass
class Session:
    """A Session Manager session to a node."""

    session_id: str
    target: str
    owner: str
    status: str
    start_date: datetime
    document_name: str = "SSM-SessionManagerRunShell"
    end_date: datetime | None = None
    reason: str = ""

    @property
    def active(self) -> bool:
        return self.status in {"Connected", "Connecting", "Disconnected", "Terminating"}


@dataclass
class EmittedEvent:
    """One status event the simulator produced on one path, and what became of it."""

    path: Literal["eventbridge", "sns"]
    at: datetime
    payload: dict[str, Any]
    dropped: bool
    copies: int


@dataclass
class SimStats:
    """Counters for tests and for the twin's run summary."""

    #: SSM operations the simulator answered, by operation name
    api_calls: Counter[str] = field(default_factory=Counter)
    #: events handed to EventBridge/SNS, by path ("eventbridge", "sns"); a duplicated event counts twice
    events_emitted: Counter[str] = field(default_factory=Counter)
    events_dropped: Counter[str] = field(default_factory=Counter)
    events_duplicated: Counter[str] = field(default_factory=Counter)
    #: publish calls the service refused (missing topic, failed entries), by path
    delivery_errors: Counter[str] = field(default_factory=Counter)
