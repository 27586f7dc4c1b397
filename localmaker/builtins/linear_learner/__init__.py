"""SageMaker's Linear Learner (``linear-learner:1``) as a local program: ``train`` and ``serve``.

What it emulates (SageMaker developer guide: "Linear Learner hyperparameters", "Linear learner
response formats", "Tune a linear learner model", "Common data formats for training"):

* hyperparameters by their documented names, ``predictor_type`` required, ``num_classes`` required
  for ``multiclass_classifier``, unknown names rejected with the 1P ``ValidationError`` wording;
* channels ``train`` (required), ``validation`` and ``test`` (optional) in
  ``application/x-recordio-protobuf`` (the default) or header-less ``text/csv`` with the label first;
* log lines in the real algorithm's format (``#quality_metric: host=algo-1, test mse <loss>=...``),
  which the image's metric definitions in ``images.yaml`` (copied from a real job's
  ``MetricDefinitions``) turn into ``FinalMetricDataList`` and tuning objectives;
* ``model.tar.gz`` holding ``model_algo-1`` (here a NumPy ``.npz``, not MXNet parameters);
* ``/invocations`` taking text/csv, application/json, application/jsonlines and RecordIO-protobuf and
  answering ``{"predictions": [{"score": ..., "predicted_label": ...}]}`` in JSON, JSON Lines or
  RecordIO-protobuf (label map keys ``score`` and ``predicted_label``).

How it learns (a real model, not a stand-in): features (and, for regression, the label) are
standardised from the first ``num_point_for_scaler`` training rows; then, like the real algorithm,
``num_models`` linear models with different learning rates / weight decays train *in parallel* by
mini-batch SGD (Adam by default; also ``sgd`` with momentum and ``rmsprop``) on the chosen loss,
for ``epochs`` passes with early stopping on the validation (else training) objective. Each model
keeps its best epoch; binary classifiers then calibrate their decision threshold for
``binary_classifier_model_selection_criteria`` on the validation (else training) data, and the model
best on that criterion (regression / multiclass: lowest objective) becomes the artifact. The
parallel models are vectorised in NumPy, so ``num_models=8`` (the local ``auto``; AWS uses 32) costs
about one model's time on small data. Tuning jobs (``_tuning_objective_metric`` set) train one
model, as AWS documents.

The parts (``python -m localmaker.builtins.linear_learner train|serve`` runs :mod:`.__main__`):

* :mod:`.model` - the model and its file, shared by training and serving.
* :mod:`.training` - hyperparameters, the algorithm and the ``train`` entry point.
* :mod:`.serving` - loading the model and answering ``/invocations``.
"""

from __future__ import annotations

from .model import BINARY, MODEL_FILE, MULTICLASS, REGRESSOR, LinearModel
from .serving import invoke, load, records, serve
from .training import (
    AUTO_NUM_MODELS,
    CHANNELS,
    LOSSES,
    SELECTION_CRITERIA,
    SPEC,
    Config,
    Dataset,
    Logger,
    calibrate_threshold,
    check_labels,
    evaluate_model,
    fit,
    info,
    log_scores,
    loss_and_grad,
    objective_name,
    parse_config,
    roc_auc,
    train,
)

__all__ = [
    'AUTO_NUM_MODELS',
    'BINARY',
    'CHANNELS',
    'Config',
    'Dataset',
    'LOSSES',
    'LinearModel',
    'Logger',
    'MODEL_FILE',
    'MULTICLASS',
    'REGRESSOR',
    'SELECTION_CRITERIA',
    'SPEC',
    'calibrate_threshold',
    'check_labels',
    'evaluate_model',
    'fit',
    'info',
    'invoke',
    'load',
    'log_scores',
    'loss_and_grad',
    'objective_name',
    'parse_config',
    'records',
    'roc_auc',
    'serve',
    'train',
]
