"""Bring your own model: an XGBoost model trained *outside* SageMaker, served by SageMaker's built-in
XGBoost container.

The ``<name>_byom`` DAG (``dags/byom_pipeline.py``) trains a booster inside an Airflow task, packages it
the way the built-in container loads models, uploads the tarball and deploys it with the real image
(``sagemaker.core.image_uris.retrieve("xgboost", region, version)``); then it asks the endpoint to score
the held-out rows and fails unless the answers equal the in-task booster's. On AWS that image is AWS's
container; on localmaker the same URI resolves to ``localmaker/builtins/xgboost_algo.py``. Nothing here
knows which.

Config: one file per model under ``include/config/byom/<name>.yaml`` (schema: :class:`ByomConfig`),
plus the stage's ``aws`` / ``tags`` / ``alerts`` / ``airflow`` sections from ``base.yaml`` <- ``stages/<stage>.yaml``
(validated with the pipeline's own :class:`~include.mlpipeline.config.AwsConfig`,
:class:`~include.mlpipeline.config.AlertsSettings` and :class:`~include.mlpipeline.config.AirflowSettings`). A separate directory because a BYOM model has no
SageMaker training job, no ETL schema and no registry gate: ``models/*.yaml`` would need schema changes
to express it, and every other DAG builds one DAG per file there.

What the built-in container accepts (aws/sagemaker-xgboost-container,
``algorithm_mode/serve_utils.py::get_loaded_booster``): it loads *every regular file at the top of the
model directory*, each with ``pickle.load`` and, failing that, ``xgboost.Booster().load_model``, and
averages the predictions of all of them. So the tarball holds exactly one file, ``xgboost-model``,
written by ``Booster.save_model`` in XGBoost's JSON format (the version-stable format; the container's
loader detects JSON by content, whatever the file name). Pickles are not used: they are tied to the
XGBoost and Python versions of the writer.

The container's XGBoost must be at least as new as the one that trained the model: XGBoost guarantees
only backward compatibility of saved models. Measured, not assumed: a binary:logistic model saved by
XGBoost 3.2 stores ``base_score`` as ``"[6.27E-1]"``; XGBoost 1.7.6 (``sagemaker-xgboost:1.7-1``) loads
the file without complaint, reads the base score as 0.5 and predicts up to 0.03 off. Hence
:func:`check_container_compatibility`, run before training.

Importing this package is cheap (stdlib, pydantic, PyYAML): DAG files import it at parse time. numpy,
scikit-learn, xgboost and the SageMaker SDK load inside the functions that need them.

The package, one module per step; each imports only the ones listed before it:

* ``common``   - layout names (``MODEL_FILE``, ``MODEL_TARBALL``...) and the errors.
* ``config``   - :class:`ByomConfig` / :class:`StageSettings`, loading, trigger overrides, the
  failure alert (built on :mod:`include.mlpipeline.config`).
* ``deploy``   - names, S3 locations, the image and the deploy request.
* ``data``     - load, split and serialise the data set.
* ``train``    - ``xgboost.train``, predictions, metrics, the quality bar.
* ``package``  - the container-version check, ``model.tar.gz``, its verification.
* ``evaluate`` - the endpoint check against the in-task predictions.

Every public name is importable from ``include.mlpipeline.byom``.
"""

from __future__ import annotations

# get_text, upload_file: the byom task bodies (include/mlpipeline/pipelines/byom.py) reach S3 through these
from ..s3 import get_text, s3_uri, upload_file
from .common import (
    BYOM_SUBDIR,
    CSV,
    MODEL_FILE,
    MODEL_TARBALL,
    OBJECTIVE,
    SKLEARN_DATASETS,
    STAGE_SECTIONS,
    STAGE_TEMPLATED_KEYS,
    BringYourOwnModelError,
    EndpointCheckError,
)
from .config import (
    ByomConfig,
    CheckSettings,
    DataSettings,
    ServingSettings,
    StageSettings,
    TrainingSettings,
    XGBoostParam,
    byom_dir,
    config_for_run,
    failure_callback,
    list_byom_models,
    load_byom_config,
    load_stage_settings,
)
from .data import (
    Dataset,
    feature_rows_csv,
    from_labelled_csv,
    load_dataset,
    split_dataset,
    to_labelled_csv,
)
from .deploy import (
    deploy_request,
    endpoint_config_name,
    endpoint_name,
    image_uri,
    model_data_uri,
    model_name,
    run_prefix,
    run_uri,
)
from .evaluate import (
    CheckResult,
    batches,
    compare_with_reference,
    invoke_rows,
    put_text,
)
from .package import (
    check_container_compatibility,
    container_xgboost_version,
    load_packaged_model,
    package_model,
    tarball_members,
    verify_package,
)
from .train import (
    check_training_quality,
    classification_metrics,
    max_abs_diff,
    predict,
    train_booster,
)

__all__ = [
    "BYOM_SUBDIR",
    "BringYourOwnModelError",
    "ByomConfig",
    "CSV",
    "CheckResult",
    "CheckSettings",
    "DataSettings",
    "Dataset",
    "EndpointCheckError",
    "MODEL_FILE",
    "MODEL_TARBALL",
    "OBJECTIVE",
    "SKLEARN_DATASETS",
    "STAGE_SECTIONS",
    "STAGE_TEMPLATED_KEYS",
    "ServingSettings",
    "StageSettings",
    "TrainingSettings",
    "XGBoostParam",
    "batches",
    "byom_dir",
    "check_container_compatibility",
    "check_training_quality",
    "classification_metrics",
    "compare_with_reference",
    "config_for_run",
    "container_xgboost_version",
    "deploy_request",
    "endpoint_config_name",
    "endpoint_name",
    "failure_callback",
    "feature_rows_csv",
    "from_labelled_csv",
    "get_text",
    "image_uri",
    "invoke_rows",
    "list_byom_models",
    "load_byom_config",
    "load_dataset",
    "load_packaged_model",
    "load_stage_settings",
    "max_abs_diff",
    "model_data_uri",
    "model_name",
    "package_model",
    "predict",
    "put_text",
    "run_prefix",
    "run_uri",
    "s3_uri",
    "split_dataset",
    "tarball_members",
    "to_labelled_csv",
    "train_booster",
    "upload_file",
    "verify_package",
]
