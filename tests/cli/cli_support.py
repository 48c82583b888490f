"""Helpers shared by the CLI tests (a module with a unique name, so test modules can import it)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
PATCHING = EXAMPLES / "patching.yaml"
SHELL = EXAMPLES / "shell-script.yaml"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def deployed_name(handler: str) -> str:
    """The name the stack gives a function (``start_rollout`` -> its deployed name), as the CLI's flags take it."""
    from fleetwave.constants import function_name

    return function_name(handler)


def planned_outcomes(spec: Path, *, fleet: int, seed: int, **rates: float) -> dict[str, str]:
    """Instance ID -> the outcome the simulator is seeded to give it, for the fleet ``simulate`` builds."""
    from fleetwave.core.spec import load_spec_text
    from fleetwave_local.cli.simulate import FleetOptions, build_fleet, open_twin

    loaded = load_spec_text(spec.read_text(encoding="utf-8"))
    with open_twin(FleetOptions(size=fleet, seed=seed, **rates)) as twin:
        build_fleet(twin, loaded, fleet)
        return {node.instance_id: twin.sim.planned_outcome(node.instance_id) for node in twin.sim.nodes()}


class TwinInvoker:
    """Runs the real handler in process with the twin's deps, as Lambda would run the deployed function.

    Then lets the twin's glue deliver what the call produced (status events, stream records).
    """

    def __init__(self, twin: Any) -> None:
        self.twin = twin
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.results: list[dict[str, Any]] = []

    def __call__(self, function_name: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append((function_name, dict(payload)))
        from fleetwave.constants import HANDLERS

        handler = {deployed_name(key): key for key in HANDLERS}[function_name]
        result: dict[str, Any] = self.twin.invoke(handler, json.loads(json.dumps(payload)))
        self.twin.deliver()
        self.results.append(result)
        return result


def write_spec(directory: Path, text: str, name: str = "spec.yaml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def total(counts: Mapping[str, int]) -> int:
    return sum(counts.values())


def no_traceback(result: Result) -> None:
    assert "Traceback" not in result.err
    assert "Traceback" not in result.out


def flags(**values: str) -> Sequence[str]:
    """``flags(table="t")`` -> ``["--table", "t"]``."""
    out: list[str] = []
    for key, value in values.items():
        out += [f"--{key.replace('_', '-')}", value]
    return out
