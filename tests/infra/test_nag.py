"""cdk-nag (AwsSolutions and Serverless packs): no unsuppressed finding, and every suppression says why."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match
from aws_cdk.cx_api import SynthesisMessage

from .conftest import Synthesized

PACKS = ("AwsSolutions", "Serverless")


def describe(messages: list[SynthesisMessage]) -> str:
    return "\n".join(f"{m.id}: {str(m.entry.data)[:200]}" for m in messages)


@pytest.mark.parametrize("pack", PACKS)
def test_no_unsuppressed_errors(synthesized: Synthesized, pack: str) -> None:
    errors = synthesized.annotations.find_error("*", Match.string_like_regexp(f"{pack}-.*"))
    assert errors == [], describe(errors)


@pytest.mark.parametrize("pack", PACKS)
def test_no_unsuppressed_warnings(synthesized: Synthesized, pack: str) -> None:
    warnings = synthesized.annotations.find_warning("*", Match.string_like_regexp(f"{pack}-.*"))
    assert warnings == [], describe(warnings)


def test_every_suppression_gives_a_specific_reason(synthesized: Synthesized) -> None:
    suppressions = [
        (logical_id, rule)
        for logical_id, resource in synthesized.resources.items()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]
    assert suppressions
    for logical_id, rule in suppressions:
        assert len(rule["reason"]) >= 40, (logical_id, rule)
        if rule["id"] == "AwsSolutions-IAM5":
            # Wildcard suppressions name the findings they cover, never the whole rule
            assert rule.get("applies_to"), (logical_id, rule)
