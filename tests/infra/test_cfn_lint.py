"""cfn-lint on the synthesized templates: no error, and no warning but the one CDK itself causes (W3005, a DependsOn
on each role's default policy that a GetAtt already implies). `make cfn-lint` runs the same check from cdk.json."""

from __future__ import annotations

import json

import pytest
from cfnlint.api import lint

from .conftest import Synthesized

# CDK's own output: every function DependsOn its role's default policy, which its Role GetAtt already orders.
TOLERATED = {"W3005"}


def findings(template: dict[str, object]) -> list[str]:
    matches = lint(json.dumps(template), regions=["us-east-1", "eu-west-1"])
    return [f"{m.rule.id} {m.message} ({'/'.join(map(str, m.path))})" for m in matches if m.rule.id not in TOLERATED]


@pytest.mark.parametrize("which", ["default", "full"])
def test_cfn_lint_finds_nothing(which: str, default_stack: Synthesized, synthesized: Synthesized) -> None:
    template = (default_stack if which == "default" else synthesized).template.to_json()
    assert findings(template) == []
