# Everything a fresh clone needs: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test lint demo bench clean localmaker

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check .

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

localmaker: setup
	$(PY) -m localmaker --images container/images.yaml

demo: setup
	$(PY) scripts/demo.py

bench: setup
	$(PY) bench/localmaker_overhead.py

clean:
	rm -rf .airflow .localmaker .pytest_cache
