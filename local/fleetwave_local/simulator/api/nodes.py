"""DescribeInstanceInformation, DescribeSessions, TerminateSession and GetConnectionStatus: the managed nodes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from ..botocore_hook import SsmApiError
from ..model import ManagedNode, Session
from ..state import SsmState
from .wire import paginate, parse_time, validation_error, with_token

_INSTANCE_FILTER_KEYS: Final = frozenset(
    {"InstanceIds", "AgentVersion", "PingStatus", "PlatformTypes", "ActivationIds", "IamRole", "ResourceType"}
    | {"AssociationStatus"}
)
_SESSION_FILTER_KEYS: Final = frozenset({"InvokedAfter", "InvokedBefore", "Target", "Owner", "Status", "SessionId"})
_ACTIVE_SESSION_STATUSES: Final = frozenset({"Connected", "Connecting", "Disconnected", "Terminating"})


def describe_instance_information(state: SsmState, body: dict[str, Any]) -> dict[str, Any]:
    predicates: list[Callable[[ManagedNode], bool]] = []
    for f in body.get("InstanceInformationFilterList") or []:
        predicates.append(_node_filter(str(f.get("key", "")), [str(v) for v in f.get("valueSet") or []], False))
    for f in body.get("Filters") or []:
        predicates.append(_node_filter(str(f.get("Key", "")), [str(v) for v in f.get("Values") or []], True))
    now = state.clock.now()
    nodes = [n for n in state.nodes.values() if all(p(n) for p in predicates)]
    page, token = paginate(nodes, body, "DescribeInstanceInformation", default=50, maximum=50)
    items = []
    for node in page:
        if node.ping_status == "Online":
            node.last_ping_at = now  # an online agent pings every few minutes
        items.append(
            {
                "InstanceId": node.instance_id,
                "PingStatus": node.ping_status,
                "LastPingDateTime": node.last_ping_at.timestamp(),
                "AgentVersion": node.agent_version,
                "IsLatestVersion": True,
                "PlatformType": node.platform,
                "PlatformName": node.platform_name,
                "PlatformVersion": node.platform_version,
                "ResourceType": "EC2Instance" if node.instance_id.startswith("i-") else "ManagedInstance",
                "RegistrationDate": node.registered_at.timestamp(),
                "IPAddress": node.ip_address,
                "ComputerName": node.computer_name,
                "AssociationStatus": "Success",
                "SourceId": node.instance_id,
                "SourceType": "AWS::EC2::Instance"
                if node.instance_id.startswith("i-")
                else "AWS::SSM::ManagedInstance",
            }
        )
    return with_token({"InstanceInformationList": items}, token)


def describe_sessions(state: SsmState, body: dict[str, Any]) -> dict[str, Any]:
    wanted = body.get("State")
    if wanted not in ("Active", "History"):
        raise validation_error("state", "Member must satisfy enum value set: [Active, History]")
    predicates: list[Callable[[Session], bool]] = []
    for f in body.get("Filters") or []:
        predicates.append(_session_filter(str(f.get("key", "")), str(f.get("value", ""))))
    sessions = [
        s
        for s in sorted(state.sessions.values(), key=lambda s: s.start_date, reverse=True)
        if (s.status in _ACTIVE_SESSION_STATUSES) == (wanted == "Active") and all(p(s) for p in predicates)
    ]
    page, token = paginate(sessions, body, "DescribeSessions", default=20, maximum=200)
    items = []
    for s in page:
        item: dict[str, Any] = {
            "SessionId": s.session_id,
            "Target": s.target,
            "Status": s.status,
            "StartDate": s.start_date.timestamp(),
            "DocumentName": s.document_name,
            "Owner": s.owner,
        }
        if s.end_date is not None:
            item["EndDate"] = s.end_date.timestamp()
        if s.reason:
            item["Reason"] = s.reason
        items.append(item)
    return with_token({"Sessions": items}, token)


def terminate_session(state: SsmState, body: dict[str, Any]) -> dict[str, Any]:
    session_id = str(body.get("SessionId", ""))
    session = state.sessions.get(session_id)
    if session is None:
        raise SsmApiError("DoesNotExistException", f"Session {session_id} does not exist.")
    if session.active:
        session.status = "Terminated"
        session.end_date = state.clock.now()
    return {"SessionId": session_id}


def get_connection_status(state: SsmState, body: dict[str, Any]) -> dict[str, Any]:
    target = str(body.get("Target", ""))
    node = state.nodes.get(target)
    return {"Target": target, "Status": "connected" if node is not None and node.connected else "notconnected"}


def _node_filter(key: str, values: list[str], tags_allowed: bool) -> Callable[[ManagedNode], bool]:
    if not values:
        raise SsmApiError("InvalidInstanceInformationFilterValue", f"Filter {key} needs at least one value.")
    if tags_allowed and key.startswith("tag:"):
        tag = key[4:]
        return lambda n: n.tags.get(tag) in values
    if tags_allowed and key == "tag-key":
        return lambda n: any(k in n.tags for k in values)
    if key not in _INSTANCE_FILTER_KEYS:
        raise SsmApiError("InvalidFilterKey", f"{key} is not a valid filter key.")
    getters: dict[str, Callable[[ManagedNode], str]] = {
        "InstanceIds": lambda n: n.instance_id,
        "PingStatus": lambda n: n.ping_status,
        "PlatformTypes": lambda n: n.platform,
        "AgentVersion": lambda n: n.agent_version,
        "ResourceType": lambda n: "EC2Instance" if n.instance_id.startswith("i-") else "ManagedInstance",
        "AssociationStatus": lambda n: "Success",
    }
    getter = getters.get(key)
    if getter is None:  # ActivationIds, IamRole: simulated nodes have none
        return lambda n: False
    return lambda n: getter(n) in values


def _session_filter(key: str, value: str) -> Callable[[Session], bool]:
    if key not in _SESSION_FILTER_KEYS:
        raise SsmApiError("InvalidFilterKey", f"{key} is not a valid filter key.")
    if key == "InvokedAfter":
        after = parse_time(value)
        return lambda s: s.start_date >= after
    if key == "InvokedBefore":
        before = parse_time(value)
        return lambda s: s.start_date <= before
    getters: dict[str, Callable[[Session], str]] = {
        "Target": lambda s: s.target,
        "Owner": lambda s: s.owner,
        "Status": lambda s: s.status,
        "SessionId": lambda s: s.session_id,
    }
    getter = getters[key]
    return lambda s: getter(s) == value
