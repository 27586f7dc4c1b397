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
"""

from __future__ import annotations

import csv
import json
import math
import os
import pickle
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from localmaker.builtins.runtime import ClientError, TrainingEnv, log, main
from localmaker.builtins.serving import HttpError, media_type

MODEL_NAME = "xgboost-model"

# sagemaker_xgboost_container/constants/xgb_constants.py
XGB_MAXIMIZE_METRICS = [
    "accuracy", "auc", "aucpr", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "map", "ndcg",
    "precision", "r2", "recall", "precision_macro", "precision_micro", "recall_macro", "recall_micro",
]
XGB_MINIMIZE_METRICS = [
    "aft-nloglik", "cox-nloglik", "error", "gamma-deviance", "gamma-nloglik", "interval-regression-accuracy",
    "logloss", "mae", "mape", "merror", "mlogloss", "mphe", "mse", "poisson-nloglik", "rmse", "rmsle",
    "tweedie-nloglik",
]
#: xgboost messages the real image reports as the user's fault (ClientError), not an algorithm error
CUSTOMER_ERRORS = [
    "label must be in [0,1] for logistic regression",
    "label must be in [0, num_class)",
    "Target is multiclass but average='binary'",
    "feature_names mismatch",
    "Check failed: preds.size() == info.labels_.size()",
    "Check failed: !auc_error AUC: the dataset only contains pos or neg samples",
    "base_score must be in (0,1)",
    "label must be nonnegative",
    "Parameter reg_lambda should be greater equal to 0",
    # the same checks in XGBoost 3's words
    "for logistic regression",
    "label must be discrete values in the range of [0, num_class)",
    "label must be non-negative",
    "Invalid Input",
    "Invalid Parameter",
]
OBJECTIVES = [
    "binary:logistic", "binary:logitraw", "binary:hinge", "count:poisson", "multi:softmax", "multi:softprob",
    "rank:pairwise", "rank:ndcg", "rank:map", "reg:linear", "reg:squarederror", "reg:logistic", "reg:gamma",
    "reg:pseudohubererror", "reg:squaredlogerror", "reg:absoluteerror", "reg:tweedie", "survival:aft",
    "survival:cox",
]
#: parameters of XGBoost 1.x that XGBoost 3 dropped: accepted (the real image validates them) and ignored
#: metrics the container computes itself (custom_metrics.py); everything else is XGBoost's own
CUSTOM_METRICS = ("accuracy", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "precision", "precision_macro",
                  "precision_micro", "recall", "recall_macro", "recall_micro", "mse", "r2")
REMOVED_PARAMS = ("predictor", "sketch_eps", "dsplit", "lambda_bias", "single_precision_histogram",
                  "deterministic_histogram", "prob_buffer_row")


# ---- hyperparameters: the sagemaker_algorithm_toolkit rules and wording ------------------------------
@dataclass(frozen=True)
class Interval:
    """A numeric range printed like the toolkit's (``[1, +inf)``, ``(0, 1]``)."""

    min_open: float | None = None
    min_closed: float | None = None
    max_open: float | None = None
    max_closed: float | None = None

    def __contains__(self, value: Any) -> bool:
        return not ((self.min_open is not None and value <= self.min_open)
                    or (self.min_closed is not None and value < self.min_closed)
                    or (self.max_open is not None and value >= self.max_open)
                    or (self.max_closed is not None and value > self.max_closed))

    def __str__(self) -> str:
        lo = (f"({self.min_open}, " if self.min_open is not None
              else f"[{self.min_closed}, " if self.min_closed is not None else "(-inf, ")
        hi = (f"{self.max_open})" if self.max_open is not None
              else f"{self.max_closed}]" if self.max_closed is not None else "+inf)")
        return lo + hi


class Choices:
    """A categorical range whose membership test may raise the real image's specific errors."""

    def __init__(self, values: Sequence[Any], check: Callable[[Sequence[Any], Any], bool] | None = None) -> None:
        self.values = list(values)
        self.check = check

    def __contains__(self, value: Any) -> bool:
        return self.check(self.values, value) if self.check else value in self.values

    def __str__(self) -> str:
        return str(self.values)


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    kind: str  # int | float | cat | list | tuple | nested
    range: Any = None
    required: bool = False
    depends: tuple[str, ...] = ()


def _eval_metric_in_range(supported: Sequence[str], metric: str) -> bool:
    if "<function" in metric:
        raise ClientError(f"User defined evaluation metric {metric} is not supported yet.")
    if "@" in metric:
        name, threshold = (p.strip() for p in metric.split("@", 1))
        if name not in ("error", "ndcg", "map"):
            raise ClientError(f"Metric '{metric}' is not supported. Parameter 'eval_metric' with customized threshold "
                              "should be one of these options: 'error', 'ndcg', 'map'.")
        try:
            float(threshold.rstrip("-"))
        except ValueError:
            raise ClientError(f"Threshold value 't' in '{name}@t' expects float input.") from None
        return True
    return metric in supported


_TREE_METHODS = Choices(["auto", "exact", "approx", "hist", "gpu_hist"])
HYPERPARAMETERS: list[Hyperparameter] = [
    Hyperparameter("num_round", "int", Interval(min_closed=1), required=True),
    Hyperparameter("csv_weights", "int", Interval(min_closed=0, max_closed=1)),
    Hyperparameter("early_stopping_rounds", "int", Interval(min_closed=1)),
    Hyperparameter("booster", "cat", Choices(["gbtree", "gblinear", "dart"])),
    Hyperparameter("verbosity", "int", Interval(min_closed=0, max_closed=3)),
    Hyperparameter("nthread", "int", Interval(min_closed=1)),
    Hyperparameter("eta", "float", Interval(min_closed=0, max_closed=1)),
    Hyperparameter("gamma", "float", Interval(min_closed=0)),
    Hyperparameter("max_depth", "int", Interval(min_closed=0)),
    Hyperparameter("min_child_weight", "float", Interval(min_closed=0)),
    Hyperparameter("max_delta_step", "float", Interval(min_closed=0)),
    Hyperparameter("subsample", "float", Interval(min_open=0, max_closed=1)),
    Hyperparameter("colsample_bytree", "float", Interval(min_open=0, max_closed=1)),
    Hyperparameter("colsample_bylevel", "float", Interval(min_open=0, max_closed=1)),
    Hyperparameter("colsample_bynode", "float", Interval(min_open=0, max_closed=1)),
    Hyperparameter("lambda", "float", Interval(min_closed=0)),
    Hyperparameter("alpha", "float", Interval(min_closed=0)),
    Hyperparameter("tree_method", "cat", _TREE_METHODS),
    Hyperparameter("sketch_eps", "float", Interval(min_open=0, max_open=1)),
    Hyperparameter("scale_pos_weight", "float", Interval(min_open=0)),
    Hyperparameter("updater", "list", Choices(["grow_colmaker", "distcol", "grow_histmaker", "grow_local_histmaker",
                                               "grow_skmaker", "sync", "refresh", "prune", "shotgun",
                                               "coord_descent", "grow_quantile_histmaker"]),
                   depends=("booster", "process_type")),
    Hyperparameter("dsplit", "cat", Choices(["row", "col"])),
    Hyperparameter("refresh_leaf", "int", Interval(min_closed=0, max_closed=1)),
    Hyperparameter("process_type", "cat", Choices(["default", "update"])),
    Hyperparameter("grow_policy", "cat", Choices(["depthwise", "lossguide"])),
    Hyperparameter("max_leaves", "int", Interval(min_closed=0)),
    Hyperparameter("max_bin", "int", Interval(min_closed=0)),
    Hyperparameter("predictor", "cat", Choices(["auto", "cpu_predictor", "gpu_predictor"])),
    Hyperparameter("monotone_constraints", "tuple", Choices([-1, 0, 1]), depends=("tree_method",)),
    Hyperparameter("interaction_constraints", "nested", Interval(min_closed=1), depends=("tree_method",)),
    Hyperparameter("sample_type", "cat", Choices(["uniform", "weighted"])),
    Hyperparameter("normalize_type", "cat", Choices(["tree", "forest"])),
    Hyperparameter("rate_drop", "float", Interval(min_closed=0, max_closed=1)),
    Hyperparameter("one_drop", "int", Interval(min_closed=0, max_closed=1)),
    Hyperparameter("skip_drop", "float", Interval(min_closed=0, max_closed=1)),
    Hyperparameter("lambda_bias", "float", Interval(min_closed=0, max_closed=1)),
    Hyperparameter("tweedie_variance_power", "float", Interval(min_open=1, max_open=2)),
    Hyperparameter("objective", "cat", Choices(OBJECTIVES), depends=("num_class",)),
    Hyperparameter("num_class", "int", Interval(min_closed=2)),
    Hyperparameter("base_score", "float", Interval(min_closed=0)),
    Hyperparameter("_tuning_objective_metric", "cat",
                   Choices([f"validation:{m}" for m in XGB_MAXIMIZE_METRICS + XGB_MINIMIZE_METRICS])),
    Hyperparameter("eval_metric", "list", Choices(XGB_MAXIMIZE_METRICS + XGB_MINIMIZE_METRICS, _eval_metric_in_range),
                   depends=("objective",)),
    Hyperparameter("seed", "int", Interval(min_open=-(2**31), max_open=2**31 - 1)),
    Hyperparameter("num_parallel_tree", "int", Interval(min_closed=1)),
    Hyperparameter("save_model_on_termination", "cat", Choices(["true", "false"])),
    Hyperparameter("aft_loss_distribution", "cat", Choices(["normal", "logistic", "extreme"])),
    Hyperparameter("aft_loss_distribution_scale", "float", Interval(min_closed=0)),
    Hyperparameter("single_precision_histogram", "cat", Choices(["true", "false"])),
    Hyperparameter("deterministic_histogram", "cat", Choices(["true", "false"])),
    Hyperparameter("sampling_method", "cat", Choices(["uniform", "gradient_based"])),
    Hyperparameter("prob_buffer_row", "int", Interval(min_open=1.0)),
    Hyperparameter("max_cat_to_onehot", "int", Interval(min_closed=1)),
    Hyperparameter("use_dask_gpu_training", "cat", Choices(["true", "false"])),
]
ALIASES = {"learning_rate": "eta", "min_split_loss": "gamma", "reg_lambda": "lambda", "reg_alpha": "alpha"}
_BY_NAME = {hp.name: hp for hp in HYPERPARAMETERS}


def _parse_value(hp: Hyperparameter, value: Any) -> Any:
    import ast

    text = str(value)
    if hp.kind == "int":
        return int(text)
    if hp.kind == "float":
        return float(text)
    if hp.kind == "list":
        return text.split(",")
    if hp.kind == "tuple":
        parsed = ast.literal_eval(text)
        return tuple(parsed) if isinstance(parsed, (list, tuple)) else (parsed,)
    if hp.kind == "nested":
        parsed = ast.literal_eval(text)
        if not isinstance(parsed, list) or not all(isinstance(x, list) for x in parsed):
            raise ValueError("expected a list of lists")
        return parsed
    return text


def _check_range(hp: Hyperparameter, value: Any) -> None:
    if hp.kind == "list":
        if any(v not in hp.range for v in value):
            raise ClientError(f"Hyperparameter {hp.name}: value {value} not in range {hp.range}")
    elif hp.kind in ("tuple", "nested"):
        flat = [e for outer in value for e in outer] if hp.kind == "nested" else list(value)
        if any(e not in hp.range for e in flat):
            raise ClientError(f"Hyperparameter {hp.name}: value {value} not in range {hp.range}")
    elif value not in hp.range:
        raise ClientError(f"Hyperparameter {hp.name}: {value} is not in {hp.range}")


def _check_dependencies(name: str, value: Any, hps: Mapping[str, Any]) -> None:
    if name == "objective" and value in ("multi:softmax", "multi:softprob") and hps.get("num_class") is None:
        raise ClientError("Require input for parameter 'num_class' for multi-classification")
    if name == "eval_metric":
        objective = hps.get("objective", "reg:squarederror")
        if "auc" in value and not objective.startswith(("binary:", "rank:")):
            raise ClientError("Metric 'auc' can only be applied for classification and ranking problems.")
        if "aft-nloglik" in value and objective != "survival:aft":
            raise ClientError("Metric 'aft-nloglik' can only be applied for 'survival:aft' objective.")
    if name == "monotone_constraints" and hps.get("tree_method") not in ("exact", "hist"):
        raise ClientError("monotone_constraints can be used only when the tree_method parameter is set to "
                          "either 'exact' or 'hist'.")
    if name == "interaction_constraints" and hps.get("tree_method") not in ("exact", "hist", "approx"):
        raise ClientError("interaction_constraints can be used only when the tree_method parameter is set to "
                          "either 'exact', 'hist' or 'approx'.")
    if name == "updater":
        if hps.get("booster") == "gblinear":
            if not (len(value) == 1 and value[0] in ("shotgun", "coord_descent")):
                raise ClientError("Linear updater should be one of these options: 'shotgun', 'coord_descent'.")
        elif hps.get("process_type") == "update":
            if not all(x in ("refresh", "prune") for x in value):
                raise ClientError("process_type 'update' can only be used with updater 'refresh' and 'prune'")


def validate_hyperparameters(given: Mapping[str, str]) -> dict[str, Any]:
    """The toolkit's ``Hyperparameters.validate``: required, then names and parsing in the user's order,
    then ranges, then dependencies - so the first error a user sees is the real image's first error."""
    for hp in HYPERPARAMETERS:
        if hp.required and hp.name not in given:
            raise ClientError(f"Missing required hyperparameter: {hp.name}")
    parsed: dict[str, Any] = {}
    for name, value in given.items():
        hp = _BY_NAME.get(ALIASES.get(name, name))
        if hp is None:
            raise ClientError(f"Extraneous hyperparameter found: {name}")
        try:
            parsed[name] = _parse_value(hp, value)
        except (ValueError, SyntaxError) as exc:
            raise ClientError(f"Hyperparameter {name}: could not parse value (caused by {type(exc).__name__})") from None
    for name, value in parsed.items():
        _check_range(_BY_NAME[ALIASES.get(name, name)], value)
    for name, value in parsed.items():
        _check_dependencies(ALIASES.get(name, name), value, parsed)
    return parsed


# ---- channels and data -----------------------------------------------------------------------------------
CSV, LIBSVM, PARQUET, RECORDIO_PROTOBUF = "csv", "libsvm", "parquet", "recordio-protobuf"
VALID_CONTENT_TYPES = [CSV, LIBSVM, PARQUET, RECORDIO_PROTOBUF, "text/csv", "text/libsvm", "text/x-libsvm",
                       "application/x-parquet", "application/x-recordio-protobuf"]


def get_content_type(content_type: str | None) -> str:
    """ContentType -> ``csv`` / ``libsvm`` / ``parquet`` / ``recordio-protobuf`` (missing means LIBSVM,
    as in the real image); ``label_size`` other than 1 and unknown types are the user's error."""
    if not content_type:
        return LIBSVM
    parts = [p.strip() for p in content_type.lower().split(";")]
    base, params = parts[0], {}
    for p in parts[1:]:
        if p:
            k, _, v = p.partition("=")
            params[k.strip()] = v.strip()
    if base in (CSV, "text/csv"):
        if "label_size" in params and params["label_size"] != "1":
            raise ClientError(f"{content_type} is not an accepted csv ContentType. "
                              "Optional parameter label_size must be equal to 1")
        return CSV
    if base in (LIBSVM, "text/libsvm", "text/x-libsvm"):
        return LIBSVM
    if base in (PARQUET, "application/x-parquet"):
        return PARQUET
    if base in (RECORDIO_PROTOBUF, "application/x-recordio-protobuf"):
        return RECORDIO_PROTOBUF
    raise ClientError(f"{content_type} is not an accepted ContentType: {', '.join(VALID_CONTENT_TYPES)}.")


def validate_channels(channels: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Channel names as the real image's CreateAlgorithm spec: train (required), validation, code."""
    if "train" not in channels:
        raise ClientError("Missing required channel: train")
    out = {}
    for name, cfg in channels.items():
        if name not in ("train", "validation", "code"):
            raise ClientError(f"Extraneous channel found: {name}")
        cfg = dict(cfg)
        if not cfg.get("ContentType"):
            cfg["ContentType"] = "text/libsvm"
        if name != "code":
            get_content_type(cfg["ContentType"])
        out[name] = cfg
    return out


def data_files(root: Path) -> list[Path]:
    """The channel's data files: not hidden, not ``_SUCCESS``-style markers, not xgboost caches."""
    if not root.exists():
        return []
    if root.is_file():
        return [root]
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).parts
        if not p.is_file() or any(part.startswith((".", "_")) for part in rel):
            continue
        if ".cache" in p.name and ("dtrain" in p.name or "dval" in p.name):
            continue
        out.append(p)
    return out


@dataclass
class Dataset:
    """Features (dense ndarray or scipy CSR), labels and optional instance weights of one channel."""

    features: Any
    labels: np.ndarray
    weights: np.ndarray | None = None

    @property
    def num_col(self) -> int:
        return int(self.features.shape[1])

    @property
    def num_row(self) -> int:
        return int(self.features.shape[0])


def csv_delimiter(line: str) -> str:
    """The delimiter of a CSV line as the real image finds it (``csv.Sniffer``); one column -> ``,``."""
    try:
        return csv.Sniffer().sniff(line, delimiters=",\t;| ").delimiter
    except csv.Error as exc:
        if not any(d in line.strip() for d in ",\t;|"):
            return ","
        raise ClientError(f"Could not determine delimiter on line {line[:50]}:\n{exc}") from None


def parse_csv_rows(text: str, delimiter: str, where: str) -> list[list[float]]:
    """Numbers per row; an empty cell is a missing value (NaN), as XGBoost reads CSV."""
    rows: list[list[float]] = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        row = []
        for j, cell in enumerate(line.rstrip("\r").split(delimiter), start=1):
            cell = cell.strip()
            try:
                row.append(float(cell) if cell else math.nan)
            except ValueError:
                raise ClientError(f"Failed to load csv data with exception:\n{where} line {i}, column {j}: "
                                  f"{cell[:40]!r} is not a number (CSV input has no header row and only "
                                  "numeric columns)") from None
        if rows and len(row) != len(rows[0]):
            raise ClientError(f"Failed to load csv data with exception:\n{where} line {i} has {len(row)} columns, "
                              f"the first line has {len(rows[0])}")
        rows.append(row)
    return rows


def load_csv(files: Sequence[Path], csv_weights: int = 0) -> Dataset | None:
    """Label in column 0 (weight in column 1 with ``csv_weights=1``), features after."""
    if not files:
        return None
    first = files[0].read_text(errors="replace").split("\n", 1)[0]
    delimiter = csv_delimiter(first)
    rows: list[list[float]] = []
    for f in files:
        part = parse_csv_rows(f.read_text(errors="replace"), delimiter, f.name)
        if rows and part and len(part[0]) != len(rows[0]):
            raise ClientError(f"Failed to load csv data with exception:\n{f.name} has {len(part[0])} columns, "
                              f"{files[0].name} has {len(rows[0])}")
        rows += part
    if not rows:
        return None
    data = np.asarray(rows, dtype=np.float32)
    skip = 2 if csv_weights == 1 else 1
    if data.shape[1] <= skip:
        raise ClientError(f"Failed to load csv data with exception:\nthe CSV rows have {data.shape[1]} column(s) "
                          "and no feature columns after the label")
    return Dataset(data[:, skip:], data[:, 0], data[:, 1] if csv_weights == 1 else None)


def parse_libsvm(text: str, where: str, with_labels: bool = True) -> tuple[list[float], list[float | None], list[int],
                                                                         list[int], list[float]]:
    """``<label>[:<weight>] <index>:<value> ...`` lines -> labels, weights, CSR row ptr, indices, values."""
    labels: list[float] = []
    weights: list[float | None] = []
    indptr, indices, values = [0], [], []
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        tokens = line.split()
        try:
            if with_labels:
                head = tokens.pop(0).split(":")
                if len(head) > 2:
                    raise ValueError
                labels.append(float(head[0]))
                weights.append(float(head[1]) if len(head) == 2 else None)
            for tok in tokens:
                k, sep, v = tok.partition(":")
                if not sep:
                    raise ValueError
                if k == "qid":
                    continue
                idx = int(k)
                if idx < 0:
                    raise ValueError
                indices.append(idx)
                values.append(float(v))
        except (ValueError, IndexError):
            which = "First line" if n == 1 else f"Line {n}"
            raise ClientError(f"{which} '{line[:50]}...' of file '{where}' is not 'LIBSVM' format. "
                              "Please ensure the file is in 'LIBSVM' format.") from None
        indptr.append(len(indices))
    return labels, weights, indptr, indices, values


def load_libsvm(files: Sequence[Path]) -> Dataset | None:
    from scipy.sparse import csr_matrix

    labels: list[float] = []
    weights: list[float | None] = []
    indptr, indices, values = [0], [], []
    for f in files:
        lab, w, ptr, idx, val = parse_libsvm(f.read_text(errors="replace"), f.name)
        base = indptr[-1]
        labels += lab
        weights += w
        indptr += [base + p for p in ptr[1:]]
        indices += idx
        values += val
    if not labels:
        return None
    ncol = (max(indices) + 1) if indices else 1
    matrix = csr_matrix((np.asarray(values, dtype=np.float32), np.asarray(indices), np.asarray(indptr)),
                        shape=(len(labels), ncol))
    has_w = any(x is not None for x in weights)
    w_arr = np.asarray([1.0 if x is None else x for x in weights], dtype=np.float32) if has_w else None
    return Dataset(matrix, np.asarray(labels, dtype=np.float32), w_arr)


def load_parquet(files: Sequence[Path]) -> Dataset | None:
    import pandas as pd

    frames = []
    for f in files:
        try:
            frames.append(pd.read_parquet(f))
        except Exception as exc:  # noqa: BLE001 - any reader error is a data problem, named with the file
            raise ClientError(f"Failed to load parquet data with exception:\n{f.name}: {exc}") from None
    if not frames:
        return None
    try:
        data = np.vstack([fr.to_numpy(dtype=np.float32) for fr in frames])
    except (ValueError, TypeError) as exc:
        raise ClientError(f"Failed to load parquet data with exception:\n{exc}") from None
    if data.shape[0] == 0:
        return None
    return Dataset(data[:, 1:], data[:, 0])


def load_recordio(files: Sequence[Path]) -> Dataset | None:
    from smformats.recordio import RecordIOError, read_recordio_protobuf

    feats: list[tuple[float, ...]] = []
    labels: list[float] = []
    for f in files:
        try:
            with f.open("rb") as fh:
                for i, rec in enumerate(read_recordio_protobuf(fh)):
                    if not rec.label:
                        raise ClientError(f"Failed to load recordio-protobuf data: record {i} of {f.name} "
                                          "has no label")
                    feats.append(rec.features)
                    labels.append(rec.label[0])
        except RecordIOError as exc:
            raise ClientError(f"Failed to load recordio-protobuf data with exception:\n{f.name}: {exc}") from None
    if not feats:
        return None
    width = len(feats[0])
    if any(len(x) != width for x in feats):
        raise ClientError("Failed to load recordio-protobuf data: records have different feature counts")
    return Dataset(np.asarray(feats, dtype=np.float32), np.asarray(labels, dtype=np.float32))


def load_channel(root: Path, file_type: str, csv_weights: int = 0) -> Dataset | None:
    files = data_files(root)
    if file_type == CSV:
        return load_csv(files, csv_weights)
    if file_type == LIBSVM:
        return load_libsvm(files)
    if file_type == PARQUET:
        return load_parquet(files)
    return load_recordio(files)


def to_dmatrix(ds: Dataset, num_col: int) -> Any:
    """A DMatrix of ``num_col`` columns (LIBSVM channels may reach different maximum indices)."""
    import xgboost as xgb

    feats = ds.features
    if feats.shape[1] < num_col:
        if hasattr(feats, "tocsr"):
            from scipy.sparse import csr_matrix

            feats = csr_matrix((feats.data, feats.indices, feats.indptr), shape=(feats.shape[0], num_col))
        else:
            raise ClientError(f"The validation data has {feats.shape[1]} features, the training data {num_col}.")
    return xgb.DMatrix(feats, label=ds.labels, weight=ds.weights, missing=np.nan)


# ---- metrics ------------------------------------------------------------------------------------------------
def _class_labels(preds: np.ndarray, objective: str) -> np.ndarray:
    """Predicted classes from what XGBoost hands a custom metric (transformed predictions)."""
    if preds.ndim == 2:
        return np.argmax(preds, axis=1)
    if objective in ("binary:logistic", "reg:logistic"):
        return (preds > 0.5).astype(int)
    if objective == "binary:logitraw":
        return (preds > 0.0).astype(int)
    return np.rint(preds).astype(int)


def custom_metric_fns(objective: str) -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    """The container-defined metrics (sagemaker_xgboost_container/metrics/custom_metrics.py)."""
    from sklearn import metrics as m

    def cls(fn: Callable[..., float], **kw: Any) -> Callable[[np.ndarray, np.ndarray], float]:
        return lambda preds, y: float(fn(y, _class_labels(preds, objective), **kw)) if preds.size else 0.0

    return {
        "accuracy": cls(m.accuracy_score),
        "balanced_accuracy": cls(m.balanced_accuracy_score),
        "f1": cls(m.f1_score, average="macro"),
        "f1_binary": cls(m.f1_score, average="binary"),
        "f1_macro": cls(m.f1_score, average="macro"),
        "precision": cls(m.precision_score, zero_division=0),
        "precision_macro": cls(m.precision_score, average="macro", zero_division=0),
        "precision_micro": cls(m.precision_score, average="micro", zero_division=0),
        "recall": cls(m.recall_score, zero_division=0),
        "recall_macro": cls(m.recall_score, average="macro", zero_division=0),
        "recall_micro": cls(m.recall_score, average="micro", zero_division=0),
        "mse": lambda preds, y: float(m.mean_squared_error(y, preds)),
        "r2": lambda preds, y: float(m.r2_score(y, preds)),
    }


def eval_metrics(tuning_objective: str | None, eval_metric: list[str] | None
                 ) -> tuple[list[str] | None, list[str], list[str] | None]:
    """(native xgboost eval_metric list, container-computed metric names, tuning metric) as
    train_utils.get_eval_metrics_and_feval: the tuning objective's metric is always evaluated."""
    tuning = tuning_objective.split(":", 1)[1].split(",") if tuning_objective else None
    if tuning is None and eval_metric is None:
        return None, [], None
    union = sorted(set(tuning or []) | set(eval_metric or [])) if tuning and eval_metric else (tuning or eval_metric)
    assert union is not None
    custom = [x for x in union if x in CUSTOM_METRICS]
    native = [x for x in union if x not in CUSTOM_METRICS]
    return native, custom, tuning


def early_stopping_metric(tuning: list[str] | None, eval_metric: list[str] | None) -> str | None:
    """The real image stops on the tuning objective's metric, else the last ``eval_metric``; with
    neither, XGBoost's own rule (the last metric evaluated) applies."""
    if tuning:
        return tuning[-1]
    if eval_metric:
        return eval_metric[-1]
    return None


def is_maximize(metric: str | None) -> bool | None:
    if metric is None:
        return None
    return metric.split("@")[0] in XGB_MAXIMIZE_METRICS


def format_eval_line(epoch: int, evals_log: Mapping[str, Mapping[str, Sequence[Any]]]) -> str:
    """``[3]#011train-rmse:51.23456#011validation-rmse:58.10000``: XGBoost's EvaluationMonitor line
    (``%.5f`` scores) with the tab as CloudWatch shows it, which the metric regexes expect."""
    parts = [f"[{epoch}]"]
    for data, metrics in evals_log.items():
        for name, hist in metrics.items():
            score = hist[-1]
            if isinstance(score, tuple):
                score = score[0]
            parts.append(f"#011{data}-{name}:{score:.5f}")
    return "".join(parts)


# ---- training ------------------------------------------------------------------------------------------------
def xgb_params(hps: Mapping[str, Any]) -> dict[str, Any]:
    """Validated hyperparameters -> xgb.train params (container-only names removed, 1.x leftovers mapped)."""
    params: dict[str, Any] = {}
    for name, value in hps.items():
        if name in ("num_round", "early_stopping_rounds", "csv_weights", "save_model_on_termination",
                    "_tuning_objective_metric", "use_dask_gpu_training", "eval_metric"):
            continue
        if name in REMOVED_PARAMS:
            log(f"[localmaker] hyperparameter {name}={value} has no effect in XGBoost 3 and is ignored")
            continue
        if name == "tree_method" and value == "gpu_hist":
            log("[localmaker] tree_method gpu_hist: no GPU on this host, training with tree_method hist")
            value = "hist"
        if name == "objective" and value == "reg:linear":
            value = "reg:squarederror"  # XGBoost's own rename of the deprecated objective
        if name == "updater":
            value = ",".join(value)
        if name == "monotone_constraints":
            value = "(" + ",".join(str(int(v)) for v in value) + ")"
        params[name] = value
    return params


def train(env: TrainingEnv) -> None:
    import xgboost as xgb

    hps = validate_hyperparameters(env.hyperparameters)
    channels = validate_channels(env.channels)
    if hps.get("use_dask_gpu_training") == "true":
        raise ClientError("Some configurations unsuitable for Dask GPU training were found: No GPUs were found "
                          "on the instance (localmaker runs XGBoost on CPU); remove use_dask_gpu_training.")
    file_type = get_content_type(channels["train"].get("ContentType"))
    if len(env.hosts) > 1:
        sharded = [n for n, c in channels.items() if c.get("S3DistributionType") == "ShardedByS3Key"]
        if sharded:
            raise ClientError(f"localmaker trains the built-in XGBoost on one instance; channels {sharded} are "
                              "ShardedByS3Key over several instances. Use FullyReplicated or InstanceCount 1.")
        if not env.is_leader:
            log(f"Host {env.current_host}: the data is fully replicated; {sorted(env.hosts)[0]} trains the model.")
            return
        log(f"Distributed node training with {len(env.hosts)} hosts: {env.hosts} (fully replicated data: "
            "trained on the leader)")
    csv_weights = int(hps.get("csv_weights", 0) or 0)
    train_path = env.channel_dir("train")
    val_path = env.channel_dir("validation") if "validation" in channels else None
    train_ds = load_channel(train_path, file_type, csv_weights)
    if train_ds is None:
        raise ClientError(f"No data in training channel path {train_path}")
    val_ds = load_channel(val_path, file_type, csv_weights) if val_path is not None else None
    if val_path is not None and val_ds is None:
        raise ClientError(f"No data in validation channel path {val_path}")
    num_col = max(train_ds.num_col, val_ds.num_col if val_ds else 0)
    if val_ds is not None and file_type != LIBSVM and val_ds.num_col != train_ds.num_col:
        raise ClientError(f"The validation data has {val_ds.num_col} features, the training data "
                          f"{train_ds.num_col}; both channels need the same columns.")
    dtrain = to_dmatrix(train_ds, num_col)
    dval = to_dmatrix(val_ds, num_col) if val_ds else None
    log("Single node training.")
    log(f"Train matrix has {dtrain.num_row()} rows and {dtrain.num_col()} columns")
    if dval is not None:
        log(f"Validation matrix has {dval.num_row()} rows")

    params = xgb_params(hps)
    objective = str(params.get("objective", "reg:squarederror"))
    native, custom, tuning = eval_metrics(hps.get("_tuning_objective_metric"), hps.get("eval_metric"))
    if native:
        params["eval_metric"] = native
    if tuning:
        log(f"Setting up HPO optimized metric to be : {','.join(tuning)}")
    fns = custom_metric_fns(objective) if custom else {}

    def custom_metric(preds: np.ndarray, dmat: Any) -> list[tuple[str, float]]:
        y = dmat.get_label()
        return [(name, fns[name](preds, y)) for name in custom]

    callbacks: list[Any] = [evaluation_monitor()]
    rounds = hps.get("early_stopping_rounds")
    if rounds and dval is not None:
        metric = early_stopping_metric(tuning, hps.get("eval_metric"))
        callbacks.append(xgb.callback.EarlyStopping(rounds=rounds, data_name="validation", metric_name=metric,
                                                    maximize=is_maximize(metric), save_best=True))
    evals = [(dtrain, "train")] + ([(dval, "validation")] if dval is not None else [])
    try:
        bst = xgb.train(params, dtrain, num_boost_round=hps["num_round"], evals=evals,
                        custom_metric=custom_metric if custom else None, callbacks=callbacks, verbose_eval=False)
    except xgb.core.XGBoostError as exc:
        text = str(exc)
        if any(msg in text for msg in CUSTOMER_ERRORS):
            raise ClientError(text.strip().splitlines()[0]) from None  # the message, not libxgboost's stack trace
        raise RuntimeError(f"XGB train call failed with exception:\n {text}") from None
    if rounds and dval is not None and bst.num_boosted_rounds() < hps["num_round"]:
        log(f"Stopping. Best iteration: [{bst.best_iteration}] (the model keeps {bst.num_boosted_rounds()} rounds)")
    env.model_dir.mkdir(parents=True, exist_ok=True)
    path = env.model_dir / MODEL_NAME
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bst.save_model(str(path))
    log(f"Stored trained model at {path}")


def evaluation_monitor() -> Any:
    """A callback printing each round's evaluation (see :func:`format_eval_line`), as the real image's
    EvaluationMonitor; built here because its base class lives in xgboost, imported lazily."""
    import xgboost as xgb

    class Monitor(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            if evals_log:
                print(format_eval_line(epoch, evals_log), flush=True)
            return False

    return Monitor()


# ---- serving -----------------------------------------------------------------------------------------------
PKL_FORMAT, XGB_FORMAT = "pkl_format", "xgb_format"
REQUEST_TYPES = (CSV, LIBSVM, RECORDIO_PROTOBUF)
SELECTABLE_KEYS = ("predicted_label", "labels", "probability", "probabilities", "raw_score", "raw_scores",
                   "predicted_score")
VALID_OBJECTIVES = {
    "reg:squarederror": ["predicted_score"], "reg:logistic": ["predicted_score"], "reg:gamma": ["predicted_score"],
    "reg:absoluteerror": ["predicted_score"], "reg:tweedie": ["predicted_score"],
    "binary:logistic": ["predicted_label", "labels", "probability", "probabilities", "raw_score", "raw_scores"],
    "binary:logitraw": ["predicted_label", "labels", "raw_score", "raw_scores"],
    "binary:hinge": ["predicted_label", "labels", "raw_score", "raw_scores"],
    "multi:softmax": ["predicted_label", "labels", "raw_score", "raw_scores"],
    "multi:softprob": ["predicted_label", "labels", "probability", "probabilities", "raw_score", "raw_scores"],
}


@dataclass
class Model:
    boosters: list[Any]
    formats: list[str]
    objective: str = "reg:squarederror"
    num_class: int = 0
    num_features: int = 0
    files: list[str] = field(default_factory=list)


def _load_one(path: Path) -> tuple[Any, str]:
    """A pickled Booster / XGBModel first, then ``Booster.load_model`` (JSON, UBJSON, legacy binary)."""
    import xgboost as xgb

    try:
        with path.open("rb") as fh:
            obj = pickle.load(fh)  # noqa: S301 - the user's own model artifact, as the real image loads it
        if isinstance(obj, xgb.XGBModel):
            obj = obj.get_booster()
        if not isinstance(obj, xgb.Booster):
            raise TypeError(f"unpickled a {type(obj).__name__}, not an xgboost Booster")
        return obj, PKL_FORMAT
    except Exception as exc_pkl:  # noqa: BLE001 - fall back to the native formats, as the real image
        try:
            booster = xgb.Booster()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                booster.load_model(bytearray(path.read_bytes()))
            return booster, XGB_FORMAT
        except Exception as exc_xgb:  # noqa: BLE001
            raise RuntimeError(f"Model {path} cannot be loaded:\nPickle load error={exc_pkl}\n"
                               f"XGB load model error={exc_xgb}") from None


def load_model(model_dir: Path) -> Model:
    """Every regular, non-hidden file of the model dir (several -> an ensemble, unless
    ``SAGEMAKER_INFERENCE_ENSEMBLE=false``), as serve_utils.get_loaded_booster."""
    paths = sorted(p for p in Path(model_dir).iterdir() if p.is_file() and not p.name.startswith("."))
    if not paths:
        raise RuntimeError(f"No model file found in {model_dir}; the model.tar.gz must contain {MODEL_NAME}.")
    if os.environ.get("SAGEMAKER_INFERENCE_ENSEMBLE", "true") != "true":
        paths = paths[:1]
    boosters, formats = [], []
    for p in paths:
        print(f"Loading the model from {p}", flush=True)
        b, fmt = _load_one(p)
        b.set_param("nthread", 1)
        boosters.append(b)
        formats.append(fmt)
    cfg = json.loads(boosters[0].save_config())
    learner = cfg.get("learner", {})
    objective = learner.get("objective", {}).get("name", "reg:squarederror")
    num_class = int(learner.get("learner_model_param", {}).get("num_class", "0") or 0)
    return Model(boosters, formats, objective, num_class, boosters[0].num_features(), [p.name for p in paths])


def request_content_type(content_type: str | None) -> str:
    """The real image's request types: CSV (``label_size=1`` allowed), LIBSVM, RecordIO-protobuf."""
    try:
        kind = get_content_type(content_type)
    except ClientError as exc:
        raise HttpError(415, str(exc)) from None
    if kind not in REQUEST_TYPES:
        raise HttpError(415, f"Content-type {content_type} is not supported.")
    return kind


def parse_request(body: bytes, kind: str, num_features: int) -> Any:
    """Request body -> feature matrix (dense or CSR) of exactly ``num_features`` columns."""
    if kind == CSV:
        try:
            text = body.decode("utf-8").strip()
            rows = parse_csv_rows(text, csv_delimiter(text.split("\n", 1)[0]), "request")
        except (ClientError, UnicodeDecodeError) as exc:
            detail = str(exc).replace("Failed to load csv data with exception:\n", "")
            raise HttpError(415, "Loading csv data failed with Exception, please ensure data is in csv format: "
                                 f"{detail}") from None
        matrix: Any = np.asarray(rows, dtype=np.float32)
        got = matrix.shape[1]
    elif kind == LIBSVM:
        from scipy.sparse import csr_matrix

        try:
            _, _, ptr, idx, val = parse_libsvm(body.decode("utf-8").strip(), "request", with_labels=False)
        except (ClientError, UnicodeDecodeError) as exc:
            raise HttpError(415, "Loading libsvm data failed with Exception, please ensure data is in libsvm "
                                 f"format: {exc}") from None
        got = (max(idx) + 1) if idx else 0
        if got > num_features:
            raise HttpError(400, f"Feature size of libsvm inference data {got} is larger than feature size of "
                                 f"trained model {num_features}.")
        matrix = csr_matrix((np.asarray(val, dtype=np.float32), np.asarray(idx, dtype=np.int64),
                             np.asarray(ptr)), shape=(len(ptr) - 1, num_features))
        got = num_features
    else:
        from smformats.recordio import RecordIOError, from_recordio_protobuf

        try:
            records = from_recordio_protobuf(body)
        except RecordIOError as exc:
            raise HttpError(415, "Loading recordio-protobuf data failed with Exception, please ensure data is in "
                                 f"recordio-protobuf format: {exc}") from None
        widths = {len(r.features) for r in records}
        if len(widths) > 1:
            raise HttpError(400, f"records have different feature counts: {sorted(widths)}")
        matrix = np.asarray([r.features for r in records], dtype=np.float32)
        got = matrix.shape[1] if matrix.ndim == 2 else 0
    if matrix.shape[0] == 0:
        raise HttpError(400, "the request has no rows")
    if got != num_features:
        name = {CSV: "text/csv", RECORDIO_PROTOBUF: "application/x-recordio-protobuf"}.get(kind, kind)
        raise HttpError(400, f"Feature size of {name} inference data {got} is not consistent with feature size of "
                             f"trained model {num_features}.")
    return matrix


def predict(model: Model, matrix: Any) -> np.ndarray:
    """Each booster's prediction; an ensemble averages (votes for multi:softmax / binary:hinge)."""
    import xgboost as xgb

    dm = xgb.DMatrix(matrix, missing=np.nan)
    preds = [b.predict(dm, validate_features=False) for b in model.boosters]
    if len(preds) == 1:
        return preds[0]
    if model.objective in ("multi:softmax", "binary:hinge"):
        stacked = np.stack(preds).astype(int)
        return np.asarray([np.bincount(col).argmax() for col in stacked.T], dtype=np.float32)
    return np.mean(preds, axis=0)


def accept_type(accept: str | None, supported: Sequence[str]) -> str:
    """The first supported type of ``Accept``; none or ``*/*`` -> SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT or CSV."""
    default = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "text/csv")
    if not accept:
        return default
    aliases = {"csv": "text/csv", "json": "application/json"}
    for part in accept.split(","):
        mt = media_type(part)
        mt = aliases.get(mt, mt)
        if mt in ("*/*", ""):
            return default
        if mt in supported:
            return mt
    raise HttpError(415, f"Encoding to accept type {accept} failed with exception: {accept} is not an accepted "
                         f"Accept type. Please choose one of the following: {list(supported)}.")


def encode_predictions(preds: np.ndarray, accept: str, batch: bool) -> tuple[bytes, str]:
    """The real image's default output: CSV ``,``-joined on one line (one a line in batch transform,
    where SAGEMAKER_BATCH is set), JSON ``{"predictions": [{"score": ...}]}`` (a list per row for
    multi:softprob)."""
    values = preds.tolist()
    if accept == "application/json":
        return json.dumps({"predictions": [{"score": v} for v in values]}).encode(), accept
    if batch:
        return ("\n".join(map(str, values)) + "\n").encode(), "text/csv"
    return ",".join(map(str, values)).encode(), "text/csv"


def selected_predictions(preds: np.ndarray, keys: Sequence[str], objective: str, num_class: int) -> list[dict]:
    """serve_utils.get_selected_predictions: the ``SAGEMAKER_INFERENCE_OUTPUT`` keys per row (NaN for
    keys the objective cannot give)."""
    if objective not in VALID_OBJECTIVES:
        raise HttpError(400, f"Objective `{objective}` unsupported for selectable inference predictions.")
    valid = set(keys) & set(VALID_OBJECTIVES[objective])
    out = []
    for raw in preds:
        raw = np.asarray(raw)
        row: dict[str, Any] = {}
        for key in keys:
            if key not in valid:
                row[key] = math.nan
            elif key == "predicted_label":
                if objective in ("binary:hinge", "multi:softmax"):
                    row[key] = raw.item()
                elif objective == "binary:logistic":
                    row[key] = int(raw > 0.5)
                elif objective == "binary:logitraw":
                    row[key] = int(raw > 0)
                else:
                    row[key] = int(np.argmax(raw))
            elif key == "labels":
                row[key] = [0, 1] if objective.startswith("binary:") else list(range(num_class))
            elif key == "probability":
                row[key] = float(raw.max()) if objective == "multi:softprob" else raw.item()
            elif key == "probabilities":
                row[key] = raw.tolist() if objective == "multi:softprob" else [1.0 - raw.item(), raw.item()]
            elif key == "raw_score":
                row[key] = float(raw.max()) if objective == "multi:softprob" else raw.item()
            elif key == "raw_scores":
                row[key] = raw.tolist() if objective == "multi:softprob" else [1.0 - raw.item(), raw.item()]
            elif key == "predicted_score":
                row[key] = raw.item()
        out.append(row)
    return out


def encode_selected(rows: list[dict], keys: Sequence[str], accept: str, batch: bool) -> tuple[bytes, str]:
    if accept == "application/json":
        return json.dumps({"predictions": rows}).encode(), accept
    if accept == "application/jsonlines":
        return "".join(json.dumps(r) + "\n" for r in rows).encode(), accept
    if accept == "application/x-recordio-protobuf":
        from smformats.recordio import encode_labelled, frame_record

        return b"".join(frame_record(encode_labelled(r)) for r in rows), accept
    lines = []
    for r in rows:
        lines.append(",".join(f'"{r[k]}"' if isinstance(r[k], list) else str(r[k]) for k in keys))
    text = "\n".join(lines)
    return (text + "\n" if batch else text).encode(), "text/csv"


def invoke(model: Model, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
    if not body:
        raise HttpError(204, "")
    kind = request_content_type(content_type)
    matrix = parse_request(body, kind, model.num_features)
    try:
        preds = predict(model, matrix)
    except Exception as exc:  # noqa: BLE001 - xgboost's refusal of this payload is the caller's problem
        raise HttpError(400, f"Unable to evaluate payload provided: {exc}") from None
    batch = bool(os.environ.get("SAGEMAKER_BATCH"))
    selected = os.environ.get("SAGEMAKER_INFERENCE_OUTPUT")
    if selected is not None:
        keys = selected.replace(" ", "").lower().split(",")
        fmt = accept_type(accept, ["application/json", "application/jsonlines", "application/x-recordio-protobuf",
                                   "text/csv"])
        rows = selected_predictions(preds, keys, model.objective, model.num_class)
        return encode_selected(rows, keys, fmt, batch)
    return encode_predictions(preds, accept_type(accept, ["text/csv", "application/json"]), batch)


def serve() -> None:
    from localmaker.builtins.serving import serve as run

    run(load_model, invoke)


if __name__ == "__main__":
    sys.exit(main(train, serve))
