"""TensorFlow DNN regressor for the SageMaker bring-your-own-container contract.

The package is what ``/opt/program`` holds inside the image: ``train`` and ``serve`` at the top
of that folder are thin launchers over :mod:`dnn_regressor.training` and
:mod:`dnn_regressor.supervisor`; gunicorn serves :mod:`dnn_regressor.predictor` through
``wsgi.py``. Nothing here imports the pipeline library or localmaker: the same code runs in a
real SageMaker container and as local processes.

Heavy modules (tensorflow, keras) are imported only inside the functions that need them, so
input validation fails in milliseconds; ``serve`` serves the numpy form training exports and never
imports TensorFlow (only a model directory from before that export needs it).
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "1.0.0"
