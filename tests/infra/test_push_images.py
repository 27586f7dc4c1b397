"""scripts/push_images.sh: valid bash, refuses to guess the account or region, pushes where infra expects.

No Docker here: the behaviour is checked through ``--dry-run``, which prints the commands.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.infra.support import ROOT

SCRIPT = ROOT / "scripts" / "push_images.sh"
ACCOUNT, REGION = "123456789012", "eu-west-1"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in ("IMAGE_TAG", "PLATFORM")}
    return subprocess.run(["bash", str(SCRIPT), *args], env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def images(tmp_path: Path) -> Path:
    for name in ("dnn_regressor", "model_monitor"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "not_an_image").mkdir()  # no Dockerfile: skipped
    return tmp_path


def test_bash_syntax() -> None:
    result = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_shellcheck_if_available() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (make system-deps installs it as root)")
    result = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_is_executable_and_strict() -> None:
    assert os.access(SCRIPT, os.X_OK)
    assert "set -euo pipefail" in SCRIPT.read_text()


@pytest.mark.parametrize("missing", ["AWS_ACCOUNT_ID", "AWS_REGION"])
def test_refuses_without_account_or_region(missing: str, images: Path) -> None:
    env = {"AWS_ACCOUNT_ID": ACCOUNT, "AWS_REGION": REGION, "CONTAINER_DIR": str(images)}
    del env[missing]
    result = _run("--dry-run", env=env)
    assert result.returncode == 2
    assert f"{missing} is not set" in result.stderr and "Usage:" in result.stderr
    assert "docker" not in result.stdout


def test_rejects_a_malformed_account(images: Path) -> None:
    result = _run("-n", env={"AWS_ACCOUNT_ID": "1234", "AWS_REGION": REGION, "CONTAINER_DIR": str(images)})
    assert result.returncode == 2 and "12 digits" in result.stderr


def test_help() -> None:
    result = _run("--help")
    assert result.returncode == 0 and "AWS_ACCOUNT_ID" in result.stdout and "--dry-run" in result.stdout


def test_dry_run_builds_and_pushes_every_image(images: Path) -> None:
    result = _run("--dry-run", "--tag", "v1.2.3",
                  env={"AWS_ACCOUNT_ID": ACCOUNT, "AWS_REGION": REGION, "CONTAINER_DIR": str(images)})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert (f"+ aws ecr get-login-password --region {REGION} | docker login --username AWS "
            f"--password-stdin {REGISTRY}") in out
    for folder, repo in (("dnn_regressor", "dnn-regressor"), ("model_monitor", "model-monitor")):
        uri = f"{REGISTRY}/{repo}"
        assert f"+ docker build --platform linux/amd64 --tag {uri}:v1.2.3 {images / folder}" in out
        assert f"+ docker push {uri}:v1.2.3" in out
        assert f"+ docker push {uri}:latest" in out
    assert "not_an_image" not in out


def test_dry_run_one_image_without_latest(images: Path) -> None:
    result = _run("-n", "-t", "abc", "--no-latest", "model_monitor",
                  env={"AWS_ACCOUNT_ID": ACCOUNT, "AWS_REGION": REGION, "CONTAINER_DIR": str(images)})
    assert result.returncode == 0, result.stderr
    assert f"docker push {REGISTRY}/model-monitor:abc" in result.stdout
    assert "latest" not in result.stdout.replace("tagged abc", "")
    assert "dnn-regressor" not in result.stdout


def test_unknown_image_is_an_error(images: Path) -> None:
    result = _run("-n", "-t", "x", "nope", env={"AWS_ACCOUNT_ID": ACCOUNT, "AWS_REGION": REGION,
                                                "CONTAINER_DIR": str(images)})
    assert result.returncode == 2 and "no Dockerfile" in result.stderr
