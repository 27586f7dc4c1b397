"""Project code shipped next to the DAGs (Astro layout): the pipeline library, its config and demo data.

A package so that tests and DAGs can both say ``include.mlpipeline``: Airflow puts the project root
(the DAGs folder's parent) on ``sys.path`` in our images, and pytest's ``pythonpath = ["."]`` does
the same for tests.
"""
