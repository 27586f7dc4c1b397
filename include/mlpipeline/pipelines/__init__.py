"""The tasks of the DAGs: one module per DAG file, one function per task body.

``dags/<dag>.py`` only wires; each of its tasks is one call into ``pipelines/<dag>.py`` with the
run's ``(cfg, ctx, clients)`` (or the part it needs) and returns a typed result (``TypedDict``, so
XCom stays a plain dict). ``clients`` is any object with ``s3``, ``sagemaker``, ``runtime`` and
``sns`` boto3 clients: ``include.mlpipeline.dag_support.Clients`` in a task, moto or fakes in tests.

Imports go one way: ``dags/`` -> ``pipelines/`` -> the library modules (``monitoring``, ``batch``,
``evaluate``, ...) -> ``run`` / ``config``. Nothing here imports a DAG file, and the library
modules import nothing from here. Importing this package imports nothing heavy.
"""
