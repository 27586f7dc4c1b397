"""gunicorn's entry point (``wsgi:app``): one app, and one model, per worker process.

Importing this starts loading the model in the background, so a worker answers ``/ping``
(503, "still loading") while a slow load runs instead of blocking the health check. Loading the
exported numpy form takes milliseconds; only a model from before the export imports TensorFlow.
The model directory is ``$SM_MODEL_DIR``, else ``$SAGEMAKER_BASE_DIR/model`` (``/opt/ml/model``).
"""

from __future__ import annotations

from dnn_regressor.predictor import create_app

app = create_app(preload=True)
