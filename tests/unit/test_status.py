"""Status semantics as the SSM pages in shared/seeds define them."""

from __future__ import annotations

import pytest
from fleetwave.core.status import (
    DEFAULT_BUDGET_STATUSES,
    NON_TERMINAL,
    TERMINAL,
    InvocationStatus,
    UnknownStatusError,
    classify,
    is_allowed_transition,
)
from hypothesis import given
from hypothesis import strategies as st

S = InvocationStatus


def test_terminal_and_non_terminal_statuses_match_ssm():
    assert {S.PENDING, S.IN_PROGRESS, S.DELAYED} <= NON_TERMINAL
    assert {
        S.SUCCESS,
        S.FAILED,
        S.EXECUTION_TIMED_OUT,
        S.DELIVERY_TIMED_OUT,
        S.CANCELLED,
        S.UNDELIVERABLE,
        S.TERMINATED,
        S.INVALID_PLATFORM,
        S.ACCESS_DENIED,
    } == TERMINAL


def test_the_default_budget_counts_like_max_errors():
    assert {S.FAILED, S.EXECUTION_TIMED_OUT} == DEFAULT_BUDGET_STATUSES


@pytest.mark.parametrize(
    ("status", "details", "expected"),
    [
        ("Success", None, S.SUCCESS),
        ("InProgress", None, S.IN_PROGRESS),
        ("Pending", None, S.PENDING),
        ("Delayed", None, S.DELAYED),
        ("TimedOut", "Delivery Timed Out", S.DELIVERY_TIMED_OUT),
        ("TimedOut", "Execution Timed Out", S.EXECUTION_TIMED_OUT),
        ("Failed", "Undeliverable", S.UNDELIVERABLE),
        ("Failed", "Failed", S.FAILED),
        ("Failed", "InvalidPlatform", S.INVALID_PLATFORM),
        ("Cancelled", "Terminated", S.TERMINATED),
        ("Cancelled", None, S.CANCELLED),
        ("Cancelling", None, S.CANCELLING),
    ],
)
def test_classify(status, details, expected):
    assert classify(status, details) is expected


@pytest.mark.parametrize("status", ["TimedOut", "Failed"])
def test_ambiguous_statuses_need_details(status):
    # A TimedOut may be a delivery time-out (no budget) or an execution time-out (budget): never guess.
    assert classify(status) is None


def test_undocumented_statuses_are_refused():
    with pytest.raises(UnknownStatusError):
        classify("Exploded")


def test_terminal_statuses_never_change():
    for terminal in TERMINAL:
        for new in InvocationStatus:
            assert not is_allowed_transition(terminal, new)


def test_no_step_back():
    assert is_allowed_transition(S.PENDING, S.IN_PROGRESS)
    assert not is_allowed_transition(S.IN_PROGRESS, S.PENDING)
    assert not is_allowed_transition(S.IN_PROGRESS, S.IN_PROGRESS)
    assert is_allowed_transition(S.IN_PROGRESS, S.SUCCESS)


@given(st.lists(st.sampled_from(list(InvocationStatus)), max_size=12))
def test_transitions_are_monotonic_and_replaying_them_changes_nothing(observations):
    def fold(sequence):
        current = S.PENDING
        for status in sequence:
            if is_allowed_transition(current, status):
                current = status
        return current

    final = fold(observations)
    # Monotonic: the result never ranks below any non-terminal observation, and a terminal result is final.
    assert all(final.rank >= s.rank for s in observations if not s.is_terminal) or final.is_terminal
    assert fold([*observations, *observations]) == final
