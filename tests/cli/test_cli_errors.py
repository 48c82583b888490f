"""Bad input: one line per problem on stderr, a sysexits code, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_support import EXAMPLES, PATCHING, SHELL, Result, no_traceback, write_spec

GOOD = """\
name: demo
document:
  name: AWS-RunShellScript
  parameters:
    commands: [uptime]
targets:
  tags:
    Role: [web]
waves: [1, "50%", "100%"]
error_budget: 1
"""


def failed(result: Result, code: int, *fragments: str) -> None:
    no_traceback(result)
    assert result.code == code, (result.code, result.err, result.out)
    assert result.err_lines, "an error names the problem"
    for line in result.err_lines:
        assert line.startswith("fleetwave: ")
    for fragment in fragments:
        assert fragment in result.err, (fragment, result.err)


# ------------------------------------------------------------------------------------------------ spec files
SPEC_COMMANDS = [
    ("validate",),
    ("plan", "--simulate"),
    ("simulate",),
    ("start", "--table", "t", "--operator-url", "https://abc.lambda-url.us-east-1.on.aws"),
]


@pytest.mark.parametrize("command", SPEC_COMMANDS, ids=lambda c: c[0])
def test_a_missing_spec_file_exits_66(cli: Any, tmp_path: Path, command: tuple[str, ...]) -> None:
    missing = tmp_path / "nope.yaml"
    result = cli(command[0], missing, *command[1:])
    failed(result, 66, f"{missing}: no such file")
    assert len(result.err_lines) == 1


def test_a_directory_is_not_a_spec(cli: Any, tmp_path: Path) -> None:
    failed(cli("simulate", tmp_path), 66, "is a directory")


BAD_SPECS = {
    "yaml syntax": (GOOD.replace("waves: [1,", "waves: [1,,\n  - ]"), "spec.yaml:9:11: YAML syntax error: "),
    "unknown field": (GOOD + "wave_sizes: [1]\n", "wave_sizes: unknown field"),
    "impossible wave size": (GOOD.replace('"50%"', '"120%"'), "waves[1]: '120%' is not a valid size"),
    "waves that do not grow": (GOOD.replace('[1, "50%", "100%"]', "[5, 3]"), "does not grow past waves[0]"),
    "budget above 100%": (GOOD.replace("error_budget: 1", 'error_budget: "150%"'), "error_budget.allowed:"),
    "not a mapping": ("- just\n- a list\n", "a spec is a mapping"),
    "empty file": ("", "a spec is a mapping"),
    "missing document": (
        GOOD.replace("document:\n  name: AWS-RunShellScript\n", "x_document:\n  name: y\n"),
        "document",
    ),
}


@pytest.mark.parametrize("case", BAD_SPECS, ids=str)
@pytest.mark.parametrize("command", ["simulate", "plan", "start"])
def test_an_invalid_spec_exits_65_before_anything_runs(cli: Any, tmp_path: Path, case: str, command: str) -> None:
    text, fragment = BAD_SPECS[case]
    path = write_spec(tmp_path, text)
    # No AWS is configured for plan/start: the spec is refused before any call could be made.
    result = cli(command, path)
    failed(result, 65, fragment, f"{path}:")


def test_validate_prints_every_problem_with_its_field_path(cli: Any, tmp_path: Path) -> None:
    text = GOOD.replace('"50%"', '"120%"').replace("error_budget: 1", 'error_budget: "150%"') + "colour: blue\n"
    path = write_spec(tmp_path, text)

    result = cli("validate", path)

    no_traceback(result)
    assert result.code == 65
    lines = result.out.splitlines()
    assert lines == [
        f"{path}:9:12: waves[1]: '120%' is not a valid size (a percentage must be more than 0% up to 100%)",
        f"{path}:10:15: error_budget.allowed: '150%' is not a valid size (a percentage must be from 0% up to 100%)",
        f"{path}:11:1: colour: unknown field",
    ]


@pytest.mark.parametrize("spec", [PATCHING, SHELL], ids=lambda p: p.name)
def test_the_examples_are_valid(cli: Any, spec: Path) -> None:
    result = cli("validate", spec)
    assert result.code == 0 and ": OK: " in result.out


def test_schema_prints_the_committed_json_schema(cli: Any) -> None:
    result = cli("schema")
    assert result.code == 0
    committed = json.loads((EXAMPLES / "rollout-spec.schema.json").read_text(encoding="utf-8"))
    assert result.json() == committed, "regenerate: fleetwave schema > examples/rollout-spec.schema.json"
    assert result.json()["title"] == "fleetwave rollout spec"


def test_an_empty_target_set_is_rejected(cli: Any, tmp_path: Path) -> None:
    path = write_spec(tmp_path, GOOD)
    failed(cli("simulate", path, "--fleet", "0"), 65, "targets: empty target set")
    failed(cli("plan", path, "--simulate", "--fleet", "0"), 65, "targets: empty target set")


def test_a_start_the_spec_forbids_now_exits_75(cli: Any, tmp_path: Path) -> None:
    # The twin's clock starts at 00:00 UTC, inside this blackout window.
    path = write_spec(tmp_path, GOOD + 'blackout_windows:\n  - {start: "00:00", end: "02:00"}\n')
    failed(cli("simulate", path, "--fleet", "2"), 75, "demo not started (blackout_window)")


def test_a_document_the_account_lacks_is_rejected(cli: Any, tmp_path: Path) -> None:
    path = write_spec(tmp_path, GOOD.replace("AWS-RunShellScript", "Acme-Missing"))
    failed(cli("simulate", path, "--fleet", "3"), 65, "document.name:", "Acme-Missing")


def test_a_parameter_the_document_lacks_is_rejected(cli: Any, tmp_path: Path) -> None:
    path = write_spec(tmp_path, GOOD.replace("commands: [uptime]", "commands: [uptime]\n    colour: blue"))
    failed(cli("plan", path, "--simulate", "--fleet", "3"), 65, "document.parameters.colour:")


# ---------------------------------------------------------------------------------------------------- usage
USAGE = [
    ((), "Usage"),
    (("simulate",), "Missing argument"),
    (("simulate", SHELL, "--fail-rate", "1.5"), "--fail-rate"),
    (("simulate", SHELL, "--fleet", "-1"), "--fleet"),
    (("simulate", SHELL, "--colour"), "No such option"),
    (("simulate", SHELL, "--fail-rate", "0.6", "--timeout-rate", "0.6"), "add up to 1.2"),
    (("simulate", PATCHING, "--alarm", "other=ALARM"), "the spec has no alarm gate 'other'"),
    (("simulate", PATCHING, "--alarm", "fleetwave-demo-error-rate=RED"), "the state must be one of"),
    (("simulate", PATCHING, "--alarm", "no-equals-sign"), "use NAME=STATE"),
    (("simulate", SHELL, "--cancel-after", "soon"), "--cancel-after:"),
    (("frobnicate",), "No such command"),
    (("list", "--state", "DONE", "--table", "t"), "--state"),
    (("history", "not-an-instance", "--table", "t"), "is not a managed node ID"),
    (("watch", "x", "--interval", "0", "--table", "t"), "--interval"),
]


@pytest.mark.parametrize(
    ("args", "fragment"), USAGE, ids=lambda v: " ".join(map(str, v)) if isinstance(v, tuple) else ""
)
def test_usage_errors_exit_64(cli: Any, args: tuple[Any, ...], fragment: str) -> None:
    result = cli(*args)
    no_traceback(result)
    assert result.code == 64, (result.code, result.err)
    assert fragment in result.err + result.out


def test_the_report_path_must_be_writable_before_the_run(cli: Any, tmp_path: Path) -> None:
    result = cli("simulate", SHELL, "--report", tmp_path / "missing-dir" / "r.html")
    failed(result, 73, "cannot write the report")


# ---------------------------------------------------------------------------------------------- AWS problems
@pytest.mark.usefixtures("isolated_aws")
@pytest.mark.parametrize(
    "args",
    [
        ("status", "20260101T000000-abcdef", "--table", "fleetwave-ledger"),
        ("list", "--table", "fleetwave-ledger"),
        ("history", "i-0123456789abcdef0", "--table", "fleetwave-ledger"),
        # The operator URL on the same closed port
        ("cancel", "20260101T000000-abcdef", "--operator-url", "http://127.0.0.1:9"),
        ("start", SHELL, "--operator-url", "http://127.0.0.1:9"),
        ("status", "20260101T000000-abcdef"),  # resources from the stack's outputs: CloudFormation unreachable
        ("plan", SHELL),
    ],
    ids=lambda a: a[0] + (" (stack)" if len(a) == 2 else ""),
)
def test_an_unreachable_endpoint_exits_69(cli: Any, args: tuple[Any, ...]) -> None:
    # A closed local port: the connection is refused at once, no network is involved.
    result = cli(*args, "--endpoint-url", "http://127.0.0.1:9")
    failed(result, 69, "AWS unreachable")
    assert len(result.err_lines) == 1


@pytest.mark.usefixtures("isolated_aws")
def test_no_region_exits_78(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    failed(cli("status", "x", "--table", "t"), 78, "no AWS region")


@pytest.mark.usefixtures("isolated_aws")
def test_an_unknown_profile_exits_78(cli: Any) -> None:
    failed(cli("list", "--table", "t", "--profile", "nobody"), 78, "nobody")
