"""Lambda packaging without Docker.

- The functions asset is ``functions/`` as it is, less tests and bytecode.
- Powertools (with pydantic, aws-xray-sdk, jmespath) comes from its public layer for arm64 / Python 3.13.
- The other runtime dependencies (stacks/dependencies/requirements.txt) become a layer that pip builds at synth time
  for manylinux2014_aarch64 / CPython 3.13 from wheels only, each checked against the SHA-256 pinned there
  (``--require-hashes``), through CDK local bundling. No bundling image is used:
  if pip fails, synthesis stops with pip's output.
- ``fleetwave:skipDependencyBundling=true`` (tests) puts an empty placeholder in that layer instead: synthesis stays
  fast and offline, and the stack warns that such a cloud assembly must not be deployed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Final

import jsii
from aws_cdk import Annotations, BundlingOptions, DockerImage, ILocalBundling, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from . import FUNCTIONS_DIR, PROJECT_ROOT

PYTHON_VERSION: Final = "3.13"
RUNTIME: Final = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE: Final = lambda_.Architecture.ARM_64
PIP_PLATFORM: Final = "manylinux2014_aarch64"
REQUIREMENTS_DIR: Final = PROJECT_ROOT / "stacks" / "dependencies"

# Public layer published by the Powertools for AWS Lambda team (account 017000801446) in every commercial region.
POWERTOOLS_LAYER_ACCOUNT: Final = "017000801446"
POWERTOOLS_LAYER_NAME: Final = "AWSLambdaPowertoolsPythonV3-python313-arm64"

FUNCTIONS_ASSET_EXCLUDE: Final = [
    "**/__pycache__",
    "**/*.pyc",
    "**/.pytest_cache",
    "**/.mypy_cache",
    "tests",
    "**/tests",
    "**/test_*.py",
    "**/*_test.py",
    "**/conftest.py",
]


def powertools_layer_arn(stack: Stack, version: int) -> str:
    return (
        f"arn:{stack.partition}:lambda:{stack.region}:{POWERTOOLS_LAYER_ACCOUNT}"
        f":layer:{POWERTOOLS_LAYER_NAME}:{version}"
    )


def functions_code() -> lambda_.Code:
    return lambda_.Code.from_asset(str(FUNCTIONS_DIR), exclude=FUNCTIONS_ASSET_EXCLUDE)


class DependencyBundlingError(RuntimeError):
    """pip could not build the dependencies layer."""


@jsii.implements(ILocalBundling)
class PipLayerBundler:
    """Installs requirements.txt into ``<output>/python`` for the Lambda platform, without Docker."""

    def __init__(self, requirements: Path) -> None:
        self._requirements = requirements

    def try_bundle(self, output_dir: str, *_options: Any, **_keywords: Any) -> bool:
        """Called by CDK; True means "bundled, no Docker". The bundling options are not needed (jsii passes them
        as one positional struct, while the generated protocol declares keywords: accept both)."""
        target = Path(output_dir) / "python"
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--no-compile",
            "--platform",
            PIP_PLATFORM,
            "--implementation",
            "cp",
            "--python-version",
            PYTHON_VERSION,
            "--only-binary=:all:",
            # Every wheel must match a hash pinned in requirements.txt (and nothing unpinned may come along).
            "--require-hashes",
            "--no-deps",
            "--target",
            str(target),
            "--requirement",
            str(self._requirements),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise DependencyBundlingError(
                f"building the fleetwave dependencies layer failed (pip exited with {result.returncode}).\n"
                f"command: {' '.join(command)}\n{result.stdout}\n{result.stderr}\n"
                "Every requirement needs a wheel for manylinux2014_aarch64 / CPython 3.13 (or a pure-Python wheel); "
                "check the network access to the package index. To synthesize without the layer (tests only), "
                "pass -c fleetwave:skipDependencyBundling=true."
            )
        for cache in target.rglob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)
        return True


def dependencies_layer(scope: Construct, construct_id: str, *, skip_bundling: bool) -> lambda_.LayerVersion:
    if skip_bundling:
        Annotations.of(scope).add_warning_v2(
            "fleetwave:placeholderDependencies",
            "fleetwave:skipDependencyBundling=true: the dependencies layer is an empty placeholder; "
            "do not deploy this cloud assembly.",
        )
        code = lambda_.Code.from_asset(str(_placeholder_dir()))
    else:
        code = lambda_.Code.from_asset(
            str(REQUIREMENTS_DIR),
            bundling=BundlingOptions(
                # Never pulled: local bundling always succeeds or raises, so CDK never falls back to Docker.
                image=DockerImage.from_registry("fleetwave/no-docker-bundling"),
                local=PipLayerBundler(REQUIREMENTS_DIR / "requirements.txt"),
            ),
        )
    return lambda_.LayerVersion(
        scope,
        construct_id,
        code=code,
        compatible_runtimes=[RUNTIME],
        compatible_architectures=[ARCHITECTURE],
        description="fleetwave runtime dependencies (PyYAML, slack-sdk) for arm64 / Python 3.13",
    )


_PLACEHOLDER: Path | None = None


def _placeholder_dir() -> Path:
    """A directory with one marker file (same content every time, so the asset hash is stable)."""
    global _PLACEHOLDER
    if _PLACEHOLDER is None or not _PLACEHOLDER.exists():
        directory = Path(tempfile.mkdtemp(prefix="fleetwave-placeholder-layer-"))
        (directory / "python").mkdir()
        (directory / "python" / "PLACEHOLDER").write_text("dependency bundling was skipped\n", encoding="utf-8")
        _PLACEHOLDER = directory
    return _PLACEHOLDER
