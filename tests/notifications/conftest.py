"""Fixtures for notification tests: a Slack webhook on loopback, and golden files.

Golden files live in tests/notifications/golden/. A test compares what it produced with its golden file; run with
``UPDATE_GOLDENS=1`` to (re)write them after a deliberate format change, and review the diff.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

GOLDEN_DIR = Path(__file__).parent / "golden"
# The path of the twin's and the tests' webhook: what a real one looks like, so "never logged" means something.
WEBHOOK_PATH = "/services/T0FLEETWAVE/B0NOTIFY/s3cr3tWebhookToken0123456789"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # slack-sdk sends every request through HTTP(S)_PROXY when set, loopback too: these tests stay on 127.0.0.1.
    for key in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(key, raising=False)


@dataclass
class SlackServer:
    """An incoming-webhook stand-in on 127.0.0.1: records every POST, answers from ``statuses`` (then 200 "ok")."""

    statuses: list[int | tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The payloads Slack accepted (answered 200)."""
        return [r["body"] for r in self.requests if r["status"] == 200]

    def answer(self) -> tuple[int, dict[str, str]]:
        if not self.statuses:
            return 200, {}
        status = self.statuses.pop(0)
        return status if isinstance(status, tuple) else (status, {})


@pytest.fixture
def slack_server() -> Iterator[SlackServer]:
    server_state = SlackServer()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            with lock:
                status, headers = server_state.answer()
                server_state.requests.append({"status": status, "body": body})
                server_state.paths.append(self.path)
            payload = b"ok" if status == 200 else b"internal_error" if status >= 500 else b"invalid_payload"
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output (and the URL) out of stderr

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL nothing listens on (the port was bound, then released)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{WEBHOOK_PATH}"


class Golden:
    """Compare text or JSON with tests/notifications/golden/<name>; UPDATE_GOLDENS=1 writes it instead."""

    def __init__(self, update: bool) -> None:
        self.update = update

    def check(self, name: str, produced: Any) -> None:
        text = (
            produced
            if isinstance(produced, str)
            else json.dumps(produced, indent=2, sort_keys=True, ensure_ascii=False)
        )
        if not text.endswith("\n"):
            text += "\n"
        path = GOLDEN_DIR / name
        if self.update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return
        assert path.exists(), f"no golden file {path.name}: run with UPDATE_GOLDENS=1 to write it"
        expected = path.read_text(encoding="utf-8")
        assert text == expected, f"{path.name} differs from its golden file (UPDATE_GOLDENS=1 rewrites it)"


@pytest.fixture
def golden() -> Golden:
    return Golden(update=os.environ.get("UPDATE_GOLDENS", "") not in ("", "0", "false"))
