# Everything a fresh clone needs: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test lint demo bench clean localmaker up down system-deps

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

# ruff over the tree; mypy (non-strict, zero errors) over the modules [tool.mypy] lists in pyproject.toml
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: setup system-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

localmaker: setup
	$(PY) -m localmaker --images container/images.yaml

demo: setup
	$(PY) scripts/demo.py --model $(or $(MODEL),diabetes_dnn)

# localmaker + the Airflow 3 UI in the background (docs/ui.md); AIRFLOW_PORT, LOCALMAKER_PORT, UP_HOME.
# EXECUTOR=celery: docker-compose.yaml's topology (PostgreSQL, Redis, Celery workers; docs/environments.md)
up: setup
	UP_EXECUTOR=$(or $(EXECUTOR),$(UP_EXECUTOR)) $(PY) scripts/up.py

down:
	@if [ -x $(PY) ]; then $(PY) scripts/down.py; else python3 scripts/down.py; fi

# chromium, nginx, shellcheck, bubblewrap and socat (runtime: sandbox) for the tests that drive them: Debian's packages when root;
# never fails the build (those tests then skip, saying why)
system-deps:
	@bash scripts/ensure_system_deps.sh

bench: setup
	$(PY) bench/localmaker_overhead.py
	$(PY) bench/serving.py
	$(PY) bench/batch_transform.py
	$(PY) bench/tuning_parallel.py
	$(PY) bench/faults.py
	$(PY) bench/scaling.py
	$(PY) bench/recordio.py

clean:
	rm -rf .airflow .localmaker .pytest_cache .mypy_cache
