"""The botocore hook that lets the fleet simulator answer SSM calls, the way moto answers everything else.

moto appends `("before-send", botocore_stubber)` to `botocore.handlers.BUILTIN_HANDLERS` at import. Importing this
module inserts ONE more `before-send` handler just before moto's, so it runs first. It returns None (moto answers)
unless a simulator is installed and the request is an SSM call in the simulator's region that the simulator
answers. botocore runs every before-send handler and keeps the first response, so after answering the dispatcher
re-points the request at a host moto does not serve (`CLAIMED_URL`), which makes moto's stubber return None.

botocore copies BUILTIN_HANDLERS into a Session when the Session is created, and clients copy their session's
handlers: clients (and sessions, including boto3's default session) created BEFORE this module was imported do not
see the simulator. Import `fleetwave_local.simulator` early (a conftest does that best) or call `patch_client()`.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Iterator
from io import BytesIO
from typing import Any, Protocol

import moto.core.models as moto_models
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders
from botocore.handlers import BUILTIN_HANDLERS

_UNIQUE_ID = "fleetwave-fleet-simulator"
#: where a request the simulator answered is pointed, so moto's stubber leaves it alone
CLAIMED_URL = "https://fleetwave-simulator.invalid/"


class SsmApiError(Exception):
    """An SSM error response: HTTP 400 and `{"__type": code, "message": ...}`, raised by boto3 as ClientError."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class SsmRequestHandler(Protocol):
    """What the dispatcher needs from an installed simulator."""

    region: str

    def handle_ssm_request(self, operation: str, event_name: str, request: AWSPreparedRequest) -> AWSResponse | None:
        """Answer one SSM operation, or return None to let moto answer it."""
        ...


class _ThreadState(threading.local):
    #: >0 while this thread makes the simulator's own calls
    internal_depth: int = 0


class _DispatcherState:
    """Shared across re-imports of this module, so there is only ever one dispatcher and one active simulator."""

    def __init__(self) -> None:
        self.active: SsmRequestHandler | None = None
        self.local = _ThreadState()


class _RawBody(BytesIO):
    """The `raw` object AWSResponse reads from (botocore only calls `stream()`)."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        chunk = self.read()
        while chunk:
            yield chunk
            chunk = self.read()


def json_response(url: str, body: dict[str, Any], status: int = 200) -> AWSResponse:
    """An `application/x-amz-json-1.1` response, as SSM sends them."""
    headers = HTTPHeaders()
    headers["Content-Type"] = "application/x-amz-json-1.1"
    headers["x-amzn-RequestId"] = str(uuid.uuid4())
    payload = json.dumps(body).encode("utf-8")
    headers["Content-Length"] = str(len(payload))
    return AWSResponse(url, status, headers, _RawBody(payload))


def error_response(url: str, error: SsmApiError) -> AWSResponse:
    return json_response(url, {"__type": error.code, "message": error.message}, status=error.status)


def forward_to_moto(event_name: str, request: AWSPreparedRequest) -> AWSResponse:
    """Let moto answer a request now (SendCommand: moto assigns the CommandId and keeps its own record)."""
    response = moto_models.botocore_stubber(event_name, request)
    if response is None:
        raise RuntimeError("the fleet simulator needs moto's mock to be active (use `with mock_aws():`)")
    return response


def _header(request: AWSPreparedRequest, name: str) -> str:
    value = request.headers.get(name, "")
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _region_of(url: str) -> str | None:
    # https://ssm.<region>.amazonaws.com/
    host = url.split("://", 1)[-1].split("/", 1)[0]
    parts = host.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "ssm" else None


def _dispatch(event_name: str, request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
    handler = _STATE.active
    if handler is None or _STATE.local.internal_depth:
        return None
    parts = event_name.split(".")
    if len(parts) < 3 or parts[1] != "ssm":
        return None
    region = _region_of(request.url)
    if region is not None and region != handler.region:
        return None
    target = _header(request, "X-Amz-Target")
    operation = target.rsplit(".", 1)[-1] if target else parts[2]
    response = handler.handle_ssm_request(operation, event_name, request)
    if response is not None:
        # botocore calls EVERY before-send handler (`emit`, not `emit_until_response`) and keeps the first
        # response, so moto's stubber still runs after us. Point this request (made afresh for each attempt) at a
        # host moto does not serve, so moto returns None instead of answering (or failing) a second time.
        request.url = CLAIMED_URL
    return response


def _existing_dispatcher() -> Any | None:
    for spec in BUILTIN_HANDLERS:
        if getattr(spec[1], "__fleetwave_state__", None) is not None:
            return spec[1]
    return None


def _register() -> _DispatcherState:
    existing = _existing_dispatcher()
    if existing is not None:
        state: _DispatcherState = existing.__fleetwave_state__
        return state
    state = _DispatcherState()
    _dispatch.__fleetwave_state__ = state  # type: ignore[attr-defined]
    index = next(
        (i for i, spec in enumerate(BUILTIN_HANDLERS) if spec[1] is moto_models.botocore_stubber),
        len(BUILTIN_HANDLERS),
    )
    BUILTIN_HANDLERS.insert(index, ("before-send", _dispatch))
    return state


_STATE = _register()
#: the handler botocore calls (the first registered one, even if this module was imported twice)
DISPATCHER: Any = _existing_dispatcher()


def activate(handler: SsmRequestHandler) -> None:
    if _STATE.active is not None and _STATE.active is not handler:
        raise RuntimeError("another FleetSimulator is installed; uninstall it first")
    _STATE.active = handler


def deactivate(handler: SsmRequestHandler) -> None:
    if _STATE.active is handler:
        _STATE.active = None


def active_handler() -> SsmRequestHandler | None:
    return _STATE.active


@contextlib.contextmanager
def internal_calls() -> Iterator[None]:
    """While inside, this thread's AWS calls bypass the simulator (the simulator's own clients)."""
    depth = _STATE.local.internal_depth
    _STATE.local.internal_depth = depth + 1
    try:
        yield
    finally:
        _STATE.local.internal_depth = depth


def patch_client(client: Any) -> None:
    """Make a client created before this module was imported see the simulator (like moto's patch_client)."""
    client.meta.events.register_first("before-send", DISPATCHER, unique_id=_UNIQUE_ID)
