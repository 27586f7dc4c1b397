"""SageMaker's PCA (``pca:1``) as a local program: ``train`` and ``serve``.

What it emulates (SageMaker developer guide: "PCA Hyperparameters", "PCA Response Formats",
"Common data formats for training"):

* hyperparameters ``feature_dim``, ``mini_batch_size`` and ``num_components`` (all three required, as
  the real one documents), ``algorithm_mode`` (``regular`` | ``randomized``), ``subtract_mean``
  (default true, applied in training *and* inference) and ``extra_components`` (randomized only;
  -1 = max(10, num_components)); unknown names are rejected with the 1P wording;
* the ``train`` channel (and an optional ``test`` channel, read and checked but, as far as we know,
  not scored by a metric on AWS) in ``application/x-recordio-protobuf`` or header-less ``text/csv``;
  CSV follows the common training format, so the first ``label_size`` columns (default 1) are a
  label and ignored: send ``text/csv;label_size=0`` for pure feature rows;
* ``model_algo-1`` with the real model's three arrays ``mean`` (1 x feature_dim), ``v``
  (feature_dim x num_components) and ``s`` (num_components singular values), **in ascending order**
  (largest component last), as the real artifact stores them (here a NumPy ``.npz`` instead of MXNet
  NDArrays) -- and projections come back in that same order;
* ``/invocations`` taking text/csv, application/json, application/jsonlines and RecordIO-protobuf and
  answering ``{"projections": [{"projection": [...]}, ...]}`` in JSON, JSON Lines or RecordIO-protobuf
  (label map key ``projection``).

How it computes: ``regular`` mode streams the data in ``mini_batch_size`` batches, accumulating the
exact sums (count, sum x, sum x x^T, float64) -- one pass, as the real one -- and takes the top
eigenvectors of the resulting scatter matrix (``s`` = sqrt of its eigenvalues = the singular values of
the centred data). ``randomized`` mode runs a randomized range finder with ``num_components +
extra_components`` probe vectors and two power iterations on the same scatter matrix, then solves the
small projected problem: an approximation that converges to ``regular`` as extra components grow.

The parts (``python -m localmaker.builtins.pca train|serve`` runs :mod:`.__main__`):

* :mod:`.model` - the model and its file, shared by training and serving.
* :mod:`.training` - hyperparameters, the algorithm and the ``train`` entry point.
* :mod:`.serving` - loading the model and answering ``/invocations``.
"""

from __future__ import annotations

from .model import MODEL_FILE, PCAModel
from .serving import invoke, load, records, serve
from .training import CHANNELS, SPEC, ScatterAccumulator, fit, info, parse_config, train

__all__ = [
    'CHANNELS',
    'MODEL_FILE',
    'PCAModel',
    'SPEC',
    'ScatterAccumulator',
    'fit',
    'info',
    'invoke',
    'load',
    'parse_config',
    'records',
    'serve',
    'train',
]
