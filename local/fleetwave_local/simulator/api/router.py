"""The simulated SSM API's front door: which operations the simulator answers, and how errors are answered."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from botocore.awsrequest import AWSPreparedRequest, AWSResponse

from ..botocore_hook import SsmApiError, error_response, json_response
from ..run_command import RunCommandService
from ..state import SsmState
from . import commands, nodes
from .send_command import SendCommand
from .wire import json_body


class SsmApi:
    """Translates SSM JSON requests into calls on the Run Command model, and the state into SSM JSON responses.

    SendCommand, the one operation with settings of its own, comes configured (`SendCommand`).
    """

    def __init__(self, state: SsmState, run_command: RunCommandService, send_command: SendCommand) -> None:
        self._send_command = send_command
        self._handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "ListCommands": partial(commands.list_commands, state),
            "GetCommandInvocation": partial(commands.get_command_invocation, state),
            "ListCommandInvocations": partial(commands.list_command_invocations, state),
            "CancelCommand": partial(commands.cancel_command, state, run_command),
            "DescribeInstanceInformation": partial(nodes.describe_instance_information, state),
            "DescribeSessions": partial(nodes.describe_sessions, state),
            "TerminateSession": partial(nodes.terminate_session, state),
            "GetConnectionStatus": partial(nodes.get_connection_status, state),
            "GetCalendarState": state.calendars.get_calendar_state,
        }

    def handle(self, operation: str, event_name: str, request: AWSPreparedRequest) -> AWSResponse | None:
        if operation != "SendCommand" and operation not in self._handlers:
            return None  # documents and everything else: moto
        try:
            body = json_body(request)
            if operation == "SendCommand":
                return self._send_command(body, event_name, request)
            return json_response(request.url, self._handlers[operation](body))
        except SsmApiError as error:
            return error_response(request.url, error)
