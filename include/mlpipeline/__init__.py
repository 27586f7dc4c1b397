"""The pipeline library: pure, typed functions that DAGs wire together.

Modules and what they hold:

* ``config/``  - load + deep-merge + validate ``include/config`` (a package: schema, layers, messages,
  checks, params; fast import: parsed by DAG files)
* ``run``      - the run context and deterministic SageMaker / S3 names (fast import)
* ``sagemaker_requests`` - boto3 ``Create*`` request dicts built from config + run context (fast import)
* ``etl``      - extract -> validate -> split -> format -> upload (pandas, imported lazily)
* ``evaluate`` - champion lookup, quality gate, report (numpy/matplotlib, lazily)
* ``formats``  - one reader + writer pair per data format (CSV, RecordIO-protobuf)
* ``pipelines`` - the DAGs' task bodies, one module per DAG file, one function per task
  (``dags/`` -> ``dag_support`` + ``pipelines`` -> the modules above; never the other way)
* ``dag_support`` - what every DAG file shares: ``dag_defaults()``, ``Clients``, assets, schedules

The core the feature modules build on (each imports no other module of this package):

* ``s3``      - the only way to S3: ``s3://`` URIs, bytes/text/JSON, listings, copy, presigned links
* ``codec``   - endpoint and transform answers read by content type (CSV, JSON, JSON Lines)
* ``metrics`` - every reported metric, by scikit-learn; one threshold rule (``p > 0.5``)

Imports go one way: DAG files -> feature modules (``evaluate``, ``smoke``, ``batch``, ``etl``,
``image_inference``, ``monitoring``, ``byom``, ``cleanup``, ``janitor``, ``notify``) -> ``config`` /
``run`` / ``sagemaker_requests`` and the core; the core never imports a feature module.

Nothing here knows whether it talks to AWS or to localmaker: the boto3 clients passed in decide.
Importing this package imports nothing heavy.
"""
