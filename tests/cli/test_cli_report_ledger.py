"""``fleetwave report`` for a rollout in the deployed ledger: moto's DynamoDB, filled by a real rollout on the twin
(the real handlers, the fleet simulator), read back by the command's own boto3 clients."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import flags, no_traceback
from fleetwave.constants import TABLE_NAME
from fleetwave_local.twin import Twin, TwinOptions

TABLE = flags(table=TABLE_NAME)
FLEET = 30


def spec(name: str, output: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "document": {"name": "AWS-RunShellScript", "parameters": {"commands": ["systemctl reload nginx"]}},
        "targets": {"tags": {"Role": ["web"]}},
        "waves": [2, "100%"],
        "max_concurrency": "100%",
        "error_budget": 1,
        "bake_time": "5m",
        "output": output,
    }


@pytest.fixture(scope="module")
def twin() -> Iterator[Twin]:
    # Some nodes fail, some are undeliverable, half are slow: the budget of 1 is spent while slow nodes still
    # run, so the halt cancels them.
    options = TwinOptions(seed=1, fail_rate=0.1, undeliverable_rate=0.05, slow_rate=0.5)
    with Twin(options) as twin:
        twin.add_nodes(FLEET, tags={"Role": "web"})
        yield twin


def run_rollout(twin: Twin, data: dict[str, Any]) -> str:
    result = twin.start(data)
    assert "rollout_id" in result, result
    twin.run(result["rollout_id"])
    return str(result["rollout_id"])


@pytest.fixture(scope="module")
def halted(twin: Twin) -> str:
    return run_rollout(twin, spec("web-reload", {"s3_bucket": "fleetwave-output", "s3_prefix": "runs"}))


def test_the_report_of_a_halted_rollout_puts_the_failures_first(cli: Any, halted: str, tmp_path: Path) -> None:
    page_file = tmp_path / "report.html"

    result = cli("report", halted, "--html", page_file, "--json", *TABLE)

    no_traceback(result)
    assert result.code == 0, result.err
    assert f"report written to {page_file}" in result.err
    doc = result.json()
    assert doc["rollout_id"] == halted and doc["state"] == "HALTED" and doc["exit_code"] == 2
    groups = [item["group"] for item in doc["failed_instances"]]
    failures = groups.count("failed")
    # A real halt: failures that spent the budget, and more invocations cancelled by the halt than failures.
    assert failures >= 2 and doc["stopped_total"] > failures
    assert groups == sorted(groups, key=lambda group: group != "failed"), "failures before cancellations"
    assert doc["failed_instances"][0]["status"] in doc["budget"]["statuses"]
    assert doc["counts"]["Cancelled"] == doc["stopped_total"]

    page = page_file.read_text(encoding="utf-8")
    assert f"<h2>Failures ({failures})</h2>" in page
    assert page.index("<h2>Failures") < page.index("<h2>Timeline") < page.index("<h2>Cancelled and terminated")
    failures_section = page[page.index("<h2>Failures") : page.index("<h2>Timeline")]
    assert "Cancelled" not in failures_section
    # Each failure links to its own output in the S3 console (from the invocation's StandardOutputUrl).
    for item in doc["failed_instances"][:failures]:
        assert item["instance_id"] in failures_section
        assert item["output_link"].startswith("https://s3.console.aws.amazon.com/s3/object/fleetwave-output?")
        assert f"prefix=runs%2F{item['command_id']}%2F{item['instance_id']}%2F" in item["output_link"]
        assert f'href="{item["output_link"].replace("&", "&amp;")}"' in failures_section
    assert f"<details><summary>{doc['stopped_total']} instances</summary>" in page
    assert "<td>halted (" in page  # the halted wave's verdict
    assert "wave timeline" in page and "status counts per wave" in page
    assert f"used {doc['budget']['used']}, allowed 1" in page


def test_a_failure_with_output_in_cloudwatch_links_to_its_log_streams(cli: Any, twin: Twin, halted: str) -> None:
    # The spec's output settings come from the ledger's record of the spec. The nodes that failed before fail again
    # (the simulator's outcomes are per node): a small rollout of them has failures to link.
    earlier = cli("report", halted, "--json", *TABLE).json()["failed_instances"]
    data = spec("web-reload-logs", {"cloudwatch_log_group": "/fleetwave/web"})
    data["targets"] = {"instance_ids": [item["instance_id"] for item in earlier if item["group"] == "failed"]}
    data["waves"], data["error_budget"] = ["100%"], "100%"
    rollout_id = run_rollout(twin, data)

    doc = cli("report", rollout_id, "--json", *TABLE).json()

    failed = [item for item in doc["failed_instances"] if item["group"] == "failed"]
    assert failed
    for item in failed:
        assert item["output_link"] == (
            "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#logsV2:log-groups/log-group/"
            f"$252Ffleetwave$252Fweb$3FlogStreamNameFilter$3D{item['command_id']}$252F{item['instance_id']}$252F"
        )


def test_status_has_three_output_formats(cli: Any, halted: str) -> None:
    as_json = cli("status", halted, "--output", "json", *TABLE)
    as_yaml = cli("status", halted, "-o", "yaml", *TABLE)
    as_table = cli("status", halted, "--output", "table", *TABLE)

    import yaml

    assert as_json.code == as_yaml.code == as_table.code == 0
    assert yaml.safe_load(as_yaml.out) == as_json.json() == cli("status", halted, "--json", *TABLE).json()
    assert "HALTED" in as_table.out and not as_table.out.lstrip().startswith("{")
    # The first failed nodes listed are failures, not the halt's cancellations.
    first = cli("status", halted, "--json", "--failed", "2", *TABLE).json()["failed_instances"]
    assert [item["group"] for item in first] == ["failed", "failed"]


def test_status_refuses_two_formats(cli: Any, halted: str) -> None:
    result = cli("status", halted, "--json", "--output", "yaml", *TABLE)
    assert result.code == 64 and "--json and --output yaml ask for two formats" in result.err


def test_report_needs_something_to_write(cli: Any, halted: str) -> None:
    result = cli("report", halted, *TABLE)
    assert result.code == 64 and "say what to write: --html FILE, --json, or both" in result.err


def test_report_of_an_unknown_rollout_exits_66(cli: Any, twin: Twin, tmp_path: Path) -> None:
    result = cli("report", "20990101T000000-000000", "--html", tmp_path / "r.html", *TABLE)
    assert result.code == 66 and "no rollout '20990101T000000-000000'" in result.err
    assert not (tmp_path / "r.html").exists()


def test_the_report_json_is_the_status_json_with_every_failure(cli: Any, halted: str) -> None:
    report = cli("report", halted, "--json", *TABLE).json()
    status = cli("status", halted, "--json", "--failed", "1000", *TABLE).json()
    assert report == status
    assert len(report["failed_instances"]) == report["failed_total"]
    assert json.dumps(report)  # plain JSON
    assert re.fullmatch(r"\d{8}T\d{6}-[0-9a-f]{6}", report["rollout_id"])
