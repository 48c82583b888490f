"""What a command gets from the run that started it (the invoker of functions, how to wait), and the Operator."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from fleetwave_local.cli.options import Deployment

if TYPE_CHECKING:  # operator imports boto3: only the operator commands load it
    from fleetwave_local.cli.operator import Invoker, Operator


@dataclass
class CliContext:
    """What tests (or an embedding program) can swap: how functions are invoked, how watch waits."""

    invoker: Invoker | None = None
    sleep: Callable[[float], None] = time.sleep
    consoles: dict[str, Console] = field(default_factory=dict)


def cli_context(ctx: typer.Context) -> CliContext:
    """The context `run` gave this command (a default one when the app is called otherwise)."""
    return ctx.obj if isinstance(ctx.obj, CliContext) else CliContext()


def connect(
    ctx: typer.Context, deployment: Deployment, *, needs: Sequence[str], optional: Sequence[str] = ()
) -> Operator:
    """The Operator for this deployment: resources from the options (or the stack's outputs), the context's invoker."""
    from fleetwave_local.cli.operator import Aws, AwsOptions, Operator, resolve_resources

    d = deployment
    aws = Aws(AwsOptions(region=d.region, profile=d.profile, endpoint_url=d.endpoint_url))
    resources = resolve_resources(
        aws,
        needs=needs,
        optional=optional,
        stack_name=d.stack_name,
        table=d.table,
        start_function=d.start_function,
        cancel_function=d.cancel_function,
    )
    return Operator(aws, resources, invoker=cli_context(ctx).invoker)
