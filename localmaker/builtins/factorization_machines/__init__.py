"""SageMaker's Factorization Machines (``<account>.dkr.ecr.<region>.amazonaws.com/factorization-machines:1``),
run locally: ``train`` and ``serve``.

What it emulates (SageMaker developer guide: "Factorization Machines Algorithm", "Factorization Machines
Hyperparameters", "Tune a Factorization Machines Model", "Factorization Machine Response Formats"):

* hyperparameters ``feature_dim``, ``num_factors`` and ``predictor_type`` (``binary_classifier`` |
  ``regressor``; all three required), ``mini_batch_size`` (1000), ``epochs`` (1), ``clip_gradient``,
  ``eps``, ``rescale_grad``, ``bias_lr`` (0.1), ``linear_lr`` (0.001), ``factors_lr`` (0.0001),
  ``bias_wd`` (0.01), ``linear_wd`` (0.001), ``factors_wd`` (0.00001) and, for each of bias / linear /
  factors, ``*_init_method`` (``normal`` default, ``uniform``, ``constant``) with ``*_init_sigma`` (0.01,
  0.01, 0.001), ``*_init_scale`` and ``*_init_value`` -- the documented defaults; learning rates, weight
  decays, scales and sigmas must be non-negative; missing / unknown / malformed names fail with the 1P
  ``ValidationError`` wording of :mod:`.runtime`;
* channels ``train`` (required) and ``test`` (optional) in ``application/x-recordio-protobuf`` only, as
  the real algorithm ("CSV is not a good candidate"): dense or **sparse** Float32 tensors (``keys`` +
  ``shape``, as the SDK's ``write_spmatrix_to_sparse_tensor`` writes one-hot user/item rows), one label
  per record (0/1 for ``binary_classifier``);
* per-epoch training metrics and the test scores in the 1P log format::

      #quality_metric: host=algo-1, epoch=3, batch=19 train rmse <loss>=0.91
      #quality_metric: host=algo-1, epoch=3, train rmse <loss>=0.91
      #test_score (algo-1) : ('rmse', 0.93)
      #quality_metric: host=algo-1, test rmse <loss>=0.93

  (``binary_classification_accuracy <score>``, ``binary_classification_cross_entropy <loss>`` and
  ``binary_f_1.000 <score>`` at threshold 0.5 for the classifier), which the manifest's metric
  definitions (``test:rmse``, ``test:binary_classification_accuracy``,
  ``test:binary_classification_cross_entropy``, ``test:binary_f_beta``, train ones) read;
* ``/invocations`` taking application/json (``{"instances": [{"features": [...]}]}`` dense, or the sparse
  ``{"data": {"features": {"keys": [...], "shape": [feature_dim], "values": [...]}}}``),
  application/jsonlines (one such instance a line) and RecordIO-protobuf (dense or sparse records), and
  answering ``{"predictions": [{"score": 0.83, "predicted_label": 1.0}]}`` (classifier: score =
  P(label 1), label 1 when score >= 0.5) or ``{"predictions": [{"score": 3.7}]}`` (regressor) as JSON,
  JSON Lines or RecordIO-protobuf (label map keys ``score`` / ``predicted_label``).

The model is Rendle's second-order factorization machine,
``y = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j``, computed in O(nnz * num_factors) with
``0.5 * sum_f ((X V)_f^2 - (X^2 V^2)_f)`` on SciPy CSR matrices, trained by mini-batch Adam
(MXNet-style: gradient times ``rescale_grad`` (default 1 / batch size), clipped to ``clip_gradient``,
plus ``wd * weight``, then Adam with ``eps`` (default 1e-8)), each parameter group with its own learning
rate and weight decay; linear and factor rows are updated lazily (only the rows a mini-batch touches, as
MXNet's sparse Adam). Squared loss for the regressor, logistic loss for the classifier.

Not the real thing: AWS does not document its optimizer (Adam is our choice) nor the defaults of
``*_init_scale`` / ``*_init_value`` (here 0.01 and 0.0); ``model.tar.gz`` holds ``model_algo-1`` as a
NumPy ``.npz`` (``w0``, ``w``, ``V``), not the MXNet parameter archive, so artifacts do not move between
AWS and localmaker; several hosts do not train together (algo-1 trains on the data it sees -- all of it
with FullyReplicated -- and the others write nothing); GPU and Pipe-mode specifics are not emulated; a
text/csv request is refused (415) because the algorithm documents JSON and RecordIO only.

The parts (``python -m localmaker.builtins.factorization_machines train|serve`` runs :mod:`.__main__`):

* :mod:`.data` - reading the training channels and request payloads.
* :mod:`.model` - the model and its file, shared by training and serving.
* :mod:`.training` - hyperparameters, the algorithm and the ``train`` entry point.
* :mod:`.serving` - loading the model and answering ``/invocations``.
"""

from __future__ import annotations

from .data import Row, decode, iter_rows, parse_record, read_channel, to_csr
from .model import BINARY, MODEL_FILE, REGRESSOR, FMModel, raw_output
from .serving import invoke, load, records, serve
from .training import (
    CHANNELS,
    GROUPS,
    SEED,
    SPEC,
    EpochMetrics,
    LazyAdam,
    binary_scores,
    evaluate,
    fit,
    info,
    parse_config,
    train,
)

__all__ = [
    'BINARY',
    'CHANNELS',
    'EpochMetrics',
    'FMModel',
    'GROUPS',
    'LazyAdam',
    'MODEL_FILE',
    'REGRESSOR',
    'Row',
    'SEED',
    'SPEC',
    'binary_scores',
    'decode',
    'evaluate',
    'fit',
    'info',
    'invoke',
    'iter_rows',
    'load',
    'parse_config',
    'parse_record',
    'raw_output',
    'read_channel',
    'records',
    'serve',
    'to_csr',
    'train',
]
