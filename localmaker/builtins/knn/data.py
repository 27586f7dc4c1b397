"""knn: reading the training channels and request payloads."""

from __future__ import annotations

import numpy as np

from localmaker.builtins.runtime import ClientError


def labels_of(labels: np.ndarray | None, channel: str) -> np.ndarray:
    if labels is None:
        raise ClientError(
            f"Channel '{channel}' has no labels. k-NN is supervised: put the label in each RecordIO-protobuf "
            "record, or in the first column of text/csv data."
        )
    if labels.shape[1] != 1:
        raise ClientError(f"Channel '{channel}': each record must have exactly one label, found {labels.shape[1]}.")
    return labels[:, 0].astype(np.float32)


def decode(body: bytes, content_type: str, feature_dim: int) -> np.ndarray:
    """The request's rows; text/csv takes a ``label_size`` parameter (leading columns dropped, default 0)."""
    from localmaker.builtins import serving

    ctype = serving.media_type(content_type)
    if ctype != serving.CSV:
        return serving.decode_dense(body, content_type, expect=feature_dim)
    label_size = 0
    for param in (content_type or "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "label_size":
            try:
                label_size = int(value.strip())
            except ValueError:
                raise serving.HttpError(400, f"label_size={value.strip()!r} is not an integer") from None
            if label_size < 0:
                raise serving.HttpError(400, "label_size must not be negative")
    rows = serving.decode_csv(body)[:, label_size:]
    if rows.shape[1] != feature_dim:
        raise serving.HttpError(400, f"rows have {rows.shape[1]} features after label_size={label_size}; "
                                     f"the model expects {feature_dim} features")
    return rows
