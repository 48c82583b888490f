"""Every option and argument that more than one command takes, defined once.

Typer reads a command's options from its signature. The ``Annotated`` aliases below give each shared option one
definition (name, environment variable, help); ``rate_option`` is the one shape of every failure rate. Options that
go together come as a group: ``@aws_options`` and ``@stack_options(...)`` (where AWS and the deployed stack are) and
``@watch_options`` (how to follow a rollout) append theirs to a command's own options, in the order ``--help``
shows them, and hand them to the command as one object (``Deployment``, ``Watching``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from fleetwave.constants import DEFAULT_STACK_NAME

SpecArg = Annotated[
    str, typer.Argument(metavar="SPEC", help="Spec file (YAML or JSON), or - for standard input.", show_default=False)
]
RolloutIdArg = Annotated[str, typer.Argument(help="Rollout ID.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (schema: docs/cli.md).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")]
IntervalOpt = Annotated[float, typer.Option("--interval", min=0.1, help="Seconds between polls.")]
TimeoutOpt = Annotated[
    float | None, typer.Option("--timeout", min=1.0, help="Give up (exit 75) after this many seconds.")
]
LimitOpt = Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")]
StackOpt = Annotated[
    str,
    typer.Option(
        "--stack-name",
        envvar="FLEETWAVE_STACK_NAME",
        help="CloudFormation stack whose outputs name the table and the operator URL.",
    ),
]
TableOpt = Annotated[
    str | None, typer.Option("--table", envvar="FLEETWAVE_TABLE", help="Ledger table (instead of the stack output).")
]
OperatorUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--operator-url",
        envvar="FLEETWAVE_OPERATOR_URL",
        help="The stack's operator URL (instead of the stack output); requests are signed with your credentials.",
    ),
]
RegionOpt = Annotated[str | None, typer.Option("--region", help="AWS region (default: AWS_REGION, the profile).")]
ProfileOpt = Annotated[str | None, typer.Option("--profile", help="AWS profile (default: AWS_PROFILE).")]
EndpointOpt = Annotated[
    str | None,
    typer.Option("--endpoint-url", help="Send every AWS call here (boto3 also honours AWS_ENDPOINT_URL)."),
]


def rate_option(help_text: str) -> Any:
    """A share between 0 and 1 (a failure rate of the simulated fleet): ``Annotated[float, rate_option("...")]``."""
    return typer.Option(min=0.0, max=1.0, help=help_text)


@dataclass(frozen=True)
class Deployment:
    """Where an operator command finds AWS and the deployed stack, as the options say (None: not given)."""

    stack_name: str = DEFAULT_STACK_NAME
    table: str | None = None
    operator_url: str | None = None
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None


@dataclass(frozen=True)
class Watching:
    """How ``watch`` (and ``start --watch``) follows a rollout, and how it reports."""

    interval: float
    timeout: float | None
    json_output: bool
    quiet: bool


Command = Callable[..., None]
# (parameter, its option, its default), in the order --help lists them.
_Option = tuple[str, Any, Any]
_STACK: tuple[_Option, ...] = (("stack_name", StackOpt, DEFAULT_STACK_NAME), ("table", TableOpt, None))
_OPERATOR_URL: _Option = ("operator_url", OperatorUrlOpt, None)
_AWS: tuple[_Option, ...] = (
    ("region", RegionOpt, None),
    ("profile", ProfileOpt, None),
    ("endpoint_url", EndpointOpt, None),
)
_WATCHING: tuple[_Option, ...] = (
    ("interval", IntervalOpt, 15.0),
    ("timeout", TimeoutOpt, None),
    ("json_output", JsonOpt, False),
    ("quiet", QuietOpt, False),
)


def aws_options(command: Command) -> Command:
    """Append ``--region``, ``--profile``, ``--endpoint-url``; the command takes them as ``deployment: Deployment``."""
    return _with_group(command, "deployment", Deployment, _AWS)


def stack_options(*, operator_url: bool = False) -> Callable[[Command], Command]:
    """Append ``--stack-name``, ``--table``, ``--operator-url`` if the command sends requests to the operator URL,
    and the AWS options; the command takes them as ``deployment: Deployment``."""

    def decorate(command: Command) -> Command:
        options = (*_STACK, *((_OPERATOR_URL,) if operator_url else ()), *_AWS)
        return _with_group(command, "deployment", Deployment, options)

    return decorate


def watch_options(command: Command) -> Command:
    """Append ``--interval``, ``--timeout``, ``--json``, ``--quiet``; the command takes them as
    ``watching: Watching``. Put it under ``stack_options``: the stack's options come last."""
    return _with_group(command, "watching", Watching, _WATCHING)


def _with_group(command: Command, parameter: str, group: Callable[..., Any], options: tuple[_Option, ...]) -> Command:
    """The command as Typer sees it: its own parameters but ``parameter``, then one parameter per option. Typer
    calls it with every option by name; the command gets those of this group as one ``group(**options)``."""
    signature = inspect.signature(command, eval_str=True)
    own = [p for name, p in signature.parameters.items() if name != parameter]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=option)
        for name, option, default in options
    ]

    @functools.wraps(command)
    def with_group(*args: Any, **kwargs: Any) -> None:
        values = group(**{name: kwargs.pop(name) for name, _, _ in options})
        command(*args, **kwargs, **{parameter: values})

    typed = signature.replace(parameters=[*own, *added])
    with_group.__signature__ = typed  # type: ignore[attr-defined]
    with_group.__annotations__ = {p.name: p.annotation for p in typed.parameters.values()} | {"return": None}
    return with_group
