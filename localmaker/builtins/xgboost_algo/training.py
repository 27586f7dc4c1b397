"""xgboost_algo: hyperparameters, the algorithm and the ``train`` entry point."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from localmaker.builtins.runtime import ClientError, TrainingEnv, log

from .data import LIBSVM, get_content_type, load_channel, to_dmatrix, validate_channels
from .model import MODEL_NAME

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
