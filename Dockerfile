# Astro CLI image: `astro dev start` (and `astro deploy`) build this file from the project root, as
# Astro documents it. Docker Compose and localmaker use airflow.Dockerfile instead (docs/environments.md).
#
# Astro Runtime's ONBUILD steps do the usual Astro build: install packages.txt (apt) and
# requirements.txt (pip), then copy the project (dags/, include/, plugins/, ...) into
# /usr/local/airflow, minus what .dockerignore excludes.
#
# Runtime 3.<minor>-<n> ships Airflow 3.<minor>.x. Use the Runtime whose Airflow is the
# `apache-airflow==` pin of requirements.txt (tests/infra/test_dockerfiles.py keeps the minor equal;
# check the patch with `docker run --rm <image> airflow version`): requirements.txt's pin then
# matches the Runtime's own build (3.3.2+astro.N satisfies ==3.3.2) and pip leaves Airflow alone.
# The tag names the Python: Runtime 3.3 ships 3.12 to 3.14 (the default is the newest) and
# requirements.txt (tensorflow-cpu, ...) needs one it has wheels for; compose's image runs 3.11.
ARG ASTRO_RUNTIME_VERSION=3.3-8-python-3.12
FROM astrocrpublic.azurecr.io/runtime:${ASTRO_RUNTIME_VERSION}

# `from include.mlpipeline import ...` from DAGs and tasks, as in the compose image.
ENV PYTHONPATH=/usr/local/airflow
