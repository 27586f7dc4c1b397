"""localmaker: a local SageMaker that really runs training jobs and endpoints as processes.

Start it with ``python -m localmaker`` and point any AWS client at it with
``AWS_ENDPOINT_URL=http://127.0.0.1:4566``.

Package map (imports point down the list):

* ``server`` - :class:`LocalMaker`: the edge port, routing, the explicit list of services, start and stop.
* the services (``service.Service``: operations, recover/resume, begin/finish shutdown): ``training``,
  ``processing``, ``transform`` (with ``csvbulk``, ``jsonpath``), ``tuning/``, ``endpoints`` (models,
  endpoint configs, endpoints over ``hosting``), ``registry``, ``async_inference``, ``logs``, ``metrics``;
  ``sagemaker_api.JsonApi`` validates a request and dispatches it to the service that answers it.
* ``jobs`` (the job kinds' create/describe/list/stop and recovery) and ``jobrunner`` (one thread per job,
  stop, shutdown, the finish path).
* ``controlplane``: ARNs, pagination, list filters and sorting, tags, botocore service models.
* ``service``: the protocol. Infrastructure (``edge``, ``store``, ``s3durable``, ``s3io``, ``procs``,
  ``images``, ``reaper``, ``homelock``, ``safepath``, ``validation``, ``errors``, ``aws``, ``context``)
  imports none of the resource services; ``builtins/`` holds the built-in algorithm images.
"""

from __future__ import annotations

__all__ = ["LocalMaker"]


def __getattr__(name: str) -> object:
    if name == "LocalMaker":
        from .server import LocalMaker

        return LocalMaker
    raise AttributeError(name)
