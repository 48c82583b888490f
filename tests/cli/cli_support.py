"""Helpers shared by the CLI tests (a module with a unique name, so test modules can import it)."""

from __future__ import annotations

import hmac
import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
PATCHING = EXAMPLES / "patching.yaml"
SHELL = EXAMPLES / "shell-script.yaml"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def deployed_name(handler: str) -> str:
    """The name the stack gives a function (``start_rollout`` -> its deployed name), as the CLI's flags take it."""
    from fleetwave.constants import function_name

    return function_name(handler)


def planned_outcomes(spec: Path, *, fleet: int, seed: int, **rates: float) -> dict[str, str]:
    """Instance ID -> the outcome the simulator is seeded to give it, for the fleet ``simulate`` builds."""
    from fleetwave.core.spec import load_spec_text
    from fleetwave_local.cli.simulate import FleetOptions, build_fleet, open_twin

    loaded = load_spec_text(spec.read_text(encoding="utf-8"))
    with open_twin(FleetOptions(size=fleet, seed=seed, **rates)) as twin:
        build_fleet(twin, loaded, fleet)
        return {node.instance_id: twin.sim.planned_outcome(node.instance_id) for node in twin.sim.nodes()}


class SignatureError(Exception):
    """The request's SigV4 signature does not hold (what a function URL with AWS_IAM answers 403 for)."""


_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


def verify_sigv4(
    method: str, url: str, headers: Mapping[str, str], body: bytes, secrets: Mapping[str, str], *, service: str
) -> str:
    """Recompute the request's SigV4 signature with botocore from the secret of its access key, as AWS does; return
    the access key ID. Raises SignatureError when the signature, its scope or its time does not hold."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    headers = {name.lower(): value for name, value in headers.items()}
    match = _AUTHORIZATION.match(headers.get("authorization", ""))
    if not match:
        raise SignatureError("no SigV4 Authorization header")
    key = match["key"]
    if key not in secrets:
        raise SignatureError(f"unknown access key {key}")
    if match["service"] != service:
        raise SignatureError(f"signed for {match['service']}, not {service}")
    amz_date = headers.get("x-amz-date", "")
    signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if abs((datetime.now(UTC) - signed_at).total_seconds()) > 300 or amz_date[:8] != match["date"]:
        raise SignatureError("the signature is not of now")
    signed = match["signed"].split(";")
    # The signed headers as received (an HTTP client sends Host from the URL; botocore signs it from there too)
    received = {name: headers.get(name) or (urlsplit(url).netloc if name == "host" else "") for name in signed}
    request = AWSRequest(method=method, url=url, data=body, headers=received)
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(key, secrets[key], headers.get("x-amz-security-token")), service, match["region"])
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if not hmac.compare_digest(expected, match["signature"]):
        raise SignatureError("The request signature we calculated does not match the signature you provided.")
    return key


class OperatorServer:
    """The operator function URL, on a loopback port: checks each request's SigV4 signature (service "lambda") as
    AWS_IAM auth does, then hands the request to the real operator handler on the twin, with the caller's ARN in
    the request context as Lambda puts it there. Records what it answered."""

    def __init__(self, twin: Any, identities: Mapping[str, tuple[str, str]]) -> None:
        """``identities``: access key ID -> (secret key, principal ARN)."""
        self.twin = twin
        self.secrets = {key: secret for key, (secret, _) in identities.items()}
        self.principals = {key: arn for key, (_, arn) in identities.items()}
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.answers: list[tuple[int, dict[str, Any]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                server.handle(self)

            do_GET = do_POST

            def log_message(self, *_: Any) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> OperatorServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        from fleetwave_local.twin import function_url_event

        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length)
        headers = {name: value for name, value in request.headers.items()}
        url = f"http://{request.headers['Host']}{request.path}"
        try:
            key = verify_sigv4(request.command, url, headers, body, self.secrets, service="lambda")
        except SignatureError as error:
            status, answer = 403, {"Message": str(error)}
        else:
            self.requests.append((request.command, request.path, json.loads(body or b"{}")))
            event = function_url_event(request.command, request.path, body.decode(), caller_arn=self.principals[key])
            response = self.twin.invoke("operator", event)
            self.twin.deliver()
            status, answer = int(response["statusCode"]), json.loads(response.get("body") or "{}")
        self.answers.append((status, answer))
        data = json.dumps(answer).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)


def write_spec(directory: Path, text: str, name: str = "spec.yaml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def total(counts: Mapping[str, int]) -> int:
    return sum(counts.values())


def no_traceback(result: Result) -> None:
    assert "Traceback" not in result.err
    assert "Traceback" not in result.out


def flags(**values: str) -> Sequence[str]:
    """``flags(table="t")`` -> ``["--table", "t"]``."""
    out: list[str] = []
    for key, value in values.items():
        out += [f"--{key.replace('_', '-')}", value]
    return out
