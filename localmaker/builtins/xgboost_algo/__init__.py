"""SageMaker's built-in XGBoost image (``sagemaker-xgboost:1.x``) in algorithm mode, run locally.

The program follows aws/sagemaker-xgboost-container so that a job, endpoint or tuning job built for
the real image behaves the same here:

* training: channels ``train`` (required) and ``validation`` (optional), ContentType ``text/csv``
  (label in the first column, no header; ``label_size`` must be 1), ``text/libsvm`` (the default,
  as in the real image), ``application/x-parquet`` and ``application/x-recordio-protobuf``; all data
  files of a channel are read (names starting with ``.`` or ``_`` are skipped, as the real image
  does). Hyperparameters are validated with the real container's rules and wording
  (``Missing required hyperparameter: num_round``, ``Extraneous hyperparameter found: x``, ...).
* each boosting round prints ``[i]#011train-rmse:...#011validation-rmse:...`` - the line as
  CloudWatch shows xgboost's tab-separated evaluation log - which the image's metric definitions
  (``train:rmse``, ``validation:auc``, ... in ``images.yaml``) read; ``early_stopping_rounds`` stops
  on the validation set's tuning-objective / last ``eval_metric`` metric and keeps the best round.
* the model is ``model/xgboost-model`` (a native booster file).
* serving loads every file of the model dir (pickled Booster/XGBModel or ``Booster.save_model``
  output, as the real image does, so a model trained elsewhere can be deployed), accepts
  ``text/csv``, ``text/libsvm`` and ``application/x-recordio-protobuf`` and answers ``text/csv``
  (comma-separated on one line; one prediction a line in batch transform) or
  ``{"predictions": [{"score": ...}]}`` for ``application/json``; ``SAGEMAKER_INFERENCE_OUTPUT``
  selects the real image's classification keys (``predicted_label``, ``probabilities``, ...).

Where this runs XGBoost 3.x instead of 1.x: ``gpu_hist`` trains with ``hist`` (no GPU here) and
parameters XGBoost removed (``predictor``, ``sketch_eps``, ...) are accepted and ignored.

The parts (``python -m localmaker.builtins.xgboost_algo train|serve`` runs :mod:`.__main__`):

* :mod:`.data` - reading the training channels and request payloads.
* :mod:`.model` - the model and its file, shared by training and serving.
* :mod:`.training` - hyperparameters, the algorithm and the ``train`` entry point.
* :mod:`.serving` - loading the model and answering ``/invocations``.
"""

from __future__ import annotations

from .data import (
    CSV,
    LIBSVM,
    PARQUET,
    RECORDIO_PROTOBUF,
    VALID_CONTENT_TYPES,
    Dataset,
    csv_delimiter,
    data_files,
    get_content_type,
    load_channel,
    load_csv,
    load_libsvm,
    load_parquet,
    load_recordio,
    parse_csv_rows,
    parse_libsvm,
    to_dmatrix,
    validate_channels,
)
from .model import MODEL_NAME, PKL_FORMAT, XGB_FORMAT, Model, load_model
from .serving import (
    REQUEST_TYPES,
    SELECTABLE_KEYS,
    VALID_OBJECTIVES,
    accept_type,
    encode_predictions,
    encode_selected,
    invoke,
    parse_request,
    predict,
    request_content_type,
    selected_predictions,
    serve,
)
from .training import (
    ALIASES,
    CUSTOM_METRICS,
    CUSTOMER_ERRORS,
    HYPERPARAMETERS,
    OBJECTIVES,
    REMOVED_PARAMS,
    XGB_MAXIMIZE_METRICS,
    XGB_MINIMIZE_METRICS,
    Choices,
    Hyperparameter,
    Interval,
    custom_metric_fns,
    early_stopping_metric,
    eval_metrics,
    evaluation_monitor,
    format_eval_line,
    is_maximize,
    train,
    validate_hyperparameters,
    xgb_params,
)

__all__ = [
    'ALIASES',
    'CSV',
    'CUSTOMER_ERRORS',
    'CUSTOM_METRICS',
    'Choices',
    'Dataset',
    'HYPERPARAMETERS',
    'Hyperparameter',
    'Interval',
    'LIBSVM',
    'MODEL_NAME',
    'Model',
    'OBJECTIVES',
    'PARQUET',
    'PKL_FORMAT',
    'RECORDIO_PROTOBUF',
    'REMOVED_PARAMS',
    'REQUEST_TYPES',
    'SELECTABLE_KEYS',
    'VALID_CONTENT_TYPES',
    'VALID_OBJECTIVES',
    'XGB_FORMAT',
    'XGB_MAXIMIZE_METRICS',
    'XGB_MINIMIZE_METRICS',
    'accept_type',
    'csv_delimiter',
    'custom_metric_fns',
    'data_files',
    'early_stopping_metric',
    'encode_predictions',
    'encode_selected',
    'eval_metrics',
    'evaluation_monitor',
    'format_eval_line',
    'get_content_type',
    'invoke',
    'is_maximize',
    'load_channel',
    'load_csv',
    'load_libsvm',
    'load_model',
    'load_parquet',
    'load_recordio',
    'parse_csv_rows',
    'parse_libsvm',
    'parse_request',
    'predict',
    'request_content_type',
    'selected_predictions',
    'serve',
    'to_dmatrix',
    'train',
    'validate_channels',
    'validate_hyperparameters',
    'xgb_params',
]
