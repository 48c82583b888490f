"""The Run Command service, modelled: every command and invocation moved through SSM's real statuses over virtual time.

`register` takes a validated SendCommand; from then on the model hands invocations to nodes as MaxConcurrency
allows (the rate controller), stops at MaxErrors, honours CancelCommand (an invocation already running may still
finish: CancelCommand does not guarantee it stops), times out undelivered and overrunning invocations, and records
every transition, handing it to the `EventEmitter` as a status event. What each node does is drawn in advance by
`AgentOutcomes`; when things happen is a heap of (time, action) entries applied in order by `process_until`.

Not thread-safe on its own: `FleetSimulator` calls it under its lock.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

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
    PENDING,
    SUCCESS,
    TIMED_OUT,
    Command,
    Invocation,
    Transition,
)
from .outcomes import AgentOutcomes
from .state import SsmState

#: from SendCommand to the rate controller's first hand-out (so Pending is observable)
DISPATCH_DELAY: Final = timedelta(seconds=1)
#: how long SSM tries an undeliverable node before giving up
UNDELIVERABLE_AFTER: Final = timedelta(seconds=5)
#: how long an agent takes to acknowledge a cancel
CANCEL_ACK_DELAY: Final = timedelta(seconds=2)


@dataclass(order=True)
class _Entry:
    when: datetime
    seq: int
    action: str = field(compare=False)
    target: Invocation | Command = field(compare=False)
    version: int = field(compare=False)


class RunCommandService:
    """Commands, invocations and their schedule, on the nodes and the clock of one `SsmState`."""

    def __init__(self, state: SsmState, outcomes: AgentOutcomes, emitter: EventEmitter) -> None:
        self.state = state
        self.outcomes = outcomes
        self.emitter = emitter
        self._heap: list[_Entry] = []
        self._seq = 0

    # --- what the API and the simulator ask ------------------------------------------------------------------------

    def next_due(self) -> datetime | None:
        """When the next scheduled transition is due (None: nothing left to happen)."""
        while self._heap and self._stale(self._heap[0]):
            heapq.heappop(self._heap)
        return self._heap[0].when if self._heap else None

    def deliver_delayed(self, instance_id: str, at: datetime) -> None:
        """A node came back Online: its Delayed invocations are delivered now."""
        for inv in self._invocations_of(instance_id):
            if inv.status == DELAYED and inv.plan.kind != "delivery_timeout":
                self._start(inv, at)
                self._settle(inv.command, at)

    def register(self, command: Command) -> Command:
        """Take a validated SendCommand (invocations not yet created) and start it."""
        now = command.requested_at
        self.state.commands[command.command_id] = command
        self._record(command, PENDING, D_PENDING, now, emit=False)
        for instance_id in command.instance_ids:
            node = self.state.nodes[instance_id]
            plan = self.outcomes.plan(instance_id, node.invocation_count)
            node.invocation_count += 1
            inv = Invocation(command=command, instance_id=instance_id, plan=plan)
            command.invocations[instance_id] = inv
            self._record(inv, PENDING, D_PENDING, now)
            self._schedule(command.expires_after, "expire", inv)
        self.emitter.command_changed(command, now)
        self._schedule(now + DISPATCH_DELAY, "dispatch", command)
        return command

    def cancel(self, command: Command, instance_ids: list[str] | None, at: datetime) -> None:
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

    # --- the schedule of transitions -------------------------------------------------------------------------------

    def _schedule(self, when: datetime, action: str, target: Invocation | Command) -> None:
        self._seq += 1
        heapq.heappush(self._heap, _Entry(when, self._seq, action, target, target.version))

    @staticmethod
    def _stale(entry: _Entry) -> bool:
        if isinstance(entry.target, Command):
            # a command's own status changes do not cancel its hand-out; only its end does
            return entry.target.terminal
        return entry.version != entry.target.version or entry.target.terminal

    def process_until(self, when: datetime) -> int:
        applied = 0
        while self._heap and self._heap[0].when <= when:
            entry = heapq.heappop(self._heap)
            if self._stale(entry):
                continue
            if self.state.clock.now() < entry.when:
                self.state.clock.advance_to(entry.when)
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

    # --- transitions -----------------------------------------------------------------------------------------------

    def _record(self, obj: Invocation | Command, status: str, details: str, at: datetime, *, emit: bool = True) -> None:
        obj.status = status
        obj.status_details = details
        obj.version += 1
        obj.history.append(Transition(at, status, details))
        if emit and isinstance(obj, Invocation):
            self.emitter.invocation_changed(obj, at)
        elif emit and isinstance(obj, Command):
            self.emitter.command_changed(obj, at)

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
        node = self.state.nodes[inv.instance_id]
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
        return [cmd.invocations[instance_id] for cmd in self.state.commands.values() if instance_id in cmd.invocations]
