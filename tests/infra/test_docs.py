"""The deployment guide names what the stack really outputs (the CLI finds the stack's resources by these names)."""

from __future__ import annotations

import re

from fleetwave import constants

from .conftest import PROJECT_ROOT, Synthesized


def test_the_deploy_guide_names_exactly_the_stack_outputs(synthesized: Synthesized) -> None:
    outputs = set(synthesized.template.to_json()["Outputs"])
    guide = (PROJECT_ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([A-Z][A-Za-z]+(?:Name|Arn|Url))`", guide))
    assert named == outputs
    assert {constants.OUTPUT_TABLE_NAME, constants.OUTPUT_START_FUNCTION, constants.OUTPUT_CANCEL_FUNCTION} <= outputs


def test_the_deploy_guide_starts_and_cancels_with_the_cli() -> None:
    guide = (PROJECT_ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert re.search(r"^fleetwave start \S+ --watch", guide, re.MULTILINE)
    assert re.search(r"^fleetwave cancel ", guide, re.MULTILINE)
    assert "aws lambda invoke" not in guide
