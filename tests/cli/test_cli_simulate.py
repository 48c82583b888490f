"""`fleetwave simulate`: whole rollouts on the local twin, through the command line, checked from its JSON."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cli_support import PATCHING, REPO, SHELL, no_traceback, planned_outcomes, total
from fleetwave_local.cli.simulate import expected_send_commands

BUDGET_STATUSES = ("Failed", "ExecutionTimedOut")
STATE_EXIT = {"SUCCEEDED": 0, "COMPLETED_WITH_ERRORS": 1, "HALTED": 2, "CANCELLED": 2, "FAILED": 2}


def simulate(cli: Any, spec: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = cli("simulate", spec, "--json", "--quiet", *args)
    no_traceback(result)
    return result.code, result.json()


def send_commands(doc: dict[str, Any]) -> int:
    return int(doc["api_calls"]["by_service"].get("ssm", {}).get("SendCommand", 0))


def assert_consistent(doc: dict[str, Any], code: int, fleet: int) -> None:
    """What holds for every simulated rollout: the numbers add up and the exit code follows the state."""
    assert code == STATE_EXIT[doc["state"]] == doc["exit_code"]
    assert doc["target_count"] + doc["skipped_count"] == fleet
    assert sum(wave["size"] for wave in doc["waves"]) == doc["target_count"]
    assert total(doc["counts"]) == sum(wave["dispatched"] for wave in doc["waves"])
    for wave in doc["waves"]:
        assert total(wave["counts"]) == wave["dispatched"] <= wave["size"]
    for status, n in doc["counts"].items():
        assert n == sum(wave["counts"][status] for wave in doc["waves"])
    assert doc["budget"]["used"] == sum(doc["counts"][s] for s in BUDGET_STATUSES)
    assert doc["failed_total"] == total(doc["counts"]) - doc["counts"]["Success"]
    assert {f["instance_id"] for f in doc["failed_instances"]}.isdisjoint(s["instance_id"] for s in doc["skipped"])


def test_no_failures_succeeds_and_sends_one_command_per_50_targets_of_each_wave(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The functions' logs (Powertools, to stdout in Lambda) must not spoil the JSON on stdout.
    monkeypatch.setenv("FLEETWAVE_TWIN_LOG_LEVEL", "INFO")

    code, doc = simulate(cli, SHELL, "--fleet", "20", "--seed", "3")

    assert_consistent(doc, code, fleet=20)
    assert doc["state"] == "SUCCEEDED" and code == 0
    assert doc["counts"]["Success"] == doc["target_count"] == 20
    assert [wave["size"] for wave in doc["waves"]] == [2, 8, 10]
    assert all(wave["state"] == "COMPLETE" for wave in doc["waves"])
    assert send_commands(doc) == expected_send_commands([2, 8, 10]) == 3
    assert doc["failed_instances"] == [] and doc["budget"]["used"] == 0
    # Bake time passed on the virtual clock: two bakes of 5 minutes between three waves.
    assert doc["virtual_duration_seconds"] >= 2 * 300
    assert doc["summaries_published"] == 1 and doc["handler_errors"] == []
    assert doc["seed"] == 3 and doc["fleet"]["tags"] == {"Role": "web"}
    # Every field is documented (docs/cli.md holds the schema of this document).
    documented = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert [key for key in doc if f"`{key}`" not in documented] == []


def test_one_percent_failures_complete_with_errors_within_budget(cli: Any) -> None:
    # Given a seed whose fleet holds exactly one node the simulator will fail (about a third of seeds do at 1%)
    seed = next(s for s in range(1, 100) if _fails(s) == 1)
    expected = [
        node
        for node, outcome in planned_outcomes(PATCHING, fleet=50, seed=seed, fail_rate=0.01).items()
        if outcome == "fail"
    ]

    code, doc = simulate(cli, PATCHING, "--fleet", "50", "--seed", str(seed), "--fail-rate", "0.01")

    assert_consistent(doc, code, fleet=50)
    assert doc["budget"]["allowed"] == 1  # 2% of 50
    assert doc["state"] == "COMPLETED_WITH_ERRORS" and code == 1
    assert doc["counts"]["Failed"] == doc["budget"]["used"] == 1
    assert doc["counts"]["Success"] == 49
    assert [wave["size"] for wave in doc["waves"]] == [1, 4, 20, 25]
    assert send_commands(doc) == expected_send_commands([1, 4, 20, 25]) == 4
    failed = doc["failed_instances"]
    assert [f["instance_id"] for f in failed] == expected
    assert failed[0]["status"] == "Failed" and failed[0]["command_id"]
    # The alarm gate named by the spec was created OK and checked before every wave.
    assert doc["fleet"]["alarms"] == {"fleetwave-demo-error-rate": "OK"}
    assert doc["api_calls"]["by_service"]["cloudwatch"]["DescribeAlarms"] == 4


def _fails(seed: int) -> int:
    outcomes = planned_outcomes(PATCHING, fleet=50, seed=seed, fail_rate=0.01)
    return list(outcomes.values()).count("fail")


def test_half_failing_halts_on_the_budget_and_writes_the_report(cli: Any, tmp_path: Path) -> None:
    report = tmp_path / "rollout.html"

    code, doc = simulate(cli, SHELL, "--fleet", "20", "--seed", "3", "--fail-rate", "0.5", "--report", report)

    assert_consistent(doc, code, fleet=20)
    assert doc["state"] == "HALTED" and code == 2
    assert doc["budget"]["used"] > doc["budget"]["allowed"] == 1
    assert "budget" in doc["reason"]
    started = [wave for wave in doc["waves"] if wave["started_at"]]
    assert len(started) < len(doc["waves"])  # no wave starts after the halt
    assert send_commands(doc) == expected_send_commands([w["size"] for w in started])
    assert send_commands(doc) < expected_send_commands([w["size"] for w in doc["waves"]])

    page = report.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") >= 3 and 'aria-label="status counts per wave"' in page
    assert 'aria-label="wave timeline"' in page and 'aria-label="budget used over time"' in page
    assert doc["failed_instances"]
    for failed in doc["failed_instances"]:
        assert failed["instance_id"] in page
    # Self-contained: nothing to fetch (no script, stylesheet, frame, image or font).
    assert not re.search(r"<script|<link|<img|<iframe|@import|url\(|src=", page, re.IGNORECASE)
    # Nothing is fetched: the only URLs besides SVG's namespace are links a person may follow to a failed node's
    # output in the AWS console.
    urls = set(re.findall(r"https?://[^\"' <]+", page)) - {"http://www.w3.org/2000/svg"}
    assert urls and all(url.startswith("https://us-east-1.console.aws.amazon.com/") for url in urls)
    assert len(re.findall(r'<a href="https://', page)) == len(re.findall(r"https://", page))


def test_the_same_seed_gives_the_same_rollout(cli: Any) -> None:
    args = ("--fleet", "12", "--seed", "11", "--fail-rate", "0.1", "--offline-rate", "0.3", "--drop-rate", "0.3")

    first_code, first = simulate(cli, SHELL, *args)
    second_code, second = simulate(cli, SHELL, *args)

    assert_consistent(first, first_code, fleet=12)
    assert first["skipped_count"] > 0  # offline nodes are skipped at plan time, with their reason
    assert all("ConnectionLost" in s["reason"] for s in first["skipped"])
    same = ("state", "counts", "waves", "budget", "api_calls", "skipped", "virtual_duration_seconds", "exit_code")
    assert {k: first[k] for k in same} == {k: second[k] for k in same}
    assert first_code == second_code


def test_cancel_after_a_virtual_delay_cancels_the_rollout(cli: Any) -> None:
    code, doc = simulate(cli, SHELL, "--fleet", "12", "--seed", "2", "--cancel-after", "3m")

    assert_consistent(doc, code, fleet=12)
    assert doc["state"] == "CANCELLED" and code == 2
    assert doc["reason"] == "cancelled by operator"
    assert doc["waves"][0]["started_at"] and doc["waves"][-1]["dispatched"] == 0


def test_an_alarm_gate_in_alarm_stops_the_rollout_before_any_dispatch(cli: Any) -> None:
    code, doc = simulate(cli, PATCHING, "--fleet", "10", "--alarm", "fleetwave-demo-error-rate=ALARM")

    assert_consistent(doc, code, fleet=10)
    assert doc["state"] == "HALTED" and code == 2
    assert "fleetwave-demo-error-rate" in doc["reason"] and "ALARM" in doc["reason"]
    assert send_commands(doc) == 0 and total(doc["counts"]) == 0


def test_the_readme_demo_command_runs(tmp_path: Path) -> None:
    """The README's demo (make demo), in a subprocess from the repository root, exactly as the README and the
    Makefile give it: ``fleetwave simulate examples/patching.yaml --fleet 60 --seed 7 --fail-rate 0.02 --report
    reports/demo.html``. The README says it injects one failure on purpose."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    command = re.search(r"`fleetwave (simulate examples/patching\.yaml [^`]*)`", readme)
    assert command is not None
    argv = command.group(1).split()
    assert " ".join(argv[2:]).replace("reports/demo.html", "") in makefile.replace("$(DEMO_SPEC)", "")
    report = tmp_path / "demo.html"
    argv[argv.index("--report") + 1] = str(report)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("functions", "local", "."))}
    env.pop("FLEETWAVE_DEBUG", None)
    began = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-c", "from fleetwave_local.cli import main; main()", *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    elapsed = time.monotonic() - began

    # One node of the 60 fails, on purpose: within the 2% budget, so the rollout completes with errors (exit 1).
    assert completed.returncode == 1, completed.stderr
    assert "Traceback" not in completed.stderr
    assert "state COMPLETED_WITH_ERRORS" in completed.stdout
    assert "targets 60 (skipped 0), succeeded 59, not succeeded 1" in completed.stdout
    assert "budget 1/1 used" in completed.stdout
    assert "one node\nof the 60 fails" in readme or "one node of the 60 fails" in readme.replace("\n", " ")
    # Progress went to stderr, one line per change (not a terminal): every wave ran, with its bake.
    assert "wave 3 (30 nodes) COMPLETE" in completed.stderr
    assert f"report written to {report}" in completed.stderr
    page = report.read_text(encoding="utf-8")
    assert "Status by wave" in page and "<h2>Failures (1)</h2>" in page
    assert elapsed < 200
