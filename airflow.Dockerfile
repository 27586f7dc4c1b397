# syntax=docker/dockerfile:1
#
# The project's Airflow image, used by every Airflow service in docker-compose.yaml and by the
# `localmaker` service. It is the official Airflow image plus:
#   * requirements.txt (pinned: the provider, sagemaker, moto, tensorflow-cpu, ...), so tasks and
#     the container code localmaker runs as processes find their libraries;
#   * the project's code (localmaker/, smformats/, container/, include/, dags/, plugins/), so the image also works
#     without the bind mounts compose adds for live editing.
#
# It sits beside docker-compose.yaml; the root Dockerfile is the Astro CLI's (Astro Runtime base,
# docs/environments.md).
#
# Keep the Airflow version here equal to `apache-airflow==` in requirements.txt
# (tests/infra/test_dockerfiles.py checks it).
FROM apache/airflow:3.3.2-python3.11

USER root
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# OS packages, one per line, `#` comments allowed: the same file Astro's build reads.
COPY packages.txt /tmp/packages.txt
# The versions are packages.txt's to pin (name=version); the list is split into words on purpose.
# hadolint ignore=DL3008,SC2086
RUN set -eux; \
    pkgs="$(sed -e 's/#.*//' /tmp/packages.txt | xargs)"; \
    if [ -n "${pkgs}" ]; then \
        apt-get update; \
        apt-get install -y --no-install-recommends ${pkgs}; \
        apt-get clean; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    rm -f /tmp/packages.txt
# localmaker's --home in compose: a new named volume starts as a copy of this empty, writable dir.
RUN install -d -o airflow -g 0 -m 2775 /data/localmaker

USER airflow
# Official pattern for extending the image: keep apache-airflow pinned while installing the rest.
COPY --chown=airflow:0 requirements.txt /requirements.txt
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /requirements.txt

# /opt/airflow is AIRFLOW_HOME and the project root: `include.mlpipeline` imports, `python -m
# localmaker` runs and relative paths in include/config (file://include/data/...) resolve from here.
ENV PYTHONPATH=/opt/airflow
COPY --chown=airflow:0 localmaker/ /opt/airflow/localmaker/
COPY --chown=airflow:0 smformats/ /opt/airflow/smformats/
COPY --chown=airflow:0 container/ /opt/airflow/container/
COPY --chown=airflow:0 include/ /opt/airflow/include/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
