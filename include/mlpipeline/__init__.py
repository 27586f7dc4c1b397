"""The pipeline library: pure, typed functions that DAGs wire together.

Modules and what they hold:

* ``config/``  - load + deep-merge + validate ``include/config`` (a package: schema, layers, messages,
  checks, params; fast import: parsed by DAG files)
* ``run``      - the run context and deterministic SageMaker / S3 names (fast import)
* ``sagemaker_requests`` - boto3 ``Create*`` request dicts built from config + run context (fast import)
* ``etl``      - extract -> validate -> split -> format -> upload (pandas, imported lazily)
* ``evaluate`` - metrics, champion lookup, quality gate, report (numpy/matplotlib, lazily)
* ``formats``  - one reader + writer pair per data format (CSV, RecordIO-protobuf)
* ``pipelines`` - the DAGs' task bodies, one module per DAG file, one function per task
  (``dags/`` -> ``dag_support`` + ``pipelines`` -> the modules above; never the other way)
* ``dag_support`` - what every DAG file shares: ``dag_defaults()``, ``Clients``, assets, schedules

Nothing here knows whether it talks to AWS or to localmaker: the boto3 clients passed in decide.
Importing this package imports nothing heavy.
"""
