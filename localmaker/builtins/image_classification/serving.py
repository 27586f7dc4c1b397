"""image_classification: loading the model and answering ``/invocations``."""

from __future__ import annotations

import json
import os

from .data import IMAGE_TYPES, decode_image, normalise
from .model import Net, load_model

JSON_TYPE = "application/json"
JSONLINES_TYPE = "application/jsonlines"


def invoke(net: Net, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
    """One JPEG/PNG image -> JSON list of class probabilities (JSON Lines ``{"prediction": ...}`` on request)."""
    from localmaker.builtins.serving import HttpError, media_type, negotiate, unsupported_content_type

    ctype = media_type(content_type)
    if ctype not in IMAGE_TYPES:
        raise unsupported_content_type(ctype, IMAGE_TYPES)
    batch = os.environ.get("SAGEMAKER_BATCH", "").lower() == "true"
    out = negotiate(accept, [JSON_TYPE, JSONLINES_TYPE], JSONLINES_TYPE if batch else JSON_TYPE)
    if not body:
        raise HttpError(400, "the request body is empty; send one JPEG or PNG image")
    try:
        pixels = decode_image(body, net.shape)
    except ValueError as exc:
        raise HttpError(400, f"unable to read the request body as an image: {exc}") from None
    probs = net.forward(normalise(pixels[None]))[0][0]
    values = [float(p) for p in probs]
    if out == JSONLINES_TYPE:
        return (json.dumps({"prediction": values}) + "\n").encode(), JSONLINES_TYPE
    return json.dumps(values).encode(), JSON_TYPE


def serve() -> None:
    from localmaker.builtins.serving import serve as run

    run(load_model, invoke)
