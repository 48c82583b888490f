"""The operators' entry point: what an operator may do (start, cancel; pause, resume and promote are next), always as
the caller AWS authenticated for the request.

The caller's ARN comes from the function URL's request context (AWS_IAM auth: Lambda verified the SigV4 signature
and the caller's lambda:InvokeFunctionUrl permission before the function runs); the trigger is "operator" because
this is the path the request came by. Neither can be set in the request body.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetwave.constants import TRIGGER_OPERATOR
from fleetwave.core.model import Rollout
from fleetwave.core.spec import RolloutSpec
from fleetwave.errors import FleetwaveError
from fleetwave.service.cancel import cancel_rollout
from fleetwave.service.deps import Deps
from fleetwave.service.start import StartResult, StartSkipped, start_rollout


class NotAuthorizedError(FleetwaveError):
    """The request carries no IAM identity, or one of another account."""


@dataclass(frozen=True)
class Caller:
    """The principal AWS authenticated: ``arn`` (requestContext.authorizer.iam.userArn) in ``account``."""

    arn: str
    account: str


def authorize(caller: Caller | None, *, own_account: str) -> Caller:
    """Only IAM principals of this account may operate fleetwave (the URL has no resource policy for any other);
    a request without an IAM identity means the URL is not AWS_IAM: refuse it rather than act anonymously."""
    if caller is None or not caller.arn:
        raise NotAuthorizedError("the request carries no IAM identity (the operator URL must use AWS_IAM auth)")
    if caller.account != own_account:
        raise NotAuthorizedError(f"principals of account {caller.account} may not operate this fleetwave")
    return caller


def start_as(deps: Deps, caller: Caller, spec: RolloutSpec) -> StartResult | StartSkipped:
    return start_rollout(deps, spec, trigger=TRIGGER_OPERATOR, started_by=caller.arn)


def cancel_as(deps: Deps, caller: Caller, rollout_id: str, reason: str) -> Rollout:
    return cancel_rollout(deps, rollout_id, reason, cancelled_by=caller.arn)
