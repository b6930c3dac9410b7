# One entry point per job. Every target bootstraps the venv it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv protos lint test unit contract e2e interop demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,sandbox,examples]'
	touch $(STAMP)

venv: $(STAMP)

protos: venv
	$(PY) scripts/gen_protos.py

lint: venv
	$(VENV)/bin/ruff check src tests examples scripts bench
	$(VENV)/bin/ruff format --check src tests examples scripts bench
	$(VENV)/bin/mypy src/domain
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest -q

unit: venv
	$(PY) -m pytest -q tests/unit

contract: venv
	$(PY) -m pytest -q tests/contract

e2e: venv
	$(PY) -m pytest -q tests/e2e

demo: venv
	$(VENV)/bin/fedclient sandbox --rounds 3 --clients 2 --package examples/digits

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
