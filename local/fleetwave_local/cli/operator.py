"""AWS access for the operator commands (start, status, watch, cancel, list, history, plan).

The deployed stack's resources come from its CloudFormation outputs (names in ``fleetwave.constants``), or from
flags. Reads go straight to the ledger table; ``start`` and ``cancel`` are HTTPS requests to the stack's operator
URL (a Lambda function URL with AWS_IAM auth), signed with SigV4 by the user's own credentials: the function learns
who asks from what AWS authenticated, and records it.

botocore errors become the errors below; the CLI maps each to an exit code in one place.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from fleetwave.adapters.aws import error_code
from fleetwave.adapters.ledger import Ledger
from fleetwave.adapters.slack import is_loopback
from fleetwave.constants import (
    DEFAULT_STACK_NAME,
    OUTPUT_OPERATOR_URL,
    OUTPUT_TABLE_NAME,
    TABLE_NAME,
)
from fleetwave.core.model import Rollout, Wave
from fleetwave.core.notifications.common import OutputLocation
from fleetwave.core.spec import OutputSpec, RolloutSpec
from fleetwave.errors import FleetwaveError, NotFoundError

from fleetwave_local.cli.document import RolloutView


class OperatorError(FleetwaveError):
    """An operator command could not do its work."""


class AwsUnavailableError(OperatorError):
    """AWS could not be reached, or a resource of the stack (stack, table, function) is missing."""


class AwsPermissionError(OperatorError):
    """AWS refused the call (IAM, invalid or expired credentials)."""


class AwsConfigError(OperatorError):
    """No region, no credentials, or an unknown profile."""


class FunctionFailedError(OperatorError):
    """The operator function failed (a 5xx answer), or answered something that is not fleetwave's."""


class WatchTimeoutError(OperatorError):
    """The rollout was still active when ``watch --timeout`` ran out."""


_PERMISSION_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "AuthFailure",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
    }
)


@contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """Turn botocore errors raised while doing ``what`` into operator errors that say what failed."""
    try:
        yield
    except ClientError as error:
        code = error_code(error)
        message = error.response.get("Error", {}).get("Message", "") or code
        if code in _PERMISSION_CODES:
            raise AwsPermissionError(f"{what}: AWS denied the call ({code}: {message})") from None
        if code == "ResourceNotFoundException":
            raise AwsUnavailableError(f"{what}: not found ({message})") from None
        raise AwsUnavailableError(f"{what}: {code}: {message}") from None
    except (NoCredentialsError, PartialCredentialsError):
        raise AwsConfigError(f"{what}: no AWS credentials (pass --profile, or set AWS_PROFILE or AWS_*)") from None
    except NoRegionError:
        raise AwsConfigError(f"{what}: no AWS region (pass --region or set AWS_REGION)") from None
    except ProfileNotFound as error:
        raise AwsConfigError(f"{what}: {error}") from None
    except BotoConnectionError as error:
        raise AwsUnavailableError(f"{what}: AWS unreachable ({error})") from None
    except BotoCoreError as error:
        raise AwsUnavailableError(f"{what}: {error}") from None


# ---------------------------------------------------------------------------------------------------- sessions
@dataclass(frozen=True)
class AwsOptions:
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None  # None: boto3 still honours AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>


# Reads retry per botocore's standard mode (AWS_MAX_ATTEMPTS applies); no retry loop of our own.
_READ_CONFIG = Config(retries={"mode": "standard"}, connect_timeout=5, read_timeout=60)


class Aws:
    """boto3 clients of one session (profile, region, endpoint), built on first use."""

    def __init__(self, options: AwsOptions | None = None) -> None:
        self.options = options or AwsOptions()
        self._session: boto3.session.Session | None = None
        self._clients: dict[str, Any] = {}

    @property
    def session(self) -> boto3.session.Session:
        if self._session is None:
            with aws_errors("AWS session"):
                self._session = boto3.session.Session(
                    profile_name=self.options.profile, region_name=self.options.region
                )
        return self._session

    def client(self, service: str) -> Any:
        if service not in self._clients:
            kwargs: dict[str, Any] = {"config": _READ_CONFIG}
            if self.options.endpoint_url:
                kwargs["endpoint_url"] = self.options.endpoint_url
            with aws_errors(f"{service} client"):
                self._clients[service] = self.session.client(service, **kwargs)  # type: ignore[call-overload]
        return self._clients[service]


# ----------------------------------------------------------------------------------------------------- invoking
class OperatorApi(Protocol):
    """Sends one request to the operator entry point; returns (HTTP status, JSON body)."""

    def __call__(self, method: str, path: str, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]: ...


# Lambda may run up to 15 minutes, so the CLI waits as long; a start is never sent twice (no retry of our own).
OPERATOR_TIMEOUT_SECONDS = 900
SIGNING_SERVICE = "lambda"


def url_region(url: str) -> str | None:
    """``https://<id>.lambda-url.<region>.on.aws/`` -> its region."""
    host = urllib.parse.urlsplit(url).hostname or ""
    parts = host.split(".")
    if len(parts) >= 4 and parts[1] == "lambda-url":
        return parts[2]
    return None


class SignedOperatorClient:
    """HTTPS requests to the operator URL, signed with SigV4 (service "lambda") by the session's credentials.

    Only https URLs (http to a loopback address, for tests) are accepted: the signature proves who asks, and the
    body may hold a spec that should not travel in clear."""

    def __init__(self, aws: Aws, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        if not host or not (parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host))):
            raise AwsConfigError(f"operator URL {url!r}: not an https URL")
        self.aws = aws
        self.url = url.rstrip("/")

    def signed(self, method: str, path: str, body: Mapping[str, Any]) -> AWSRequest:
        with aws_errors("operator URL"):
            credentials = self.aws.session.get_credentials()
            if credentials is None:
                raise NoCredentialsError()
            region = url_region(self.url) or self.aws.session.region_name
            if not region:
                raise NoRegionError()
            data = json.dumps(body).encode()
            request = AWSRequest(
                method=method, url=f"{self.url}{path}", data=data, headers={"Content-Type": "application/json"}
            )
            SigV4Auth(credentials.get_frozen_credentials(), SIGNING_SERVICE, region).add_auth(request)
        return request

    def __call__(self, method: str, path: str, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        request = self.signed(method, path, body)
        prepared = request.prepare()
        http_request = urllib.request.Request(  # noqa: S310 (the scheme is checked in __init__)
            prepared.url, data=prepared.body, headers=dict(prepared.headers.items()), method=method
        )
        try:
            with urllib.request.urlopen(http_request, timeout=OPERATOR_TIMEOUT_SECONDS) as response:  # noqa: S310
                status, text = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read()
        except (urllib.error.URLError, OSError) as error:
            raise AwsUnavailableError(f"operator URL {self.url}: AWS unreachable ({error})") from None
        try:
            answer = json.loads(text or b"{}")
        except ValueError:
            raise FunctionFailedError(f"operator URL {self.url} answered {status} with something not JSON") from None
        if not isinstance(answer, dict):
            raise FunctionFailedError(f"operator URL {self.url} answered {status} with {type(answer).__name__}")
        return status, answer


def check_answer(status: int, answer: dict[str, Any], what: str) -> dict[str, Any]:
    """The operator function's answer, or the error it means (403: IAM said no; 404: no such rollout)."""
    if status < 400 or status == 422:  # 422: a spec fleetwave rejected, with its problems (the caller shows them)
        return answer
    message = str(answer.get("error") or answer.get("Message") or answer.get("message") or status)
    if status in (401, 403):
        raise AwsPermissionError(f"{what}: AWS denied the call ({status}: {message})")
    if status == 404:
        raise NotFoundError(message)
    if status < 500:
        raise OperatorError(f"{what}: {status}: {message}")
    raise FunctionFailedError(f"{what}: the operator function failed ({status}: {message})")


# ---------------------------------------------------------------------------------------------------- resources
@dataclass(frozen=True)
class StackResources:
    """The deployed resources the operator commands use; a None is one the command did not need."""

    table: str | None = None
    operator_url: str | None = None
    source: str = "flags"


RESOURCE_OUTPUTS: Mapping[str, tuple[str, str]] = {
    # resource -> (stack output, flag)
    "table": (OUTPUT_TABLE_NAME, "--table"),
    "operator_url": (OUTPUT_OPERATOR_URL, "--operator-url"),
}


def stack_outputs(aws: Aws, stack_name: str) -> dict[str, str]:
    cloudformation = aws.client("cloudformation")
    try:
        with aws_errors(f"stack {stack_name}"):
            stacks = cloudformation.describe_stacks(StackName=stack_name).get("Stacks", [])
    except AwsUnavailableError as error:
        flags = ", ".join(flag for _, flag in RESOURCE_OUTPUTS.values())
        raise AwsUnavailableError(f"{error} (is the stack deployed in this region? or pass {flags})") from None
    if not stacks:
        raise AwsUnavailableError(f"stack {stack_name}: not found")
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", []) if "OutputKey" in o}


def resolve_resources(
    aws: Aws,
    *,
    needs: Sequence[str],
    stack_name: str = DEFAULT_STACK_NAME,
    table: str | None = None,
    operator_url: str | None = None,
    optional: Sequence[str] = (),
) -> StackResources:
    """Flags win; anything ``needs`` lists that no flag gave is read from the stack's outputs (one call).

    ``optional`` resources are filled from the outputs when they are read anyway, never looked up for themselves.
    """
    given = {"table": table, "operator_url": operator_url}
    missing = [name for name in needs if not given[name]]
    if not missing:
        return StackResources(**given, source="flags")
    outputs = stack_outputs(aws, stack_name)
    for name in [*missing, *(o for o in optional if not given[o])]:
        output, flag = RESOURCE_OUTPUTS[name]
        if outputs.get(output):
            given[name] = outputs[output]
        elif name in missing:
            raise AwsUnavailableError(f"stack {stack_name} has no output {output}: pass {flag}")
    return StackResources(**given, source=f"stack {stack_name}")


# ----------------------------------------------------------------------------------------------------- operator
Progress = Callable[[Rollout, list[Wave], datetime], None]


class Operator:
    """The operator commands' work, on one account (or endpoint), one set of resources and one operator API."""

    def __init__(self, aws: Aws, resources: StackResources, api: OperatorApi | None = None) -> None:
        self.aws = aws
        self.resources = resources
        self._api = api
        self._ledger: Ledger | None = None

    @property
    def api(self) -> OperatorApi:
        if self._api is None:
            if not self.resources.operator_url:
                raise AwsUnavailableError("no operator URL: pass --operator-url or --stack-name")
            self._api = SignedOperatorClient(self.aws, self.resources.operator_url)
        return self._api

    @property
    def table(self) -> str:
        if not self.resources.table:
            raise AwsUnavailableError("no ledger table: pass --table or --stack-name")
        return self.resources.table

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger(self.table, self.aws.client("dynamodb"))
        return self._ledger

    # ---------------------------------------------------------------- writes (through the functions)
    def start(self, spec: RolloutSpec) -> dict[str, Any]:
        """POST /rollouts with the validated spec; returns the answer (maybe ``{"rejected": True, ...}``)."""
        status, answer = self.api("POST", "/rollouts", {"spec": spec.model_dump(mode="json")})
        return check_answer(status, answer, "start")

    def cancel(self, rollout_id: str, reason: str) -> dict[str, Any]:
        """POST /rollouts/<id>/cancel. With the table known, an unknown ID fails before any request, and an ended
        rollout is reported as it is (``"already_ended": true``) without one."""
        if self.resources.table:
            rollout = self.rollout(rollout_id)
            if rollout.state.is_terminal:
                return {
                    "rollout_id": rollout_id,
                    "state": rollout.state.value,
                    "reason": rollout.reason,
                    "cancelled_by": rollout.cancelled_by or None,
                    "already_ended": True,
                }
        status, answer = self.api("POST", f"/rollouts/{rollout_id}/cancel", {"reason": reason})
        result = check_answer(status, answer, "cancel")
        return {**result, "already_ended": False} if self.resources.table else result

    # ---------------------------------------------------------------- reads (the ledger)
    def _read(self) -> Any:
        return aws_errors(f"table {self.table}")

    def rollout(self, rollout_id: str) -> Rollout:
        with self._read():
            try:
                return self.ledger.rollouts.get(rollout_id)
            except NotFoundError:
                raise NotFoundError(f"no rollout {rollout_id!r} in table {self.table}") from None

    def view(self, rollout_id: str) -> RolloutView:
        rollout = self.rollout(rollout_id)
        with self._read():
            return RolloutView(
                rollout=rollout,
                waves=self.ledger.plans.waves(rollout_id),
                skipped=self.ledger.plans.skipped(rollout_id),
                failed=self.ledger.invocations.failed(rollout_id),
                location=OutputLocation.of(
                    self._output_settings(rollout_id), rollout.document_name, self.aws.session.region_name or ""
                ),
            )

    def _output_settings(self, rollout_id: str) -> OutputSpec | None:
        """The output settings of the spec the rollout ran (recorded with it), to link each invocation's output."""
        try:
            spec = json.loads(self.ledger.rollouts.spec_json(rollout_id))
            return OutputSpec.model_validate(spec.get("output") or {})
        except (KeyError, ValueError, AttributeError):  # a record without a readable spec: links to Run Command
            return None

    def list_rollouts(self, *, state: str | None = None, spec: str | None = None, limit: int = 50) -> list[Rollout]:
        with self._read():
            return self.ledger.rollouts.find(state=state, spec=spec, limit=limit)

    def history(self, instance_id: str, limit: int = 100) -> list[dict[str, Any]]:
        with self._read():
            return self.ledger.invocations.history(instance_id, limit=limit)

    def watch(
        self,
        rollout_id: str,
        *,
        interval: float,
        timeout: float | None = None,
        on_progress: Progress | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> Rollout:
        """Poll the ledger until the rollout ends; raises WatchTimeoutError when ``timeout`` seconds pass first."""
        deadline = monotonic() + timeout if timeout else None
        while True:
            rollout = self.rollout(rollout_id)
            with self._read():
                waves = self.ledger.plans.waves(rollout_id)
            if on_progress:
                on_progress(rollout, waves, datetime.now(UTC))
            if rollout.state.is_terminal:
                return rollout
            if deadline is not None:
                remaining = deadline - monotonic()
                if remaining <= 0:
                    raise WatchTimeoutError(
                        f"rollout {rollout_id} still {rollout.state.value} after {timeout:g}s (--timeout)"
                    )
                sleep(min(interval, remaining))
            else:
                sleep(interval)

    # ---------------------------------------------------------------- plan (SSM and EC2, no write)
    def plan(self, spec: RolloutSpec) -> dict[str, Any]:
        """The plan start_rollout would make now: EC2 tags, SSM online status, sessions; nothing dispatched."""
        from fleetwave_local.cli.planning import plan_with_deps
        from fleetwave_local.cli.runtime import functions_runtime

        functions_runtime()  # before the first fleetwave.service import
        from fleetwave.adapters.alarms import Gates
        from fleetwave.adapters.notifier import SummaryPublisher
        from fleetwave.adapters.scheduler import Timers
        from fleetwave.adapters.ssm import SsmGateway
        from fleetwave.service.deps import Deps
        from fleetwave.settings import Settings

        ssm = self.aws.client("ssm")
        # Only the SSM gateway is used by planning; the other adapters are built because Deps holds them.
        deps = Deps(
            settings=Settings(TABLE_NAME=self.resources.table or TABLE_NAME),
            ledger=Ledger(self.resources.table or TABLE_NAME, self.aws.client("dynamodb")),
            ssm=SsmGateway(ssm, self.aws.client("ec2")),
            timers=Timers(self.aws.client("scheduler"), group="", role_arn="", target_arn=""),
            gates=Gates(self.aws.client("cloudwatch"), ssm),
            summaries=SummaryPublisher(self.aws.client("sns"), ""),
        )
        with aws_errors("plan (SSM and EC2)"):
            return plan_with_deps(deps, spec)
