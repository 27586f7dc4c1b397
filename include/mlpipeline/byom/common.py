"""What every BYOM step shares: the layout's names and the errors."""

from __future__ import annotations

import re

#: Where the BYOM model files live (one per model).
BYOM_SUBDIR = "byom"
#: The file the built-in container loads; the only member of ``model.tar.gz``.
MODEL_FILE = "xgboost-model"
#: The tarball's name, as a SageMaker training job would write it.
MODEL_TARBALL = "model.tar.gz"
#: The only objective this pipeline's accuracy/AUC check understands.
OBJECTIVE = "binary:logistic"
#: scikit-learn's bundled tabular data sets (``sklearn.datasets.load_<name>``): nothing is downloaded.
#: scikit-learn's bundled tabular data sets (``sklearn.datasets.load_<name>``): nothing is downloaded.
SKLEARN_DATASETS = ("breast_cancer", "diabetes", "digits", "iris", "wine")
#: What the endpoint is sent and asked for.
CSV = "text/csv"
#: The sections of ``base.yaml`` <- ``stages/<stage>.yaml`` a BYOM run reads (:class:`StageSettings`).
STAGE_SECTIONS = ("aws", "tags", "alerts", "airflow")
#: Keys of those sections that may use ``{account}`` and ``{region}``, as in the pipeline config.
STAGE_TEMPLATED_KEYS = ("aws.role_arn", "alerts.sns_topic_arn")

_CONTAINER_VERSION = re.compile(r"^(\d+)\.(\d+)-(\d+)$")


class BringYourOwnModelError(RuntimeError):
    """The run cannot go on: its data, model or endpoint is not what the pipeline promised."""


class EndpointCheckError(BringYourOwnModelError):
    """The endpoint answered, but not what the booster trained in the task predicts."""

