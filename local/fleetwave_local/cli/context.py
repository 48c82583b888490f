"""What a command gets from the run that started it (how to wait), and the Operator."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from fleetwave_local.cli.options import Deployment

if TYPE_CHECKING:  # operator imports boto3: only the operator commands load it
    from fleetwave_local.cli.operator import Operator


@dataclass
class CliContext:
    """What tests (or an embedding program) can swap: how watch waits."""

    sleep: Callable[[float], None] = time.sleep
    consoles: dict[str, Console] = field(default_factory=dict)


def cli_context(ctx: typer.Context) -> CliContext:
    """The context `run` gave this command (a default one when the app is called otherwise)."""
    return ctx.obj if isinstance(ctx.obj, CliContext) else CliContext()


def connect(deployment: Deployment, *, needs: Sequence[str], optional: Sequence[str] = ()) -> Operator:
    """The Operator for this deployment: resources from the options (or the stack's outputs)."""
    from fleetwave_local.cli.operator import Aws, AwsOptions, Operator, resolve_resources

    d = deployment
    aws = Aws(AwsOptions(region=d.region, profile=d.profile, endpoint_url=d.endpoint_url))
    resources = resolve_resources(
        aws,
        needs=needs,
        optional=optional,
        stack_name=d.stack_name,
        table=d.table,
        operator_url=d.operator_url,
    )
    return Operator(aws, resources)
