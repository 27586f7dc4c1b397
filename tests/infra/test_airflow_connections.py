"""aws_default as compose (AIRFLOW_CONN_AWS_DEFAULT) and Astro (airflow_settings.yaml) define it,
read by Airflow and the Amazon provider themselves: both must reach localmaker with dummy keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.infra.support import ROOT, compose, load_yaml

LOCALMAKER = "http://localmaker:4566"

_CHECK = r"""
import json, sys
from airflow.models.connection import Connection
from airflow.providers.amazon.aws.utils.connection_wrapper import AwsConnectionWrapper

compose_json, astro = sys.argv[1], json.loads(sys.argv[2])
conns = {
    "compose": Connection.from_json(compose_json, conn_id="aws_default"),
    "astro": Connection(conn_id=astro["conn_id"], conn_type=astro["conn_type"], login=astro.get("conn_login"),
                        password=astro.get("conn_password"), extra=json.dumps(astro.get("conn_extra") or {})),
}
out = {}
for name, conn in conns.items():
    w = AwsConnectionWrapper(conn)
    out[name] = [w.conn_type, w.endpoint_url, w.region_name, bool(w.aws_access_key_id and w.aws_secret_access_key)]
print(json.dumps(out))
"""


def _astro_aws_default() -> dict:
    connections = load_yaml("airflow_settings.yaml")["airflow"]["connections"]
    matching = [c for c in connections if c["conn_id"] == "aws_default"]
    assert len(matching) == 1, "airflow_settings.yaml must define aws_default once"
    return matching[0]


def test_airflow_settings_has_aws_default_for_localmaker() -> None:
    conn = _astro_aws_default()
    assert conn["conn_type"] == "aws"
    assert conn["conn_extra"] == {"endpoint_url": LOCALMAKER, "region_name": "us-east-1"}


def test_astro_override_provides_the_localmaker_host() -> None:
    services = compose("docker-compose.override.yml")["services"]
    assert "localmaker" in services and "airflow" in services["localmaker"]["networks"]


def test_airflow_and_the_provider_read_both_connections(tmp_path: Path) -> None:
    compose_json = compose("docker-compose.yaml")["services"]["airflow-worker"]["environment"]["AIRFLOW_CONN_AWS_DEFAULT"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW"))}
    env.update({"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    result = subprocess.run(
        [sys.executable, "-c", _CHECK, compose_json, json.dumps(_astro_aws_default())],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    for name in ("compose", "astro"):
        assert seen[name] == ["aws", LOCALMAKER, "us-east-1", True], f"{name}: {seen[name]}"


def test_airflow_settings_pools_are_the_dev_stages_configured_pools() -> None:
    """Astro's `astro dev start` creates the same pools as `make up` and compose (issue 15.8)."""
    from include.mlpipeline.config.pools import pools_import_file, stage_pools

    pools = load_yaml("airflow_settings.yaml")["airflow"]["pools"]
    got = {p["pool_name"]: (p["pool_slot"], p["pool_description"]) for p in pools}
    assert len(got) == len(pools), "a pool is listed twice"
    expected = {name: (p["slots"], p["description"]) for name, p in pools_import_file(stage_pools("dev")).items()}
    assert got == expected
