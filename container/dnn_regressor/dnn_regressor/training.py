"""``train``: read the channels, fit the network on one or many hosts, save the model.

The order matters for the user's time: everything that can be wrong with the input
(hyperparameters, channels, CSV cells) is checked before TensorFlow is imported, so a bad job
fails in well under a second with a reason naming file, row and column.

One code path serves one host and many. The loop is a custom ``tf.function`` rather than
``model.fit`` because Keras 3's ``fit`` cannot start under ``MultiWorkerMirroredStrategy`` (its
symbolic build all-reduces a data batch), and because we want exact global validation metrics:
each host evaluates its own validation rows and the squared-error sums are all-reduced, so every
host takes the same early-stopping decision.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, distributed
from .dataset import Dataset, build_dataset, check_content_type, load_channel
from .environment import TrainingEnvironment, failure_file
from .errors import ClientError, failure_reason, write_failure
from .hyperparameters import Hyperparameters, parse_hyperparameters
from .inference import export_inference, probe_rows
from .metrics import METRIC_DEFINITIONS, epoch_line, summary_line
from .model import FORMAT_VERSION, MODEL_FILE, Standardisation, build_model, fit_standardisation, save_model

__all__ = ["METRIC_DEFINITIONS", "main", "train"]

#: Validation rows go through the network in chunks of this size to bound memory.
EVAL_CHUNK_ROWS = 65_536


def log(message: str) -> None:
    """Training logs are read live (CloudWatch, localmaker); never leave a line in a buffer."""
    print(message, flush=True)


def load_inputs(env: TrainingEnvironment, hp: Hyperparameters) -> Dataset:
    """Both channels, validated and split into features/label (no TensorFlow needed)."""
    for channel in ("train", "validation"):
        check_content_type(channel, env.input_data_config)
    train_channel = load_channel("train", env.channel_dir("train"), hp.header)
    validation_channel = load_channel("validation", env.channel_dir("validation"), hp.header)
    return build_dataset(train_channel, validation_channel, hp.label)


def _schema_fingerprint(data: Dataset) -> list[float]:
    """Numbers that must agree on every host: column count, label position, names."""
    names = json.dumps([data.feature_names, data.label_name]).encode()
    return [float(data.n_features), float(data.label_index), float(zlib.crc32(names)), float(data.has_header)]


class _Trainer:
    """The distributed pieces of one training run, built inside the strategy's scope."""

    def __init__(
        self, cluster: distributed.Cluster, data: Dataset, hp: Hyperparameters, stats: Standardisation
    ):
        import keras
        import tensorflow as tf

        self.tf = tf
        self.cluster = cluster
        self.data = data
        strategy = cluster.strategy
        self.per_replica_batch = max(1, hp.batch_size // cluster.num_workers)
        self.global_batch = self.per_replica_batch * cluster.num_workers
        with strategy.scope():
            self.model = build_model(data.n_features, hp.hidden_units, hp.dropout, stats)
            self.optimizer = keras.optimizers.Adam(learning_rate=hp.learning_rate)
            self.optimizer.build(self.model.trainable_variables)

        x = data.x_train.astype(np.float32)
        y = data.y_train.astype(np.float32).reshape(-1, 1)
        shuffle_seed = hp.seed + cluster.worker_index
        per_replica_batch = self.per_replica_batch

        def dataset_fn(_context: Any) -> Any:
            # Each host already holds only its own shard (ShardedByS3Key), so no auto-sharding;
            # repeat() lets hosts with unequal shards run the same number of steps per epoch.
            ds = tf.data.Dataset.from_tensor_slices((x, y))
            ds = ds.shuffle(min(len(x), 100_000), seed=shuffle_seed, reshuffle_each_iteration=True)
            return ds.repeat().batch(per_replica_batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

        self.iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
        model, optimizer, global_batch = self.model, self.optimizer, self.global_batch

        def step_fn(xb: Any, yb: Any) -> Any:
            with tf.GradientTape() as tape:
                squared = tf.reduce_sum(tf.square(model(xb, training=True) - yb), axis=-1)
                loss = tf.nn.compute_average_loss(squared, global_batch_size=global_batch)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return tf.cast(tf.reduce_sum(squared), tf.float64)

        @tf.function
        def run_steps(iterator: Any, steps: Any) -> Any:
            total = tf.constant(0.0, tf.float64)
            for _ in tf.range(steps):
                xb, yb = next(iterator)
                per_replica = strategy.run(step_fn, args=(xb, yb))
                total += strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
            return total

        self._run_steps = run_steps
        self._forward = tf.function(
            lambda inputs: model(inputs, training=False),
            input_signature=[tf.TensorSpec([None, data.n_features], tf.float32)],
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Keras' own forward pass (inference mode) over ``x``, as float32."""
        return np.asarray(self._forward(np.asarray(x, dtype=np.float32)), dtype=np.float32).reshape(-1)

    def train_epoch(self, steps: int) -> float:
        """Mean squared error of the epoch's training batches (dropout active), all hosts."""
        total = float(self._run_steps(self.iterator, self.tf.constant(steps, self.tf.int64)))
        return total / (steps * self.global_batch)

    def validation_mse(self) -> float:
        """Exact MSE over every host's validation rows, with the current weights."""
        x, y = self.data.x_validation, self.data.y_validation
        sse = 0.0
        for start in range(0, len(x), EVAL_CHUNK_ROWS):
            chunk = x[start : start + EVAL_CHUNK_ROWS].astype(np.float32)
            pred = np.asarray(self._forward(chunk), dtype=np.float64).reshape(-1)
            sse += float(np.sum((pred - y[start : start + EVAL_CHUNK_ROWS]) ** 2))
        totals = self.cluster.all_sum([sse, float(len(x))])
        return float(totals[0] / totals[1])


def _fit(trainer: _Trainer, hp: Hyperparameters, steps: int, env: TrainingEnvironment) -> dict[str, Any]:
    """Epoch loop with early stopping on validation loss; leaves the best weights in the model."""
    best: dict[str, Any] = {"validation_loss": math.inf}
    best_weights = None
    history = []
    waited = 0
    epoch = 0
    for epoch in range(1, hp.epochs + 1):
        started = time.monotonic()
        train_loss = trainer.train_epoch(steps)
        validation_loss = trainer.validation_mse()
        if not (math.isfinite(train_loss) and math.isfinite(validation_loss)):
            raise ClientError(
                f"training diverged at epoch {epoch} (train loss {train_loss}, validation loss "
                f"{validation_loss}); lower learning_rate (now {hp.learning_rate:g}) or check the data"
            )
        history.append(
            {
                "epoch": epoch,
                "train:loss": train_loss,
                "validation:loss": validation_loss,
                "validation:rmse": math.sqrt(validation_loss),
                "seconds": round(time.monotonic() - started, 4),
            }
        )
        if env.is_chief:
            log(epoch_line(epoch, train_loss, validation_loss))
        else:
            log(f"{env.current_host}: epoch {epoch} done; the chief {env.hosts[0]} logs the metrics")
        if validation_loss < best["validation_loss"]:
            best = {"epoch": epoch, "train_loss": train_loss, "validation_loss": validation_loss}
            best_weights = trainer.model.get_weights()
            waited = 0
        else:
            waited += 1
            if hp.early_stopping_patience and waited >= hp.early_stopping_patience:
                if env.is_chief:
                    log(
                        f"early stopping after epoch {epoch}: validation loss has not improved for "
                        f"{waited} epochs; restoring the weights of epoch {best['epoch']}"
                    )
                break
    trainer.model.set_weights(best_weights)
    return {"best": best, "epochs_run": epoch, "history": history}


def _metadata(
    env: TrainingEnvironment,
    hp: Hyperparameters,
    data: Dataset,
    stats: Standardisation,
    counts: np.ndarray,
    result: dict[str, Any],
) -> dict[str, Any]:
    import keras
    import tensorflow as tf

    best = result["best"]
    return {
        "format_version": FORMAT_VERSION,
        "algorithm": "dnn-regressor",
        "algorithm_version": __version__,
        "model_file": MODEL_FILE,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "feature_names": data.feature_names,
        "n_features": data.n_features,
        "label": {"name": data.label_name, "column_index": data.label_index},
        "has_header": data.has_header,
        "normalization": stats.to_dict(),
        "metrics": {
            "train:loss": best["train_loss"],
            "validation:loss": best["validation_loss"],
            "validation:rmse": math.sqrt(best["validation_loss"]),
            "best_epoch": best["epoch"],
            "epochs_run": result["epochs_run"],
        },
        "hyperparameters": hp.to_dict(),
        "n_train": int(counts[0]),
        "n_validation": int(counts[1]),
        "hosts": env.hosts,
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
        },
    }


#: Probe rows for the exported forward pass: spread over +-3 std, plus real rows of each channel.
PROBE_ROWS = 256


def _probe(trainer: _Trainer, stats: Standardisation) -> np.ndarray:
    data = trainer.data
    synthetic = probe_rows(stats.feature_mean, stats.feature_std, data.n_features, PROBE_ROWS)
    real = [data.x_train[:PROBE_ROWS], data.x_validation[:PROBE_ROWS]]
    return np.concatenate([synthetic, *(np.asarray(r, dtype=np.float32) for r in real)])


def _save(
    trainer: _Trainer,
    metadata: dict[str, Any],
    env: TrainingEnvironment,
    history: list[dict[str, Any]],
    stats: Standardisation,
) -> None:
    """Only the chief's copy is the model; other workers save to a scratch dir and drop it.

    Every worker saves because TensorFlow's multi-worker saving may read variables
    collectively; writing all copies to one place would let workers overwrite each other. The
    chief also exports the numpy inference form and checks it against Keras on probe rows.
    """
    if env.is_chief:
        probe = _probe(trainer, stats)
        reference = trainer.predict(probe)
        summary: dict[str, Any] = {}

        def export(directory: Path) -> dict[str, Any]:
            summary.update(export_inference(trainer.model, directory, probe, reference))
            return summary

        save_model(trainer.model, metadata, env.model_dir, export=export)
        metadata["inference"] = summary
        log(
            f"exported the numpy inference form ({summary['file']}, {summary['arrays_file']}): it matches "
            f"Keras on {summary['probe_rows']} probe rows (max difference {summary['max_abs_diff_vs_keras']:.3g})"
        )
        env.output_data_dir.mkdir(parents=True, exist_ok=True)
        (env.output_data_dir / "history.json").write_text(
            json.dumps(history, indent=2) + "\n", encoding="utf-8"
        )
        # no local path: it means nothing outside this host (SageMaker's /opt/ml/model, localmaker's home)
        files = ", ".join(sorted(f.name for f in env.model_dir.iterdir()))
        log(f"saved the model ({files}): SageMaker uploads it as model.tar.gz to the job's S3 output path")
        return
    scratch = tempfile.mkdtemp(prefix=f"dnn-regressor-{env.current_host}-")
    try:
        save_model(trainer.model, metadata, Path(scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def train(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run one host's part of a training job; returns the metadata written by the chief."""
    environ = os.environ if environ is None else environ
    env = TrainingEnvironment.from_env(environ)
    hp = parse_hyperparameters(env.hyperparameters)
    data = load_inputs(env, hp)
    log(
        f"{env.current_host}: {len(data.x_train)} train rows ({len(data.train_files)} files), "
        f"{len(data.x_validation)} validation rows ({len(data.validation_files)} files), "
        f"{data.n_features} features, label '{data.label_name}' (column {data.label_index}), "
        f"hosts {env.hosts}"
    )

    def _startup_timeout(reason: str) -> None:
        write_failure(env.failure_file, f"AlgorithmError: {reason}")
        print(reason, file=sys.stderr, flush=True)
        os._exit(1)

    environ = {**env.environ, "_DNN_REGRESSOR_FAILURE_FILE": str(env.failure_file)}
    cluster = distributed.connect(env.hosts, env.current_host, environ, _startup_timeout)
    if cluster.num_workers > 1 and not cluster.all_equal(_schema_fingerprint(data)):
        raise ClientError(
            f"the hosts' data do not have the same columns (count, names, order or label position); "
            f"every shard of 'train' and 'validation' needs identical columns (this host {env.current_host} "
            f"has {data.n_features} features {data.feature_names[:10]} and label '{data.label_name}')"
        )
    import keras

    keras.utils.set_random_seed(hp.seed)
    stats = fit_standardisation(data.x_train, data.y_train, cluster.all_sum)
    counts = cluster.all_sum([float(len(data.x_train)), float(len(data.x_validation))])
    trainer = _Trainer(cluster, data, hp, stats)
    steps = max(1, math.ceil(counts[0] / trainer.global_batch))
    if env.is_chief:
        log(
            f"training on {int(counts[0])} rows across {cluster.num_workers} host(s): {steps} steps of "
            f"{trainer.global_batch} rows per epoch, up to {hp.epochs} epochs, hidden_units={list(hp.hidden_units)}"
        )
    result = _fit(trainer, hp, steps, env)
    metadata = _metadata(env, hp, data, stats, counts, result)
    best = result["best"]
    _save(trainer, metadata, env, result["history"], stats)
    if env.is_chief:
        log(summary_line(best["epoch"], result["epochs_run"], best["train_loss"], best["validation_loss"]))
    return metadata


def main() -> int:
    """Entry point of the ``train`` program: exit 0, or write the failure file and exit 1."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    try:
        train()
    except Exception as exc:
        traceback.print_exc()
        reason = failure_reason(exc)
        write_failure(failure_file(os.environ), reason)
        print(reason, file=sys.stderr, flush=True)
        return 1
    return 0
