"""linear_learner: hyperparameters, the algorithm and the ``train`` entry point."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from localmaker.builtins import runtime as rt
from localmaker.builtins.runtime import HP, ClientError, TrainingEnv

from .model import BINARY, MODEL_FILE, MULTICLASS, REGRESSOR, LinearModel, _sigmoid, _softmax

CHANNELS = ("train", "validation", "test")
AUTO_NUM_MODELS = 8
#: the host named in metric lines (``current_host`` of the resource config; set by :func:`train`)
HOST = "algo-1"
LOSSES = {
    REGRESSOR: ("squared_loss", "absolute_loss", "eps_insensitive_squared_loss", "eps_insensitive_absolute_loss",
                "quantile_loss", "huber_loss"),
    BINARY: ("logistic", "hinge_loss"),
    MULTICLASS: ("softmax_loss",),
}


SELECTION_CRITERIA = ("accuracy", "f1", "f_beta", "precision_at_target_recall", "recall_at_target_precision",
                      "cross_entropy_loss", "loss_function")


def _auto(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """A hyperparameter that also takes ``auto`` (SageMaker then picks the value)."""

    def p(v: str) -> Any:
        return "auto" if str(v).strip().lower() == "auto" else parse(v)

    return p


def _positive(v: str) -> float:
    f = float(v)
    if not f > 0 or math.isinf(f):
        raise ValueError("must be a positive number")
    return f


def _open_unit(v: str) -> float:
    f = float(v)
    if not 0 < f < 1:
        raise ValueError("must be in (0, 1)")
    return f


def _weight_mult(v: str) -> Any:
    s = str(v).strip().lower()
    return s if s in ("auto", "balanced") else _positive(v)


SPEC: dict[str, HP] = {
    "predictor_type": HP(rt.one_of(REGRESSOR, BINARY, MULTICLASS), required=True),
    "num_classes": HP(rt.int_in(3, 1_000_000)),
    "feature_dim": HP(_auto(rt.int_in(1)), "auto"),
    "mini_batch_size": HP(rt.int_in(1), 1000),
    "epochs": HP(rt.int_in(1), 15),
    "learning_rate": HP(_auto(_positive), "auto"),
    "wd": HP(_auto(rt.float_in(0.0)), "auto"),
    "l1": HP(_auto(rt.float_in(0.0)), "auto"),
    "optimizer": HP(rt.one_of("auto", "sgd", "adam", "rmsprop"), "auto"),
    "momentum": HP(_auto(rt.float_in(0.0, 0.999999)), "auto"),
    "beta_1": HP(_auto(rt.float_in(0.0, 0.999999)), "auto"),
    "beta_2": HP(_auto(rt.float_in(0.0, 0.999999)), "auto"),
    "bias_lr_mult": HP(_auto(_positive), "auto"),
    "bias_wd_mult": HP(_auto(rt.float_in(0.0)), "auto"),
    "loss": HP(rt.one_of("auto", *{loss for group in LOSSES.values() for loss in group}), "auto"),
    "use_bias": HP(rt.boolean, True),
    "normalize_data": HP(rt.boolean, True),
    "normalize_label": HP(_auto(rt.boolean), "auto"),
    "unbias_data": HP(_auto(rt.boolean), "auto"),
    "unbias_label": HP(_auto(rt.boolean), "auto"),
    "num_point_for_scaler": HP(rt.int_in(1), 10000),
    "use_lr_scheduler": HP(rt.boolean, True),
    "lr_scheduler_step": HP(_auto(rt.int_in(1)), "auto"),
    "lr_scheduler_factor": HP(_auto(_open_unit), "auto"),
    "lr_scheduler_minimum_lr": HP(_auto(_positive), "auto"),
    "early_stopping_patience": HP(rt.int_in(1), 3),
    "early_stopping_tolerance": HP(_positive, 0.001),
    "binary_classifier_model_selection_criteria": HP(rt.one_of(*SELECTION_CRITERIA), "accuracy"),
    "target_recall": HP(_open_unit, 0.8),
    "target_precision": HP(_open_unit, 0.8),
    "positive_example_weight_mult": HP(_weight_mult, 1.0),
    "num_models": HP(_auto(rt.int_in(1)), "auto"),
    "num_calibration_samples": HP(rt.int_in(1), 10_000_000),
    "init_method": HP(rt.one_of("uniform", "normal"), "uniform"),
    "init_scale": HP(_positive, 0.07),
    "init_sigma": HP(_positive, 0.01),
    "init_bias": HP(rt.float_in(), 0.0),
    "margin": HP(rt.float_in(0.0), 1.0),
    "quantile": HP(_open_unit, 0.5),
    "loss_insensitivity": HP(_positive, 0.01),
    "huber_delta": HP(rt.float_in(0.0), 1.0),
    "accuracy_top_k": HP(rt.int_in(1, 1_000_000), 3),
    "f_beta": HP(_positive, 1.0),
    "balance_multiclass_weights": HP(rt.boolean, False),
}


@dataclass
class Config:
    """Validated hyperparameters with every ``auto`` resolved (what the training actually uses)."""

    predictor_type: str
    num_classes: int
    feature_dim: int | None
    loss: str
    optimizer: str
    mini_batch_size: int
    epochs: int
    candidates: list[tuple[float, float]]  # (learning_rate, wd) per parallel model
    l1: float
    momentum: float
    beta_1: float
    beta_2: float
    bias_lr_mult: float
    bias_wd_mult: float
    use_bias: bool
    normalize_data: bool
    unbias_data: bool
    normalize_label: bool
    unbias_label: bool
    num_point_for_scaler: int
    use_lr_scheduler: bool
    lr_scheduler_step: int | None
    lr_scheduler_factor: float
    lr_scheduler_minimum_lr: float
    early_stopping_patience: int
    early_stopping_tolerance: float
    selection: str
    target_recall: float
    target_precision: float
    positive_example_weight_mult: Any
    num_calibration_samples: int
    init_method: str
    init_scale: float
    init_sigma: float
    init_bias: float
    margin: float
    quantile: float
    loss_insensitivity: float
    huber_delta: float
    accuracy_top_k: int
    f_beta: float
    balance_multiclass_weights: bool
    raw: dict[str, Any] = field(default_factory=dict)


def parse_config(given: dict[str, str]) -> Config:
    """The 1P validation (missing / unknown / malformed names) plus Linear Learner's own rules."""
    hp = rt.parse_hyperparameters(given, SPEC)
    ptype = hp["predictor_type"]
    if ptype == MULTICLASS and hp["num_classes"] is None:
        raise ClientError(
            "No value(s) were specified for 'num_classes' which are required hyperparameter(s) when "
            "predictor_type is 'multiclass_classifier' (caused by ValidationError)"
        )
    loss = hp["loss"]
    if loss == "auto":
        loss = LOSSES[ptype][0]
    elif loss not in LOSSES[ptype]:
        raise ClientError(
            f"Hyperparameter 'loss': value '{loss}' is not valid for predictor_type '{ptype}'; "
            f"use one of {['auto', *LOSSES[ptype]]} (caused by ValidationError)"
        )
    optimizer = "adam" if hp["optimizer"] == "auto" else hp["optimizer"]
    tuning = "_tuning_objective_metric" in given
    num_models = 1 if tuning else (AUTO_NUM_MODELS if hp["num_models"] == "auto" else hp["num_models"])
    normalize_label = (ptype == REGRESSOR) if hp["normalize_label"] == "auto" else hp["normalize_label"]
    if normalize_label and ptype != REGRESSOR:
        raise ClientError("normalize_label can only be true when predictor_type is 'regressor' (caused by ValidationError)")

    def pick(name: str, default: Any) -> Any:
        return default if hp[name] == "auto" else hp[name]

    return Config(
        predictor_type=ptype,
        num_classes=hp["num_classes"] if ptype == MULTICLASS else (2 if ptype == BINARY else 1),
        feature_dim=None if hp["feature_dim"] == "auto" else hp["feature_dim"],
        loss=loss,
        optimizer=optimizer,
        mini_batch_size=hp["mini_batch_size"],
        epochs=hp["epochs"],
        candidates=_candidates(hp["learning_rate"], hp["wd"], num_models),
        l1=pick("l1", 0.0),
        momentum=pick("momentum", 0.9),
        beta_1=pick("beta_1", 0.9),
        beta_2=pick("beta_2", 0.999),
        bias_lr_mult=pick("bias_lr_mult", 1.0),
        bias_wd_mult=pick("bias_wd_mult", 0.0),
        use_bias=hp["use_bias"],
        normalize_data=hp["normalize_data"],
        unbias_data=pick("unbias_data", hp["normalize_data"] and hp["use_bias"]),
        normalize_label=normalize_label,
        unbias_label=pick("unbias_label", normalize_label and hp["use_bias"]),
        num_point_for_scaler=hp["num_point_for_scaler"],
        use_lr_scheduler=hp["use_lr_scheduler"],
        lr_scheduler_step=None if hp["lr_scheduler_step"] == "auto" else hp["lr_scheduler_step"],
        lr_scheduler_factor=pick("lr_scheduler_factor", 0.99),
        lr_scheduler_minimum_lr=pick("lr_scheduler_minimum_lr", 1e-5),
        early_stopping_patience=hp["early_stopping_patience"],
        early_stopping_tolerance=hp["early_stopping_tolerance"],
        selection=hp["binary_classifier_model_selection_criteria"],
        target_recall=hp["target_recall"],
        target_precision=hp["target_precision"],
        positive_example_weight_mult=hp["positive_example_weight_mult"],
        num_calibration_samples=hp["num_calibration_samples"],
        init_method=hp["init_method"],
        init_scale=hp["init_scale"],
        init_sigma=hp["init_sigma"],
        init_bias=hp["init_bias"],
        margin=hp["margin"],
        quantile=hp["quantile"],
        loss_insensitivity=hp["loss_insensitivity"],
        huber_delta=hp["huber_delta"],
        accuracy_top_k=hp["accuracy_top_k"],
        f_beta=hp["f_beta"],
        balance_multiclass_weights=hp["balance_multiclass_weights"],
        raw=hp,
    )


def _candidates(lr: Any, wd: Any, n: int) -> list[tuple[float, float]]:
    """(learning_rate, wd) of each parallel model: the given values first, then neighbours around them
    (or, for ``auto``, a spread that covers what SGD needs on standardised data)."""
    lrs = [lr, lr * 0.3, lr * 3, lr * 0.1, lr * 10] if lr != "auto" else [0.1, 0.03, 0.3, 0.01]
    wds = [wd, wd * 10 if wd else 1e-4] if wd != "auto" else [1e-5, 1e-3]
    pairs = [(a, b) for b in wds for a in lrs]
    return pairs[:n] if n <= len(pairs) else pairs + [(lrs[i % len(lrs)] * 0.5 ** (1 + i // len(lrs)), wds[0])
                                                      for i in range(n - len(pairs))]


def loss_and_grad(cfg: Config, z: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-example loss (models, n) and its gradient w.r.t. the linear output z (models, n, k).

    ``y`` is (n,) (normalised label / 0-1 / class index), ``w`` the per-example weights (n,)."""
    loss = cfg.loss
    if cfg.predictor_type == MULTICLASS:
        p = _softmax(z)
        idx = y.astype(np.int64)
        picked = np.take_along_axis(p, idx[None, :, None], axis=2)[..., 0]
        per = -np.log(np.clip(picked, 1e-12, None)) * w
        g = p.copy()
        g[:, np.arange(len(idx)), idx] -= 1.0
        return per, g * w[None, :, None]
    s = z[..., 0]
    if loss == "logistic":
        per = (np.logaddexp(0.0, s) - y * s) * w
        g = (_sigmoid(s) - y) * w
    elif loss == "hinge_loss":
        sign = 2.0 * y - 1.0
        viol = cfg.margin - sign * s
        per = np.maximum(viol, 0.0) * w
        g = np.where(viol > 0, -sign, 0.0) * w
    else:
        r = s - y
        a = np.abs(r)
        if loss == "squared_loss":
            per, g = r * r, 2.0 * r
        elif loss == "absolute_loss":
            per, g = a, np.sign(r)
        elif loss == "eps_insensitive_squared_loss":
            e = np.maximum(a - cfg.loss_insensitivity, 0.0)
            per, g = e * e, 2.0 * e * np.sign(r)
        elif loss == "eps_insensitive_absolute_loss":
            e = np.maximum(a - cfg.loss_insensitivity, 0.0)
            per, g = e, np.where(e > 0, np.sign(r), 0.0)
        elif loss == "quantile_loss":
            q = cfg.quantile
            per = np.where(r < 0, -q * r, (1 - q) * r)  # r = prediction - label
            g = np.where(r < 0, -q, 1 - q)
        elif loss == "huber_loss":
            d = cfg.huber_delta
            per = np.where(a <= d, 0.5 * r * r, d * (a - 0.5 * d))
            g = np.clip(r, -d, d)
        else:  # pragma: no cover - parse_config only lets the listed losses through
            raise ClientError(f"unsupported loss {loss}")
        per, g = per * w, g * w
    return per, g[..., None]


def objective_name(cfg_or_model: Any) -> str:
    """The objective's name in the real log lines (``mse_objective``,
    ``binary_classification_cross_entropy_objective``, ``multiclass_cross_entropy_objective``...)."""
    ptype, loss = cfg_or_model.predictor_type, cfg_or_model.loss
    if ptype == MULTICLASS:
        return "multiclass_cross_entropy_objective"
    if ptype == BINARY:
        return "binary_classification_cross_entropy_objective" if loss == "logistic" else "binary_classification_hinge_loss_objective"
    return "mse_objective" if loss == "squared_loss" else f"{loss}_objective"


Logger = Callable[[str], None]


def info(message: str) -> None:
    """A log line in the real images' format: ``[MM/DD/YYYY HH:MM:SS INFO <pid>] message``."""
    rt.log(f"[{time.strftime('%m/%d/%Y %H:%M:%S')} INFO {os.getpid()}] {message}")


@dataclass
class Dataset:
    x: np.ndarray
    y: np.ndarray  # (n,)


def check_labels(cfg: Config, labels: np.ndarray | None, channel: str) -> np.ndarray:
    """Labels as Linear Learner requires them: one per record; 0/1 for binary; 0..num_classes-1."""
    if labels is None:
        raise ClientError(
            f"Channel '{channel}' has no labels. Linear Learner is supervised: put the label in each "
            "RecordIO-protobuf record, or in the first column of text/csv data."
        )
    if labels.ndim != 2 or labels.shape[1] != 1:
        raise ClientError(f"Channel '{channel}': each record must have exactly one label, found {labels.shape[1]}.")
    y = labels[:, 0].astype(np.float64)
    if cfg.predictor_type == BINARY:
        bad = y[(y != 0) & (y != 1)]
        if bad.size:
            raise ClientError(
                f"Channel '{channel}': label {bad[0]:g} is not valid for predictor_type 'binary_classifier'; "
                "labels must be 0 or 1."
            )
    elif cfg.predictor_type == MULTICLASS:
        bad = y[(y != np.round(y)) | (y < 0) | (y >= cfg.num_classes)]
        if bad.size:
            raise ClientError(
                f"Channel '{channel}': label {bad[0]:g} is not valid for num_classes={cfg.num_classes}; "
                f"labels must be integers 0..{cfg.num_classes - 1}."
            )
    return y


def fit(cfg: Config, train: Dataset, validation: Dataset | None = None, log: Logger = info,
        seed: int = 0) -> LinearModel:
    """Train ``len(cfg.candidates)`` models in parallel and return the selected one."""
    rng = np.random.default_rng(seed)
    x, y = train.x.astype(np.float64), train.y
    n, d = x.shape
    k = cfg.num_classes if cfg.predictor_type == MULTICLASS else 1
    m = len(cfg.candidates)

    # standardisation statistics from the first num_point_for_scaler rows, as the real scaler samples
    sample = x[: cfg.num_point_for_scaler]
    x_mean = sample.mean(axis=0) if cfg.unbias_data else np.zeros(d)
    x_scale = sample.std(axis=0) if cfg.normalize_data else np.ones(d)
    x_scale = np.where(x_scale > 1e-12, x_scale, 1.0)
    y_mean, y_scale = 0.0, 1.0
    if cfg.predictor_type == REGRESSOR:
        ys = y[: cfg.num_point_for_scaler]
        y_mean = float(ys.mean()) if cfg.unbias_label else 0.0
        y_scale = float(ys.std()) if cfg.normalize_label and ys.std() > 1e-12 else 1.0
    xs = (x - x_mean) / x_scale
    yt = (y - y_mean) / y_scale if cfg.predictor_type == REGRESSOR else y
    weights = _example_weights(cfg, y)

    if cfg.init_method == "uniform":
        w_param = rng.uniform(-cfg.init_scale, cfg.init_scale, size=(m, d, k))
    else:
        w_param = rng.normal(0.0, cfg.init_sigma, size=(m, d, k))
    b_param = np.full((m, k), cfg.init_bias if cfg.use_bias else 0.0)
    lrs = np.array([c[0] for c in cfg.candidates])
    wds = np.array([c[1] for c in cfg.candidates])
    # lr_scheduler_step auto: decay once per epoch's worth of updates
    opt = _Optimizer(cfg, w_param.shape, b_param.shape, lrs, cfg.lr_scheduler_step or math.ceil(n / min(cfg.mini_batch_size, n)))

    def evaluate(ds: Dataset) -> np.ndarray:
        """Mean objective per model on a dataset, in the label's own units."""
        z = np.einsum("nd,mdk->mnk", (ds.x.astype(np.float64) - x_mean) / x_scale, w_param) + b_param[:, None, :]
        target = (ds.y - y_mean) / y_scale if cfg.predictor_type == REGRESSOR else ds.y
        per, _ = loss_and_grad(cfg, z, target, np.ones(len(ds.y)))
        if cfg.predictor_type == REGRESSOR:
            per = per * (y_scale**2 if cfg.loss in ("squared_loss", "eps_insensitive_squared_loss") else y_scale)
        return per.mean(axis=1)

    best_w, best_b = w_param.copy(), b_param.copy()
    best_loss = np.full(m, np.inf)
    overall_best = np.inf
    stale = 0
    obj = objective_name(cfg)
    bs = min(cfg.mini_batch_size, n)
    for epoch in range(cfg.epochs):
        started = time.monotonic()
        order = rng.permutation(n)
        for start in range(0, n, bs):
            idx = order[start: start + bs]
            xb = xs[idx]
            z = np.einsum("nd,mdk->mnk", xb, w_param) + b_param[:, None, :]
            _, g = loss_and_grad(cfg, z, yt[idx], weights[idx])
            gw = np.einsum("nd,mnk->mdk", xb, g) / len(idx) + wds[:, None, None] * w_param
            if cfg.l1:
                gw += cfg.l1 * np.sign(w_param)
            gb = g.mean(axis=1) + cfg.bias_wd_mult * wds[:, None] * b_param
            w_param, b_param = opt.step(w_param, b_param, gw, gb if cfg.use_bias else np.zeros_like(gb))
        elapsed = max(time.monotonic() - started, 1e-9)
        train_loss = evaluate(train)
        log(f"#quality_metric: host={HOST}, epoch={epoch}, train {obj} <loss>={float(train_loss.min())!r}")
        watched = train_loss
        if validation is not None:
            watched = evaluate(validation)
            log(f"#quality_metric: host={HOST}, epoch={epoch}, validation {obj} <loss>={float(watched.min())!r}")
        improved = watched < best_loss
        best_loss = np.where(improved, watched, best_loss)
        best_w[improved], best_b[improved] = w_param[improved], b_param[improved]
        current = float(watched.min())
        # an improvement smaller than early_stopping_tolerance (relative to the best so far) counts as none
        if not np.isfinite(overall_best) or current < overall_best - cfg.early_stopping_tolerance * abs(overall_best):
            overall_best = current
            stale = 0
            log(f"Epoch {epoch}: Loss improved. Updating best model")
        else:
            stale += 1
            log(f"Epoch {epoch}: Loss has not improved for {stale} epochs.")
        log(f"#progress_metric: host={HOST}, completed {100 * (epoch + 1) // cfg.epochs} % of epochs")
        log(f"#throughput_metric: host={HOST}, train throughput={n / elapsed:.1f} records/second")
        if stale >= cfg.early_stopping_patience:
            log(f"Early stop condition met. Stopping training after epoch {epoch}.")
            break

    models = [
        LinearModel(cfg.predictor_type, best_w[i], best_b[i], x_mean, x_scale, y_mean, y_scale,
                    0.5 if cfg.loss == "logistic" else 0.0, cfg.loss,
                    {"learning_rate": cfg.candidates[i][0], "wd": cfg.candidates[i][1], "l1": cfg.l1,
                     "optimizer": cfg.optimizer})
        for i in range(m)
    ]
    chosen_on = validation if validation is not None else train
    calib = Dataset(chosen_on.x[: cfg.num_calibration_samples], chosen_on.y[: cfg.num_calibration_samples])
    best, best_value = models[0], -np.inf
    for i, model in enumerate(models):
        if cfg.predictor_type == BINARY:
            model.threshold, value = calibrate_threshold(cfg, model.scores(calib.x), calib.y)
            if cfg.selection in ("cross_entropy_loss", "loss_function"):
                value = -float(best_loss[i])
        else:
            value = -float(best_loss[i])
        if value > best_value:
            best, best_value = model, value
    log(f"Best model found for hyperparameters: {json.dumps(best.hyperparameters)}")
    return best


def _example_weights(cfg: Config, y: np.ndarray) -> np.ndarray:
    w = np.ones(len(y))
    if cfg.predictor_type == BINARY:
        mult = cfg.positive_example_weight_mult
        if mult in ("auto", "balanced"):
            pos = float((y == 1).sum())
            mult = (len(y) - pos) / pos if pos else 1.0
        w[y == 1] = float(mult)
    elif cfg.predictor_type == MULTICLASS and cfg.balance_multiclass_weights:
        counts = np.bincount(y.astype(np.int64), minlength=cfg.num_classes).astype(np.float64)
        per_class = np.where(counts > 0, len(y) / (cfg.num_classes * np.maximum(counts, 1)), 0.0)
        w = per_class[y.astype(np.int64)]
    return w


class _Optimizer:
    """Adam / SGD with momentum / RMSProp over all parallel models at once, with the step scheduler."""

    def __init__(self, cfg: Config, w_shape: tuple[int, ...], b_shape: tuple[int, ...], lrs: np.ndarray,
                 decay_every: int) -> None:
        self.cfg = cfg
        self.decay_every = decay_every
        self.lr = lrs.astype(np.float64).copy()
        self.t = 0
        self.state = [np.zeros(w_shape), np.zeros(w_shape), np.zeros(b_shape), np.zeros(b_shape)]

    def step(self, w: np.ndarray, b: np.ndarray, gw: np.ndarray, gb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.cfg
        self.t += 1
        lr_w = self.lr[:, None, None]
        lr_b = self.lr[:, None] * cfg.bias_lr_mult
        mw, vw, mb, vb = self.state
        if cfg.optimizer == "adam":
            b1, b2 = cfg.beta_1, cfg.beta_2
            for m_, v_, g in ((mw, vw, gw), (mb, vb, gb)):
                m_ *= b1
                m_ += (1 - b1) * g
                v_ *= b2
                v_ += (1 - b2) * g * g
            c1, c2 = 1 - b1**self.t, 1 - b2**self.t
            w = w - lr_w * (mw / c1) / (np.sqrt(vw / c2) + 1e-8)
            b = b - lr_b * (mb / c1) / (np.sqrt(vb / c2) + 1e-8)
        elif cfg.optimizer == "rmsprop":
            for v_, g in ((vw, gw), (vb, gb)):
                v_ *= 0.9
                v_ += 0.1 * g * g
            w = w - lr_w * gw / (np.sqrt(vw) + 1e-8)
            b = b - lr_b * gb / (np.sqrt(vb) + 1e-8)
        else:
            mw *= cfg.momentum
            mw += gw
            mb *= cfg.momentum
            mb += gb
            w = w - lr_w * mw
            b = b - lr_b * mb
        if cfg.use_lr_scheduler and self.t % self.decay_every == 0:
            self.lr = np.maximum(self.lr * cfg.lr_scheduler_factor, cfg.lr_scheduler_minimum_lr)
        return w, b


def calibrate_threshold(cfg: Config, scores: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The decision threshold that is best for the model selection criterion, and its value there.

    Candidate thresholds are the observed scores (predict 1 when ``score >= threshold``)."""
    default = 0.5 if cfg.loss == "logistic" else 0.0
    if cfg.selection in ("cross_entropy_loss", "loss_function") or len(scores) == 0:
        return default, 0.0
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], y[order]
    tp = np.cumsum(t == 1)
    fp = np.cumsum(t == 0)
    last = np.r_[s[1:] != s[:-1], True]  # evaluate each distinct score once, after all its ties
    s, tp, fp = s[last], tp[last].astype(np.float64), fp[last].astype(np.float64)
    pos, total = float((y == 1).sum()), float(len(y))
    fn, tn = pos - tp, (total - pos) - fp
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    recall = np.divide(tp, np.full_like(tp, pos), out=np.zeros_like(tp), where=pos > 0)
    if cfg.selection == "accuracy":
        value = (tp + tn) / total
    elif cfg.selection in ("f1", "f_beta"):
        b2 = 1.0 if cfg.selection == "f1" else cfg.f_beta**2
        denom = (1 + b2) * tp + b2 * fn + fp
        value = np.divide((1 + b2) * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    elif cfg.selection == "precision_at_target_recall":
        value = np.where(recall >= cfg.target_recall, precision, -1.0 + recall)
    else:  # recall_at_target_precision
        value = np.where(precision >= cfg.target_precision, recall, -1.0 + precision)
    i = int(np.argmax(value))
    return float(s[i]), float(value[i])


def evaluate_model(model: LinearModel, cfg: Config, data: Dataset) -> list[tuple[str, float, str]]:
    """``(name, value, 'loss'|'score')`` in the order and under the names the real algorithm logs."""
    scores = model.scores(data.x)
    y = data.y
    obj = objective_name(model)
    if model.predictor_type == REGRESSOR:
        r = scores - y
        target = (y - model.y_mean) / model.y_scale
        per, _ = loss_and_grad(cfg, ((scores - model.y_mean) / model.y_scale)[None, :, None], target, np.ones(len(y)))
        unit = model.y_scale**2 if cfg.loss in ("squared_loss", "eps_insensitive_squared_loss") else model.y_scale
        mse = float(np.mean(r * r))
        return [(obj, float(per.mean()) * unit, "loss"), ("mse", mse, "loss"),
                ("absolute_loss", float(np.mean(np.abs(r))), "loss"), ("rmse", math.sqrt(mse), "loss")]
    if model.predictor_type == BINARY:
        z = model.raw(data.x.astype(np.float64))
        per, _ = loss_and_grad(cfg, z[None, :, :], y, np.ones(len(y)))
        pred = model.predict_labels(scores)
        tp = float(((pred == 1) & (y == 1)).sum())
        fp = float(((pred == 1) & (y == 0)).sum())
        fn = float(((pred == 0) & (y == 1)).sum())
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        b2 = cfg.f_beta**2
        fbeta = (1 + b2) * precision * recall / (b2 * precision + recall) if precision + recall else 0.0
        return [(obj, float(per.mean()), "loss"),
                ("binary_classification_accuracy", float((pred == y).mean()), "score"),
                (f"binary_f_{cfg.f_beta:.3f}", fbeta, "score"),
                ("precision", precision, "score"),
                ("recall", recall, "score"),
                ("roc_auc_score", roc_auc(scores, y), "score")]
    probs = scores
    labels = y.astype(np.int64)
    n_cls = probs.shape[1]
    pred = np.argmax(probs, axis=1)
    picked = np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)
    log_loss = float(-np.mean(np.log(picked)))
    k = min(cfg.accuracy_top_k, n_cls)
    top_k = np.argsort(-probs, axis=1)[:, :k]
    rank = (probs > probs[np.arange(len(labels)), labels][:, None]).sum(axis=1)  # 0 = ranked first
    dcg = float(np.mean(1.0 / np.log2(rank + 2.0)))
    recalls, precisions = [], []
    for c in range(n_cls):
        actual, guessed = labels == c, pred == c
        if actual.any():
            recalls.append(float((guessed & actual).sum() / actual.sum()))
        if guessed.any() or actual.any():
            precisions.append(float((guessed & actual).sum() / guessed.sum()) if guessed.any() else 0.0)
    macro_recall = float(np.mean(recalls)) if recalls else 0.0
    macro_precision = float(np.mean(precisions)) if precisions else 0.0
    b2 = cfg.f_beta**2
    macro_f = ((1 + b2) * macro_precision * macro_recall / (b2 * macro_precision + macro_recall)
               if macro_precision + macro_recall else 0.0)
    return [("multiclass_cross_entropy_objective", log_loss, "loss"),
            ("multiclass_accuracy", float((pred == labels).mean()), "score"),
            (f"multiclass_top_k_accuracy_{cfg.accuracy_top_k}", float((top_k == labels[:, None]).any(axis=1).mean()), "score"),
            ("dcg", dcg, "score"),
            ("macro_recall", macro_recall, "score"),
            ("macro_precision", macro_precision, "score"),
            (f"macro_f_{cfg.f_beta:.3f}", macro_f, "score"),
            ("multiclass_balanced_accuracy", macro_recall, "score"),
            ("multiclass_log_loss", log_loss, "score")]


def roc_auc(scores: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve by the rank statistic (ties count half); 0.5 when one class is absent."""
    pos, neg = scores[y == 1], scores[y == 0]
    if not len(pos) or not len(neg):
        return 0.5
    from scipy.stats import rankdata

    ranks = rankdata(scores)  # average ranks over ties
    return float((ranks[y == 1].sum() - len(pos) * (len(pos) + 1) / 2.0) / (len(pos) * len(neg)))


def log_scores(split: str, scores: list[tuple[str, float, str]], log: Logger = info) -> None:
    """``#<split>_score`` then ``#quality_metric`` lines, as the real algorithm prints them."""
    for name, value, _ in scores:
        log(f"#{split}_score ({HOST}) : ('{name}', {value!r})")
    for name, value, kind in scores:
        log(f"#quality_metric: host={HOST}, {split} {name} <{kind}>={value!r}")


def train(env: TrainingEnv) -> None:
    global HOST
    HOST = env.current_host
    cfg = parse_config(env.hyperparameters)
    rt.check_labelled_channels(env, CHANNELS, "Linear Learner", "'train', 'validation' and 'test'")
    x, labels = rt.read_dense_channel(env, "train", label_size=1, feature_dim=cfg.feature_dim)
    train_set = Dataset(x, check_labels(cfg, labels, "train"))
    info(f"{x.shape[1]} feature(s) found in 'data'; {x.shape[0]} training records.")
    sets: dict[str, Dataset] = {}
    for name in ("validation", "test"):
        if env.has_channel(name):
            xs, ls = rt.read_dense_channel(env, name, label_size=1, feature_dim=x.shape[1])
            sets[name] = Dataset(xs, check_labels(cfg, ls, name))
    model = fit(cfg, train_set, sets.get("validation"))
    if "validation" in sets:
        log_scores("validation", evaluate_model(model, cfg, sets["validation"]))
    else:
        log_scores("train", evaluate_model(model, cfg, train_set))
    if "test" in sets:
        log_scores("test", evaluate_model(model, cfg, sets["test"]))
    else:
        info("Test data is not provided.")
    env.model_dir.mkdir(parents=True, exist_ok=True)
    model.save(env.model_dir / MODEL_FILE)
