"""The dependencies layer is built by pip for arm64 / Python 3.13 without Docker, or fails with pip's story."""

from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path

import pytest

from stacks.packaging import REQUIREMENTS_DIR, DependencyBundlingError, PipLayerBundler


def make_wheel(directory: Path) -> Path:
    """A tiny pure-Python wheel, so the test needs no package index."""
    wheel = directory / "fwdemo-1.0-py3-none-any.whl"
    dist_info = "fwdemo-1.0.dist-info"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("fwdemo/__init__.py", "VALUE = 42\n")
        archive.writestr(f"{dist_info}/METADATA", "Metadata-Version: 2.1\nName: fwdemo\nVersion: 1.0\n")
        archive.writestr(
            f"{dist_info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        archive.writestr(f"{dist_info}/RECORD", "")
    return wheel


def test_bundler_installs_requirements_under_python_for_the_lambda_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a local wheel and no package index
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    digest = hashlib.sha256((wheels / "fwdemo-1.0-py3-none-any.whl").read_bytes()).hexdigest()
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"fwdemo==1.0 --hash=sha256:{digest}\n", encoding="utf-8")
    output = tmp_path / "out"
    output.mkdir()
    # When CDK asks the local bundler to bundle
    bundled = PipLayerBundler(requirements).try_bundle(str(output))
    # Then the package sits where Lambda layers put Python code, without bytecode
    assert bundled is True
    assert (output / "python" / "fwdemo" / "__init__.py").read_text() == "VALUE = 42\n"
    assert not list(output.rglob("__pycache__"))


def test_a_wheel_that_does_not_match_its_pinned_hash_stops_synthesis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a wheel whose content is not the one requirements.txt pinned (a substituted or tampered package)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"fwdemo==1.0 --hash=sha256:{'0' * 64}\n", encoding="utf-8")
    # Then pip refuses it, and so does the synth
    with pytest.raises(DependencyBundlingError, match="--require-hashes") as raised:
        PipLayerBundler(requirements).try_bundle(str(tmp_path / "out"))
    assert "HASH" in str(raised.value).upper()
    # And a requirement without a hash is refused too
    requirements.write_text("fwdemo==1.0\n", encoding="utf-8")
    with pytest.raises(DependencyBundlingError):
        PipLayerBundler(requirements).try_bundle(str(tmp_path / "out2"))


def test_the_layer_requirements_pin_a_version_and_a_hash_for_every_package() -> None:
    text = (REQUIREMENTS_DIR / "requirements.txt").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.split("#")[0].strip() for line in text.splitlines()]
    requirements = [line for line in lines if line]
    assert requirements
    for requirement in requirements:
        assert re.match(r"^[A-Za-z0-9_.-]+==[\w.]+ (\s*--hash=sha256:[0-9a-f]{64})+$", requirement), requirement


def test_bundler_failure_stops_synthesis_with_pip_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("fleetwave-no-such-package==9.9\n", encoding="utf-8")
    with pytest.raises(DependencyBundlingError, match="building the fleetwave dependencies layer failed") as raised:
        PipLayerBundler(requirements).try_bundle(str(tmp_path / "out"))
    assert "fleetwave-no-such-package" in str(raised.value)
    assert "fleetwave:skipDependencyBundling=true" in str(raised.value)
