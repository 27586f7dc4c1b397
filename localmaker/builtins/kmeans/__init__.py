"""SageMaker's first-party K-Means (``<account>.dkr.ecr.<region>.amazonaws.com/kmeans:1``), run locally.

Training follows the real algorithm's shape ("web-scale" mini-batch k-means, then a local Lloyd
reduction): ``K = k * extra_center_factor`` centers are seeded (``init_method`` random | kmeans++)
and updated from mini-batches of ``mini_batch_size`` records for ``epochs`` passes, each center a
running mean of the points it won (``half_life_time_size`` decays old points' weight); the model is
then finalized by a weighted Lloyd EM on those K centers down to ``k`` (``local_lloyd_*``: init
method, iterations, tolerance on the change in ssd, best of ``num_trials``). The optional ``test``
channel is scored with the final centers and logged as the real image logs it::

    #quality_metric: host=algo-1, test msd <loss>=12.34
    #quality_metric: host=algo-1, test ssd <loss>=5678.9

which the manifest's metric definitions (``test:msd``, ``test:ssd``) turn into
``FinalMetricDataList`` and tuning objectives.

Data: channels ``train`` (required) and ``test`` (optional) in ``application/x-recordio-protobuf``
(default; labels, if any, are ignored) or ``text/csv`` (``label_size`` leading columns are dropped;
K-Means is unsupervised so it defaults to 0 and every column is a feature). ``feature_dim`` must
equal the data's width.

Several hosts (``InstanceCount`` > 1, usually ``ShardedByS3Key``): every host runs the mini-batch
phase on its own shard and sends its weighted centers to algo-1 over TCP (addresses from
``TRAINING_HOST_ADDRESSES``); algo-1 reduces the union to ``k`` centers, scores the test channel
and writes the one model. (The real image syncs through an MXNet kvstore instead; the result
- one model learnt from every shard - is the same in kind.)

Model artifact: ``model.tar.gz`` holds ``model_algo-1`` as the real one does, in MXNet's NDArray
list file format (``mx.nd.load('model_algo-1')[0]`` is the ``(k, feature_dim)`` float32 array of
centers), written and read here without MXNet following ``NDArray::Save`` (list magic 0x112, V2
dense records); the reader also takes V1/V3/legacy records, so a model.tar.gz trained on AWS should
host locally too (not checked against a real artifact: MXNet is not installed here).

Inference: ``text/csv``, ``application/json`` (1P shapes), ``application/jsonlines`` and
``application/x-recordio-protobuf`` requests; answers per ``Accept`` (default JSON)::

    {"predictions": [{"closest_cluster": 3.0, "distance_to_cluster": 1.23}, ...]}

as JSON, JSON Lines, CSV (``closest_cluster,distance_to_cluster``) or RecordIO-protobuf records
with label map keys ``closest_cluster`` and ``distance_to_cluster`` (float32).

Not emulated: the real algorithm's nondeterminism (a fixed seed makes local runs repeatable), GPU
instances, Pipe mode specifics, sparse math (sparse RecordIO tensors are densified).

The parts (``python -m localmaker.builtins.kmeans train|serve`` runs :mod:`.__main__`):

* :mod:`.data` - reading the training channels and request payloads.
* :mod:`.model` - the model and its file, shared by training and serving.
* :mod:`.training` - hyperparameters, the algorithm and the ``train`` entry point.
* :mod:`.serving` - loading the model and answering ``/invocations``.
"""

from __future__ import annotations

from .data import CSV, read_channel, read_csv_file, read_recordio_file
from .model import MODEL_FILE, assign, load_ndarray_list, save_ndarray_list
from .serving import Model, invoke, load, predict, serve
from .training import (
    METRICS,
    PEER_TIMEOUT,
    SDK_ALIASES,
    SEED,
    SPEC,
    auto_center_factor,
    auto_or_positive_int,
    eval_metrics,
    gather,
    listen,
    lloyd,
    log,
    minibatch_kmeans,
    parse_hps,
    reduce_centers,
    report,
    scores,
    seed_centers,
    train,
)

__all__ = [
    'CSV',
    'METRICS',
    'MODEL_FILE',
    'Model',
    'PEER_TIMEOUT',
    'SDK_ALIASES',
    'SEED',
    'SPEC',
    'assign',
    'auto_center_factor',
    'auto_or_positive_int',
    'eval_metrics',
    'gather',
    'invoke',
    'listen',
    'lloyd',
    'load',
    'load_ndarray_list',
    'log',
    'minibatch_kmeans',
    'parse_hps',
    'predict',
    'read_channel',
    'read_csv_file',
    'read_recordio_file',
    'reduce_centers',
    'report',
    'save_ndarray_list',
    'scores',
    'seed_centers',
    'serve',
    'train',
]
