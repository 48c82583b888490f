"""Synthesize the template without the CDK CLI and without building the dependencies layer (``make cfn-lint``, the
infra tests): the context is cdk.json's, as `cdk synth` would read it, plus any overrides.

    python -m stacks.offline [OUTDIR]      prints the path of the synthesized template
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import App

from . import PROJECT_ROOT
from .build import STACK_NAME, build


def project_context(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """cdk.json's context (defaults and feature flags), with the placeholder dependencies layer."""
    context: dict[str, Any] = json.loads((PROJECT_ROOT / "cdk.json").read_text(encoding="utf-8"))["context"]
    context["fleetwave:skipDependencyBundling"] = True
    return {**context, **(overrides or {})}


def synth_template(outdir: Path, overrides: Mapping[str, Any] | None = None) -> Path:
    app = App(context=project_context(overrides), outdir=str(outdir))
    build(app)
    app.synth()
    return outdir / f"{STACK_NAME}.template.json"


def main(argv: list[str]) -> int:
    outdir = Path(argv[0]) if argv else PROJECT_ROOT / "cdk.out.offline"
    print(synth_template(outdir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
