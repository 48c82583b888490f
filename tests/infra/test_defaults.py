"""Secure by default: what the stack allows when cdk.json is left as it is."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Match
from fleetwave.documents import unconstrained_parameters

from .conftest import Synthesized, actions_of, as_list, find_statements, synthesize


def sendable_documents(synthesized: Synthesized) -> set[str]:
    """Names of every document some role of the stack may SendCommand."""
    names: set[str] = set()
    for policy in synthesized.of_type("AWS::IAM::Policy").values():
        for statement in find_statements(policy["Properties"]["PolicyDocument"]["Statement"], "ssm:SendCommand"):
            for resource in as_list(statement["Resource"]):
                text = json.dumps(resource)
                match = re.search(r":document/([^\"]+)\"", text)
                if match:
                    names.add(match.group(1))
    return names


def node_statements(synthesized: Synthesized) -> list[dict[str, Any]]:
    found = []
    for policy in synthesized.of_type("AWS::IAM::Policy").values():
        for statement in find_statements(policy["Properties"]["PolicyDocument"]["Statement"], "ssm:SendCommand"):
            if ":instance/" in json.dumps(statement["Resource"]):
                found.append(statement)
    return found


def test_the_default_stack_allows_no_document_with_an_unconstrained_parameter(default_stack: Synthesized) -> None:
    # Given the documents any role of the default stack may send
    allowed = sendable_documents(default_stack)
    assert allowed == {"fleetwave-PatchBaseline", "fleetwave-RestartService"}
    # Then each is a document the stack itself ships, whose every parameter has allowedValues or allowedPattern
    shipped = {d["Properties"]["Name"]: d["Properties"] for d in default_stack.of_type("AWS::SSM::Document").values()}
    for name in allowed:
        assert name in shipped, f"{name}: the template does not hold it, so nothing shows its parameters are fenced"
        assert shipped[name]["DocumentType"] == "Command"
        content = shipped[name]["Content"]
        assert content["parameters"] and unconstrained_parameters(content) == [], name


def test_the_restart_document_restarts_only_the_configured_services(default_stack: Synthesized) -> None:
    [restart] = [
        d["Properties"]
        for d in default_stack.of_type("AWS::SSM::Document").values()
        if d["Properties"]["Name"] == "fleetwave-RestartService"
    ]
    parameter = restart["Content"]["parameters"]["ServiceName"]
    assert parameter["allowedValues"] == ["nginx", "httpd", "amazon-cloudwatch-agent"]
    assert restart["UpdateMethod"] == "NewVersion"


def test_by_default_commands_reach_only_nodes_tagged_for_fleetwave(default_stack: Synthesized) -> None:
    statements = node_statements(default_stack)
    assert statements
    for statement in statements:
        assert statement["Condition"] == {"StringEquals": {"ssm:resourceTag/fleetwave:managed": "true"}}


def test_by_default_no_role_may_end_sessions(default_stack: Synthesized) -> None:
    for policy in default_stack.of_type("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert "ssm:TerminateSession" not in actions_of(statement)


def test_the_default_stack_warns_about_nothing_unsafe(default_stack: Synthesized) -> None:
    for code in ("freeFormDocument", "noInstanceTagCondition"):
        assert not default_stack.annotations.find_warning("*", Match.string_like_regexp(f".*fleetwave:{code}.*"))


@pytest.fixture(scope="module")
def opted_out(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    context = {
        "fleetwave:allowedDocuments": ["fleetwave-RestartService", "AWS-RunShellScript"],
        "fleetwave:instanceTagCondition": False,
        "fleetwave:sessionTermination": True,
    }
    return synthesize(context, tmp_path_factory.mktemp("cdk.out.optout"))


def test_opting_out_is_possible_and_said_out_loud_at_synth(opted_out: Synthesized) -> None:
    # The shell document is allowed, commands reach every managed node, sessions may be ended: all on purpose
    assert "AWS-RunShellScript" in sendable_documents(opted_out)
    assert all("Condition" not in s for s in node_statements(opted_out))
    terminate = [
        s
        for p in opted_out.of_type("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "ssm:TerminateSession" in actions_of(s)
    ]
    assert terminate
    # And each unsafe choice is a warning at every synth
    warnings = {
        code: opted_out.annotations.find_warning("*", Match.string_like_regexp(f".*fleetwave:{code}.*"))
        for code in ("freeFormDocument", "noInstanceTagCondition")
    }
    assert all(warnings.values()), warnings
    assert "AWS-RunShellScript" in str(warnings["freeFormDocument"][0].entry.data)
