"""The functions: runtime, architecture, tracing, logs, layers, environment, concurrency, packaging."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match
from fleetwave.settings import Settings

from stacks.functions import FUNCTIONS, POWERTOOLS_ENVIRONMENT
from stacks.names import HANDLERS, function_name

from .conftest import Synthesized

KEYS = sorted(FUNCTIONS)

# What each function reads from its environment (fleetwave.settings.Settings fields), and nothing more.
ENGINE = {
    "TABLE_NAME",
    "STATUS_TOPIC_ARN",
    "NOTIFICATION_ROLE_ARN",
    "ALLOWED_DOCUMENTS",
    "SCHEDULER_GROUP_NAME",
    "SCHEDULER_ROLE_ARN",
    "ADVANCE_WAVE_FUNCTION_ARN",
    "TIMER_DLQ_ARN",
    "MANAGED_NODE_TAG",
    "SESSION_TERMINATION",
}
EXPECTED_ENVIRONMENT = {
    "start_rollout": ENGINE | {"SCHEDULED_SPECS"},
    "track_status": ENGINE,
    "advance_wave": ENGINE,
    "reconcile": ENGINE,
    "operator": ENGINE,
    "notify": {"TABLE_NAME", "SUMMARY_TOPIC_ARN", "EVENT_BUS_NAME", "SLACK_SECRET_NAME", "SLACK_WEBHOOK_HOSTS"},
    "remediate": ENGINE | {"REMEDIATION_RULES", "ALARM_QUEUE_ARN", "VERIFY_SCHEDULER_ROLE_ARN"},
}


def properties(synthesized: Synthesized, key: str) -> dict[str, Any]:
    return dict(synthesized.resources[synthesized.logical_id(synthesized.stack.functions.functions[key])]["Properties"])


@pytest.mark.parametrize("key", KEYS)
def test_function_runs_python_313_on_arm64_with_active_tracing(synthesized: Synthesized, key: str) -> None:
    function = properties(synthesized, key)
    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert function["Handler"] == HANDLERS[key]
    assert function["FunctionName"] == function_name(key)
    assert function["MemorySize"] >= 256


@pytest.mark.parametrize("key", KEYS)
def test_function_logs_to_its_own_group_with_retention(synthesized: Synthesized, key: str) -> None:
    function = properties(synthesized, key)
    log_group_id = function["LoggingConfig"]["LogGroup"]["Ref"]
    log_group = synthesized.resources[log_group_id]["Properties"]
    assert log_group["LogGroupName"] == f"/aws/lambda/{function_name(key)}"
    assert log_group["RetentionInDays"] > 0


@pytest.mark.parametrize("key", KEYS)
def test_function_environment_holds_only_the_settings_it_reads(synthesized: Synthesized, key: str) -> None:
    variables = properties(synthesized, key)["Environment"]["Variables"]
    for name, value in POWERTOOLS_ENVIRONMENT.items():
        assert variables[name] == value
    settings = set(variables) - set(POWERTOOLS_ENVIRONMENT)
    assert settings <= set(Settings.model_fields)
    assert settings == EXPECTED_ENVIRONMENT[key]


def test_remediation_rules_reach_remediate_as_json(synthesized: Synthesized, full_context: dict[str, Any]) -> None:
    variables = properties(synthesized, "remediate")["Environment"]["Variables"]
    rules = json.loads(variables["REMEDIATION_RULES"])
    assert [rule["name"] for rule in rules] == [r["name"] for r in full_context["fleetwave:remediationRules"]]
    assert rules[0]["parameters"] == {"commands": ["systemctl restart nginx"]}


def test_timers_point_at_advance_wave(synthesized: Synthesized) -> None:
    variables = properties(synthesized, "track_status")["Environment"]["Variables"]
    assert variables["ADVANCE_WAVE_FUNCTION_ARN"]["Fn::Join"][1][-1] == f":function:{function_name('advance_wave')}"
    assert variables["SCHEDULER_GROUP_NAME"] == "fleetwave"


@pytest.mark.parametrize(("key", "limit"), [("start_rollout", 5), ("operator", 5), ("reconcile", 1)])
def test_reserved_concurrency_bounds_the_damage(synthesized: Synthesized, key: str, limit: int) -> None:
    assert properties(synthesized, key)["ReservedConcurrentExecutions"] == limit


def test_remediate_is_bounded_by_its_queue_not_throttled(synthesized: Synthesized) -> None:
    # An alarm storm waits in the alarm queue: the event source mapping runs at most two remediate instances, and no
    # reserved concurrency throttles messages back into the queue (towards its DLQ)
    assert "ReservedConcurrentExecutions" not in properties(synthesized, "remediate")
    remediation = synthesized.stack.functions.remediation
    assert remediation is not None
    queue = {"Fn::GetAtt": [synthesized.logical_id(remediation.queue), "Arn"]}
    [mapping] = [
        m["Properties"]
        for m in synthesized.of_type("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"] == queue
    ]
    assert mapping["FunctionName"] == {
        "Ref": synthesized.logical_id(synthesized.stack.functions.functions["remediate"])
    }
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 2}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_start_rollout_knows_the_scheduled_specs_by_their_digest(synthesized: Synthesized) -> None:
    from fleetwave.core.spec import spec_digest

    digests = json.loads(properties(synthesized, "start_rollout")["Environment"]["Variables"]["SCHEDULED_SPECS"])
    scheduled = synthesized.stack.config.scheduled_specs
    assert digests == {s.spec.name: spec_digest(s.spec) for s in scheduled} and len(digests) == 2


def test_the_operator_url_requires_iam_auth(synthesized: Synthesized) -> None:
    [url] = synthesized.of_type("AWS::Lambda::Url").values()
    assert url["Properties"]["AuthType"] == "AWS_IAM"
    assert url["Properties"]["TargetFunctionArn"] == {
        "Fn::GetAtt": [synthesized.logical_id(synthesized.stack.functions.functions["operator"]), "Arn"]
    }
    # No resource policy lets anyone else call it: only this account's principals that IAM allows
    for permission in synthesized.of_type("AWS::Lambda::Permission").values():
        assert permission["Properties"]["Action"] != "lambda:InvokeFunctionUrl"


def test_functions_use_the_public_powertools_layer_and_the_dependencies_layer(synthesized: Synthesized) -> None:
    layers = properties(synthesized, "notify")["Layers"]
    [powertools] = [layer["Fn::Join"][1] for layer in layers if "Fn::Join" in layer]
    # The public layer of the region the stack deploys to, at the version from context
    assert powertools[-1] == ":017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-arm64:27"
    assert powertools[:4] == ["arn:", {"Ref": "AWS::Partition"}, ":lambda:", {"Ref": "AWS::Region"}]
    [dependencies] = synthesized.of_type("AWS::Lambda::LayerVersion")
    assert {"Ref": dependencies} in layers
    layer = synthesized.resources[dependencies]["Properties"]
    assert layer["CompatibleArchitectures"] == ["arm64"]
    assert layer["CompatibleRuntimes"] == ["python3.13"]


def test_placeholder_layer_is_flagged_as_not_deployable(synthesized: Synthesized) -> None:
    # Given the test context skips dependency bundling, the stack says so
    warnings = synthesized.annotations.find_warning("*", Match.string_like_regexp(".*do not deploy.*"))
    assert warnings


def test_function_asset_is_runtime_code_only(synthesized: Synthesized) -> None:
    code = properties(synthesized, "start_rollout")["Code"]
    asset_hash = code["S3Key"].split(".")[0]
    asset_dir = synthesized.outdir / f"asset.{asset_hash}"
    files = [p.relative_to(asset_dir).as_posix() for p in asset_dir.rglob("*") if p.is_file()]
    assert "fleetwave/constants.py" in files
    assert not [
        f
        for f in files
        if "__pycache__" in f or f.endswith(".pyc") or "/tests/" in f or Path(f).name.startswith("test_")
    ]
