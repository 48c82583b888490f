"""Writing specs with the CLI: validate (text and JSON), next run times, options that do nothing refused, init,
shell completion, and the issue's bad inputs refused before anything runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from cli_support import EXAMPLES, PATCHING, REPO, SHELL, no_traceback, write_spec
from fleetwave.core.spec import MAX_SPEC_BYTES, load_spec_text

SCHEDULED = """\
name: patch-tuesday
document:
  name: AWS-RunPatchBaseline
  parameters: {Operation: Scan}
targets:
  tags:
    Patch Group: [prod]
waves: [1, "50%", "100%"]
schedule:
  cron: "0 3 ? * TUE#2 *"
  timezone: Europe/Paris
"""


# ---------------------------------------------------------------------------------------------------- validate
def test_validate_json_lists_problems_as_objects(cli: Any, tmp_path: Path) -> None:
    text = SCHEDULED.replace('"0 3 ? * TUE#2 *"', '"99 99 ? * TUE#9 *"') + "bake_time: 1000000d\ncolour: blue\n"
    path = write_spec(tmp_path, text)

    result = cli("validate", path, "--json")

    no_traceback(result)
    assert result.code == 65
    doc = result.json()
    assert doc["valid"] is False and doc["spec"] is None and doc["source"] == str(path)
    assert doc["problems"] == [
        {
            "path": "schedule.cron",
            "line": 10,
            "column": 9,
            "rule": "minutes '99': 99 is out of range 0-59; hours '99': 99 is out of range 0-23; "
            "day-of-week 'TUE#9': the week after '#' must be 1 to 5",
        },
        {
            "path": "bake_time",
            "line": 12,
            "column": 12,
            "rule": "'1000000d' is 1000000d: at most 7d (fleetwave's longest bake)",
        },
        {"path": "colour", "line": 13, "column": 1, "rule": "unknown field"},
    ]


def test_validate_shows_the_next_three_runs_in_the_schedules_time_zone(cli: Any, tmp_path: Path) -> None:
    path = write_spec(tmp_path, SCHEDULED)

    text = cli("validate", path)
    doc = cli("validate", path, "--json").json()

    assert text.code == 0
    assert doc["valid"] is True and doc["problems"] == [] and doc["spec"] == "patch-tuesday"
    schedule = doc["schedule"]
    assert schedule["expression"] == "cron(0 3 ? * TUE#2 *)" and schedule["timezone"] == "Europe/Paris"
    assert len(schedule["next_runs"]) == 3
    for run in schedule["next_runs"]:
        assert run[10:19] == "T03:00:00" and run[-6:] in {"+01:00", "+02:00"}  # 03:00 in Paris, winter or summer
    assert "schedule cron(0 3 ? * TUE#2 *) in Europe/Paris: next runs " in text.out
    assert text.out.count(" 03:00 (UTC+0") == 3


def test_a_schedule_whose_years_have_passed_is_a_problem(cli: Any, tmp_path: Path) -> None:
    path = write_spec(tmp_path, SCHEDULED.replace('"0 3 ? * TUE#2 *"', '"0 3 ? * TUE#2 2020"'))
    result = cli("validate", path)
    assert result.code == 65
    assert result.out.startswith(f"{path}:10:9: schedule.cron: '0 3 ? * TUE#2 2020' has no run time after ")


@pytest.mark.parametrize("spec", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_the_examples_validate_as_json_too(cli: Any, spec: Path) -> None:
    doc = cli("validate", spec, "--json").json()
    written = yaml.safe_load(spec.read_text())["document"]["name"]
    assert doc["valid"] is True and doc["summary"]["document"]["name"] == written


# ----------------------------------------------------------------------------------------- the issue's inputs
ISSUE_CASES = {
    "a duplicated waves key": (
        SCHEDULED + "waves: [\"100%\"]\n",
        ":12:1: waves: written twice (first at line 8, column 1); YAML would keep only the last",
    ),
    "the cron of the issue": (
        SCHEDULED.replace('"0 3 ? * TUE#2 *"', '"99 99 ? * TUE#9 *"'),
        ":10:9: schedule.cron: minutes '99': 99 is out of range 0-59",
    ),
    "a bake of a million days": (SCHEDULED + "bake_time: 1000000d\n", ":12:12: bake_time: '1000000d' is 1000000d"),
    "mixed marks that shrink": (
        SCHEDULED.replace("tags:\n    Patch Group: [prod]", "instance_ids: [" + ", ".join(f"i-{n:017x}" for n in range(60)) + "]")
        .replace('[1, "50%", "100%"]', '["50%", 10]'),
        ":7:16: waves[1]: 10 does not grow past waves[0] (50%): on 60 targets the marks resolve to 50%=30, 10=10",
    ),
    "an int() error": (SCHEDULED + "timeout_seconds: '3600'\n", ":12:18: timeout_seconds: must be a whole number, not the text '3600'"),
    "a class name": (SCHEDULED + "requires: yes\n", ":12:11: requires: must be a mapping of fields (key: value), not the text 'yes'"),
}  # fmt: skip


@pytest.mark.parametrize("case", ISSUE_CASES)
@pytest.mark.parametrize("command", ["validate", "plan", "simulate"])
def test_the_issues_bad_inputs_are_refused_before_anything_runs(
    cli: Any, tmp_path: Path, case: str, command: str
) -> None:
    text, expected = ISSUE_CASES[case]
    path = write_spec(tmp_path, text)

    result = cli(command, path, *(["--simulate"] if command == "plan" else []))

    no_traceback(result)
    assert result.code == 65
    assert f"{path}{expected}" in (result.out if command == "validate" else result.err)
    for banned in ("int()", "Value error", "Input should", "Spec'", "RolloutSpec", "pydantic"):
        assert banned not in result.out + result.err


def test_an_alias_bomb_is_refused(cli: Any, tmp_path: Path) -> None:
    bomb = "".join(
        f"{name}: &{name} [{', '.join([f'*{previous}'] * 9 if previous else ['lol'] * 9)}]\n"
        for previous, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
    )
    path = write_spec(tmp_path, bomb)
    assert len(bomb) < 700

    result = cli("validate", path)

    assert (
        result.code == 65 and result.out == f"{path}:3:36: more than 16 YAML aliases (*b); a spec may use at most 16\n"
    )


def test_a_spec_file_over_8_mib_is_refused_with_the_place_of_the_limit(cli: Any, tmp_path: Path) -> None:
    ids = [f"i-{n:017x}" for n in range(400_000)]
    path = tmp_path / "huge.yaml"
    path.write_text(SCHEDULED + "# " + "x" * 100 + "\n" + "\n".join(f"# {i}" for i in ids) + "\n", encoding="utf-8")
    assert path.stat().st_size > MAX_SPEC_BYTES

    result = cli("validate", path, "--json")

    assert result.code == 65
    (problem,) = result.json()["problems"]
    assert problem["path"] == "" and problem["line"] > 12 and problem["column"] >= 1
    assert problem["rule"].startswith("the spec is 8.") and "a spec may be at most 8 MiB" in problem["rule"]


def test_a_start_request_too_large_for_the_scheduled_path_is_refused(cli: Any, tmp_path: Path) -> None:
    ids = ", ".join(f"i-{n:017x}" for n in range(12_000))
    path = write_spec(tmp_path, SCHEDULED.replace("tags:\n    Patch Group: [prod]", f"instance_ids: [{ids}]"))
    result = cli("validate", path)
    assert result.code == 65
    assert f"{path}:5:1: targets: the start request would be" in result.out
    assert "the EventBridge Scheduler schedule's input takes at most 256 KiB" in result.out


# -------------------------------------------------------------------------------------- options that do nothing
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("plan", SHELL, "--fleet", "10"), "--fleet: for a simulated fleet: add --simulate, or leave it out"),
        (
            ("plan", SHELL, "--fleet", "10", "--seed", "3"),
            "--fleet, --seed: for a simulated fleet: add --simulate, or leave them out",
        ),
        (
            ("plan", SHELL, "--simulate", "--region", "eu-west-1"),
            "--region: for AWS calls; --simulate makes none: leave it out",
        ),
        (
            ("start", SHELL, "--interval", "5", "--operator-url", "https://example.invalid/"),
            "--interval: for watching: add --watch, or leave it out",
        ),
    ],
)
def test_options_that_do_nothing_in_a_mode_are_refused(cli: Any, args: tuple[Any, ...], message: str) -> None:
    result = cli(*args)
    no_traceback(result)
    assert result.code == 64
    assert result.err == f"fleetwave: {message}\n"


def test_problems_found_at_plan_time_are_placed_in_the_file(cli: Any, tmp_path: Path) -> None:
    unknown = write_spec(tmp_path, SCHEDULED.replace("{Operation: Scan}", "{Operation: Scan, Colour: blue}"), "a.yaml")
    shrinking = write_spec(tmp_path, SCHEDULED.replace('[1, "50%", "100%"]', '["50%", 3]'), "b.yaml")

    parameter = cli("plan", unknown, "--simulate", "--fleet", "20")
    waves = cli("plan", shrinking, "--simulate", "--fleet", "20")

    assert parameter.code == waves.code == 65
    assert parameter.err.startswith(f"fleetwave: {unknown}:4:41: document.parameters.Colour: ")
    assert waves.err.startswith(f"fleetwave: {shrinking}:8:16: waves[1]: 3 does not grow past waves[0] (50%): on 20")


def test_plan_shows_the_next_runs(cli: Any, tmp_path: Path) -> None:
    path = write_spec(tmp_path, SCHEDULED)
    doc = cli("plan", path, "--simulate", "--fleet", "4", "--json").json()
    assert doc["schedule"]["expression"] == "cron(0 3 ? * TUE#2 *)" and len(doc["schedule"]["next_runs"]) == 3
    text = cli("plan", path, "--simulate", "--fleet", "4")
    assert "schedule cron(0 3 ? * TUE#2 *) in Europe/Paris: next runs" in text.out


# ------------------------------------------------------------------------------------------------------ init
def test_init_prints_a_starter_that_validates_as_written(cli: Any) -> None:
    result = cli("init")

    assert result.code == 0
    spec = load_spec_text(result.out, source="starter")
    assert spec.document.name == "AWS-RunShellScript" and spec.targets.tags == {"Role": ["web"]}
    assert result.out.count("\n#") >= 5  # commented
    schema = json.loads((EXAMPLES / "rollout-spec.schema.json").read_text(encoding="utf-8"))
    import yaml

    jsonschema.validate(yaml.safe_load(result.out), schema)


def test_init_writes_a_file_and_never_replaces_one_unasked(cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "hello.yaml"

    first = cli("init", "--kind", "command", path)
    again = cli("init", path)
    forced = cli("init", path, "--force")

    assert first.code == 0 and f"wrote {path} (command spec)" in first.err
    assert f"fleetwave validate {path}" in path.read_text(encoding="utf-8")
    assert cli("validate", path).code == 0
    assert again.code == 73 and f"{path}: exists; pass --force to replace it" in again.err
    assert forced.code == 0


def test_init_offers_only_the_kinds_it_has(cli: Any) -> None:
    result = cli("init", "--kind", "association")
    assert result.code == 64 and "--kind" in result.err


# ------------------------------------------------------------------------------------------------ completion
def test_bash_completion_script(cli: Any) -> None:
    result = cli("--show-completion", "bash")
    assert result.code == 0
    assert "_FLEETWAVE_COMPLETE=complete_bash" in result.out and "complete -o default -F" in result.out


def test_completion_completes_commands_and_options() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("functions", "local", ".")),
        "_FLEETWAVE_COMPLETE": "complete_bash",
        "COMP_WORDS": "fleetwave status --o",
        "COMP_CWORD": "2",
    }
    completed = subprocess.run(
        [sys.executable, "-c", "import sys; sys.argv[0] = 'fleetwave'; from fleetwave_local.cli import main; main()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["--output"]


def test_the_example_spec_validates(cli: Any) -> None:
    assert cli("validate", PATCHING).code == 0
