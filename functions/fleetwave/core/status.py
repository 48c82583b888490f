"""Invocation status semantics, as SSM documents them (shared/seeds, ListCommandInvocations).

SSM reports an invocation with a coarse ``Status`` (Pending, InProgress, Delayed, Success, Cancelled, TimedOut,
Failed, Cancelling) and a finer ``StatusDetails`` (Delivery Timed Out, Execution Timed Out, Undeliverable,
Terminated, ...). fleetwave tracks the fine-grained outcome, because the error budget depends on it: a delivery
time-out or an undeliverable node does not count against MaxErrors, an execution time-out does.
"""

from __future__ import annotations

from enum import StrEnum


class InvocationStatus(StrEnum):
    """The status fleetwave records for one (command, instance) invocation."""

    PENDING = "Pending"
    DELAYED = "Delayed"
    IN_PROGRESS = "InProgress"
    CANCELLING = "Cancelling"
    SUCCESS = "Success"
    FAILED = "Failed"
    EXECUTION_TIMED_OUT = "ExecutionTimedOut"
    DELIVERY_TIMED_OUT = "DeliveryTimedOut"
    UNDELIVERABLE = "Undeliverable"
    CANCELLED = "Cancelled"
    TERMINATED = "Terminated"
    INVALID_PLATFORM = "InvalidPlatform"
    ACCESS_DENIED = "AccessDenied"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL

    @property
    def rank(self) -> int:
        """Position in the only order transitions may follow; terminal statuses share the top rank."""
        return _RANK[self]


NON_TERMINAL = frozenset(
    {
        InvocationStatus.PENDING,
        InvocationStatus.DELAYED,
        InvocationStatus.IN_PROGRESS,
        InvocationStatus.CANCELLING,
    }
)
TERMINAL = frozenset(set(InvocationStatus) - NON_TERMINAL)

# What a halt does to invocations still open: not failures of their own, listed apart from the failures.
HALT_CONSEQUENCES = frozenset({InvocationStatus.CANCELLED, InvocationStatus.TERMINATED})

# Like MaxErrors: Failed and Execution Timed Out count against the budget unless the spec says otherwise.
DEFAULT_BUDGET_STATUSES = frozenset({InvocationStatus.FAILED, InvocationStatus.EXECUTION_TIMED_OUT})
# Statuses a spec may add to the budget (Success never counts; Cancelled/Terminated are consequences of a halt).
BUDGETABLE_STATUSES = frozenset(
    {
        InvocationStatus.FAILED,
        InvocationStatus.EXECUTION_TIMED_OUT,
        InvocationStatus.DELIVERY_TIMED_OUT,
        InvocationStatus.UNDELIVERABLE,
        InvocationStatus.INVALID_PLATFORM,
        InvocationStatus.ACCESS_DENIED,
    }
)

_RANK: dict[InvocationStatus, int] = {
    InvocationStatus.PENDING: 0,
    InvocationStatus.DELAYED: 1,
    InvocationStatus.IN_PROGRESS: 2,
    InvocationStatus.CANCELLING: 3,
    **{status: 10 for status in TERMINAL},
}

# StatusDetails values (seed: ListCommandInvocations) -> fleetwave status.
_BY_DETAILS: dict[str, InvocationStatus] = {
    "pending": InvocationStatus.PENDING,
    "in progress": InvocationStatus.IN_PROGRESS,
    "inprogress": InvocationStatus.IN_PROGRESS,
    "delayed": InvocationStatus.DELAYED,
    "success": InvocationStatus.SUCCESS,
    "failed": InvocationStatus.FAILED,
    "execution timed out": InvocationStatus.EXECUTION_TIMED_OUT,
    "executiontimedout": InvocationStatus.EXECUTION_TIMED_OUT,
    "delivery timed out": InvocationStatus.DELIVERY_TIMED_OUT,
    "deliverytimedout": InvocationStatus.DELIVERY_TIMED_OUT,
    "undeliverable": InvocationStatus.UNDELIVERABLE,
    "cancelled": InvocationStatus.CANCELLED,
    "canceled": InvocationStatus.CANCELLED,
    "cancelling": InvocationStatus.CANCELLING,
    "terminated": InvocationStatus.TERMINATED,
    "invalidplatform": InvocationStatus.INVALID_PLATFORM,
    "invalid platform": InvocationStatus.INVALID_PLATFORM,
    "accessdenied": InvocationStatus.ACCESS_DENIED,
    "access denied": InvocationStatus.ACCESS_DENIED,
}

# Status values that leave the outcome open: a TimedOut may be a delivery or an execution time-out, and a Failed
# reported without details may hide Undeliverable, InvalidPlatform or AccessDenied, which spend no budget.
# (A Cancelled without details may hide Terminated; neither spends budget, so it is recorded as Cancelled.)
_AMBIGUOUS = frozenset({"timedout", "failed"})


class UnknownStatusError(ValueError):
    """A status string SSM does not document."""


def classify(status: str, status_details: str | None = None) -> InvocationStatus | None:
    """Map SSM's (Status, StatusDetails) to a fleetwave status.

    Returns ``None`` when the pair does not decide the outcome (``TimedOut`` or ``Failed`` with no details): the
    caller must look the details up (GetCommandInvocation) before recording a terminal status.
    """
    if status_details:
        detailed = _BY_DETAILS.get(status_details.strip().lower())
        if detailed is not None:
            return detailed
    key = status.strip().lower()
    if key in _AMBIGUOUS:
        return None
    found = _BY_DETAILS.get(key)
    if found is None:
        raise UnknownStatusError(f"unknown invocation status {status!r} ({status_details!r})")
    return found


def is_allowed_transition(current: InvocationStatus | None, new: InvocationStatus) -> bool:
    """Transitions are monotonic: never out of a terminal status, never back to an earlier non-terminal one."""
    if current is None:
        return True
    if current.is_terminal:
        return False
    return new.rank > current.rank
