"""fleetwave's domain errors. Adapters raise these from botocore errors; handlers map them to retry, fail or skip."""

from __future__ import annotations


class FleetwaveError(Exception):
    """Base of every fleetwave error."""


class SpecRejectedError(FleetwaveError):
    """The rollout cannot start as specified (bad document, parameters, targets). Never retried."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class ConflictError(FleetwaveError):
    """A conditional write lost a race: somebody else changed the item first. Re-read and decide again."""


class NotFoundError(FleetwaveError):
    """The item or resource does not exist (yet: SSM reads are eventually consistent)."""


class RetryLaterError(FleetwaveError):
    """Not an error of the input: the same work should be tried again later (message redelivered)."""
