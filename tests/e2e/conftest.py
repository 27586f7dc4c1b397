"""A real localmaker and an isolated Airflow for end-to-end runs of the real DAGs.

What the CloudFormation stack provides on AWS (the stage's bucket, the alerts topic) is created
here the way ``scripts/demo.py`` does; everything else is made by the DAG under test.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from include.mlpipeline.config import load_config

from ..airflow_helpers import ROOT, airflow_env, migrate
from .support import MODEL, STAGE, Pipeline


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    from include.mlpipeline.bootstrap import provision_stage
    from localmaker.launcher import start

    home = tmp_path_factory.mktemp("training-e2e")
    cfg = load_config(MODEL, STAGE)
    server = start(home / "localmaker")
    try:
        s3 = server.client("s3", cfg.aws.region)
        provision_stage(cfg, s3, server.client("sns", cfg.aws.region))
        env = airflow_env(home / "airflow", ROOT / "dags", server.url)
        migrate(env)
        yield Pipeline(
            server=server,
            cfg=cfg,
            airflow=env,
            s3=s3,
            sm=server.client("sagemaker", cfg.aws.region),
            runtime=server.client("sagemaker-runtime", cfg.aws.region),
        )
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
