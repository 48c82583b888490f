"""Synthesis fixtures: the full stack is synthesized once per test session and shared by every infra module.

Synthesis is offline and fast: ``fleetwave:skipDependencyBundling=true`` replaces the pip-built layer with a
placeholder. The context starts from cdk.json (defaults and feature flags), so the tests see what `cdk deploy` sees.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# jsii warns on every start that Node 20 is past end of life; the tests do not need to hear it.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from aws_cdk import App  # noqa: E402
from aws_cdk.assertions import Annotations, Template  # noqa: E402

import stacks  # noqa: E402  (puts functions/ on sys.path for `fleetwave`)
from stacks.build import build  # noqa: E402
from stacks.fleetwave_stack import FleetwaveStack  # noqa: E402

assert stacks.FUNCTIONS_DIR.is_dir()

OWN_DOCUMENT = "Fleetwave-RestartAgent"
REMEDIATION_DOCUMENT = "AWS-RunShellScript"
TAG_KEY, TAG_VALUE = "fleetwave-managed", "true"
SLACK_SECRET = "fleetwave/slack-webhook"

MONTHLY_SPEC = """\
name: monthly-patching
document:
  name: AWS-RunPatchBaseline
  parameters: {Operation: Install, RebootOption: RebootIfNeeded}
targets:
  tags: {PatchGroup: [web]}
waves: [1, "10%", "50%", "100%"]
error_budget: "2%"
bake_time: 30m
schedule:
  cron: "0 3 ? * TUE#2 *"
  timezone: Europe/Paris
"""
# JSON is YAML too: spec files may be either.
NIGHTLY_SPEC = """\
{"name": "nightly-agent-restart",
 "document": {"name": "Fleetwave-RestartAgent"},
 "targets": {"instance_ids": ["i-0123456789abcdef0"]},
 "schedule": {"cron": "cron(30 1 * * ? *)", "timezone": "America/New_York"}}
"""
REMEDIATION_RULES = [
    {
        "name": "restart-nginx",
        "alarm_prefix": "web-nginx-down-",
        "document": REMEDIATION_DOCUMENT,
        "parameters": {"commands": ["systemctl restart nginx"]},
        "target": "dimension:InstanceId",
        "cooldown_minutes": 30,
        "max_per_hour": 5,
        "target_tag": {"role": "web"},
    },
    {
        "name": "restart-db-agent",
        "alarm_names": ["db-agent-down"],
        "document": REMEDIATION_DOCUMENT,
        "parameters": {"commands": ["systemctl restart db-agent"]},
        "target": "tag:fleetwave:instance",
        "cooldown_minutes": 60,
        "max_per_hour": 2,
        "target_tag": {"role": "db"},
    },
]


def project_context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads((PROJECT_ROOT / "cdk.json").read_text(encoding="utf-8"))["context"]
    context["fleetwave:skipDependencyBundling"] = True
    # With this flag on, CDK turns error annotations into an exception at synth; off, cdk-nag findings stay
    # annotations that the nag test lists by name instead of failing every test at once.
    context["@aws-cdk/core:annotationsInValidationReport"] = False
    return context


@dataclass
class Synthesized:
    stack: FleetwaveStack
    template: Template
    annotations: Annotations
    outdir: Path

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = self.template.to_json()["Resources"]
        return resources

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == resource_type}

    def logical_id(self, construct: Any) -> str:
        return str(self.stack.get_logical_id(construct.node.default_child))


def synthesize(overrides: Mapping[str, Any], outdir: Path) -> Synthesized:
    app = App(context={**project_context(), **overrides}, outdir=str(outdir))
    stack = build(app)
    template = Template.from_stack(stack)
    return Synthesized(stack, template, Annotations.from_stack(stack), outdir)


@pytest.fixture(scope="session")
def spec_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    directory = tmp_path_factory.mktemp("specs")
    (directory / "monthly.yaml").write_text(MONTHLY_SPEC, encoding="utf-8")
    (directory / "nightly.json").write_text(NIGHTLY_SPEC, encoding="utf-8")
    return [directory / "monthly.yaml", directory / "nightly.json"]


@pytest.fixture(scope="session")
def full_context(spec_files: list[Path]) -> dict[str, Any]:
    """Every optional feature on: scheduled specs, remediation, e-mails, Slack, the instance tag condition."""
    return {
        "fleetwave:allowedDocuments": ["AWS-RunPatchBaseline", REMEDIATION_DOCUMENT, OWN_DOCUMENT],
        "fleetwave:notificationEmails": ["ops@example.com"],
        "fleetwave:slackSecretName": SLACK_SECRET,
        "fleetwave:scheduledSpecs": [str(path) for path in spec_files],
        "fleetwave:remediationRules": REMEDIATION_RULES,
        "fleetwave:instanceTagCondition": {"key": TAG_KEY, "value": TAG_VALUE},
        "fleetwave:powertoolsLayerVersion": 27,
    }


@pytest.fixture(scope="session")
def synthesized(full_context: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    yield synthesize(full_context, tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="session")
def default_stack(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The stack exactly as cdk.json configures it (what a first `cdk deploy` creates)."""
    return synthesize({}, tmp_path_factory.mktemp("cdk.out.default"))


@pytest.fixture(scope="session")
def resources(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    return synthesized.resources


def statements_of_role(synthesized: Synthesized, role_logical_id: str) -> list[dict[str, Any]]:
    """Every statement of the identity policies attached to one role."""
    statements: list[dict[str, Any]] = []
    for resource in synthesized.of_type("AWS::IAM::Policy").values():
        if {"Ref": role_logical_id} in resource["Properties"]["Roles"]:
            statements.extend(resource["Properties"]["PolicyDocument"]["Statement"])
    return statements


def function_role(synthesized: Synthesized, key: str) -> str:
    function = synthesized.stack.functions.functions[key]
    return synthesized.logical_id(function.role)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def actions_of(statement: Mapping[str, Any]) -> list[str]:
    return [str(action) for action in as_list(statement.get("Action", []))]


def find_statements(statements: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [s for s in statements if action in actions_of(s) and s.get("Effect", "Allow") == "Allow"]


def arn(service: str, resource: str, *, account: bool = True) -> dict[str, Any]:
    """The Fn::Join CDK renders for an ARN in this (environment-agnostic) stack."""
    parts: list[Any] = ["arn:", {"Ref": "AWS::Partition"}, f":{service}:", {"Ref": "AWS::Region"}, ":"]
    if account:
        parts += [{"Ref": "AWS::AccountId"}, f":{resource}"]
    else:
        parts[-1] = f"::{resource}"
    return {"Fn::Join": ["", parts]}
