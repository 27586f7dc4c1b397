"""xgboost_algo: loading the model and answering ``/invocations``."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from localmaker.builtins.runtime import ClientError
from localmaker.builtins.serving import HttpError, media_type

from .data import (
    CSV,
    LIBSVM,
    RECORDIO_PROTOBUF,
    csv_delimiter,
    get_content_type,
    parse_csv_rows,
    parse_libsvm,
)
from .model import Model, load_model

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
