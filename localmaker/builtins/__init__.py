"""Local implementations of SageMaker's built-in algorithm and framework images.

An image URI of a real built-in (``683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1``,
``382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1``, ...; any region's registry account) resolves
through :data:`MANIFEST` to a package here, run as processes under the same container contract as any
image: hyperparameters, channels and ``/opt/ml`` layout in, ``model/`` and metric log lines out, and
``serve`` answering ``/ping`` and ``/invocations`` in the real image's content types.

Each algorithm is a package and a program: ``python -m localmaker.builtins.<algorithm> train|serve``
runs its ``__main__``. Its parts, where it has them: ``data`` (channels and request payloads),
``model`` (the model and its file, shared by training and serving), ``training`` (hyperparameters,
the algorithm, ``train``) and ``serving`` (``load`` and ``invoke``); the script-mode framework has a
``toolkit`` part instead of ``data``/``model``. Imports go serving/training -> model/data, never back.
They are image code, not server code: they run in their own processes and never import the server's
modules.
:mod:`.runtime` holds the container-contract side they share, :mod:`.serving` the HTTP side. The data
formats (RecordIO-protobuf, ``.lst``) come from the leaf package :mod:`smformats`, never from the
Airflow project's ``include/``; localmaker puts the folder holding ``localmaker/`` and ``smformats/``
on their ``PYTHONPATH`` (:mod:`localmaker.images`), so they run from any working directory.
"""

from __future__ import annotations

from pathlib import Path

#: the built-in images manifest; loaded before (so shadowed by) every user manifest
MANIFEST = Path(__file__).with_name("images.yaml")
