"""SageMaker's k-nearest neighbors (``<account>.dkr.ecr.<region>.amazonaws.com/knn:1``) as a local program.

What it emulates (SageMaker developer guide: "k-NN Hyperparameters", "Data Formats for k-NN Training
Input", "k-NN Request and Response Formats", "Tune a k-NN Model"):

* hyperparameters ``feature_dim``, ``k``, ``predictor_type`` (``classifier`` | ``regressor``) and
  ``sample_size`` (all four required), ``mini_batch_size`` (default 5000), ``dimension_reduction_type``
  (``sign`` | ``fjlt``) with ``dimension_reduction_target`` (required with a type, 0 < target <
  feature_dim), ``index_type`` (``faiss.Flat`` default, ``faiss.IVFFlat``, ``faiss.IVFPQ``),
  ``index_metric`` (``L2`` default, ``INNER_PRODUCT``, ``COSINE``; the latter two are refused with
  ``faiss.IVFPQ`` as documented), ``faiss_index_ivf_nlists`` (``auto`` or a positive integer) and
  ``faiss_index_pq_m`` (one of 1, 2, 3, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 96); missing and
  unknown names fail with the 1P ``ValidationError`` wording of :mod:`.runtime`;
* channels ``train`` (required) and ``test`` (optional) in ``application/x-recordio-protobuf`` (the
  default; label under ``values``) or ``text/csv`` whose first ``label_size`` column (default 1) is the
  label; every record needs exactly one label;
* training = the real algorithm's three steps: sample ``sample_size`` records (uniformly, without
  replacement; all of them when there are fewer), reduce the dimension (``sign``: a random +-1
  projection; ``fjlt``: random signs, a normalised Walsh-Hadamard transform and a random choice of
  ``dimension_reduction_target`` coordinates), and build the index;
* the ``test`` channel scored as the real image logs it -- classifier accuracy, regressor mse::

      #test_score (algo-1) : ('accuracy', 0.98)
      #quality_metric: host=algo-1, test accuracy <score>=0.98
      #quality_metric: host=algo-1, test mse <loss>=0.0133

  which the manifest's metric definitions (``test:accuracy``, ``test:mse``) read;
* ``/invocations`` taking text/csv (``label_size`` parameter, default 0), application/json,
  application/jsonlines and RecordIO-protobuf, answering per ``Accept`` (default JSON)
  ``{"predictions": [{"predicted_label": 0.0}, ...]}`` as JSON, JSON Lines or RecordIO-protobuf (label
  map key ``predicted_label``), and with ``verbose=true`` on the Accept type
  (``application/json; verbose=true``) also ``distances`` (nearest first) and the neighbours' ``labels``.

Prediction: the classifier answers the most frequent label among the k neighbours (a tie goes to the
tied label met first, i.e. the one with the nearest neighbour); the regressor the mean of their labels.

Not the real thing: every ``index_type`` is an exact brute-force search here (``faiss.IVFFlat`` /
``faiss.IVFPQ`` are validated and recorded but do not approximate, so answers can be *better* than on
AWS); distances follow FAISS's conventions as we understand them -- squared Euclidean distance for L2,
the inner product for INNER_PRODUCT and cosine similarity for COSINE (for the latter two, larger is
nearer and comes first) -- not checked against a real endpoint; ``model.tar.gz`` holds
``model_algo-1`` as a NumPy ``.npz`` (sampled points, labels, projection), not the real FAISS index, so
a model trained on AWS does not host locally and vice versa. With several hosts, algo-1 builds the
model from the data it sees (all of it with FullyReplicated; only its shard with ShardedByS3Key) and
the other hosts write nothing. The exact wording of k-NN's own cross-parameter errors (target vs
feature_dim, k vs sample size...) is ours.

The parts (``python -m localmaker.builtins.knn train|serve`` runs :mod:`.__main__`):

* :mod:`.data` - reading the training channels and request payloads.
* :mod:`.model` - the model and its file, shared by training and serving.
* :mod:`.training` - hyperparameters, the algorithm and the ``train`` entry point.
* :mod:`.serving` - loading the model and answering ``/invocations``.
"""

from __future__ import annotations

from .data import decode, labels_of
from .model import CLASSIFIER, MODEL_FILE, REGRESSOR, KNNModel, projection_matrix
from .serving import accept_type, invoke, load, records, serve
from .training import CHANNELS, PQ_M_VALUES, SEED, SPEC, fit, info, parse_config, scores, train

__all__ = [
    'CHANNELS',
    'CLASSIFIER',
    'KNNModel',
    'MODEL_FILE',
    'PQ_M_VALUES',
    'REGRESSOR',
    'SEED',
    'SPEC',
    'accept_type',
    'decode',
    'fit',
    'info',
    'invoke',
    'labels_of',
    'load',
    'parse_config',
    'projection_matrix',
    'records',
    'scores',
    'serve',
    'train',
]
