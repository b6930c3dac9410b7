# One entry point per job. Every target bootstraps the venv it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# The demo needs fedclient and its sandbox extra only, not the test and lint tools.
DEMO_STAMP := $(VENV)/.demo-stamp

.PHONY: venv fedn-venv fedn-torch-venv site-venv protos docs lint test test-torch unit contract e2e interop demo bench clean

$(DEMO_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[sandbox]'
	touch $(DEMO_STAMP)

# uv (from PyPI, like everything else) installs the test tools in seconds where pip takes
# minutes; the tiers' other venvs are made with it too (tests/interop/installer.py). With
# PYTHONDONTWRITEBYTECODE set (this machine, CI) nothing would ever compile what uv installs,
# and every process the tests start would compile its imports again: hence --compile-bytecode.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip uv
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -e '.[dev,sandbox,examples,ray]'
	$(PY) -m compileall -q src  # the editable fedclient: its subprocesses in the tests import it precompiled
	touch $(STAMP) $(DEMO_STAMP)

venv: $(STAMP)

# The real FEDn 0.33.0 server for tests/interop lives in its own venv (fedn pins old
# grpcio/protobuf). Cached by a stamp inside it: a no-op unless the requirements changed.
fedn-venv: venv
	$(PY) tests/interop/fedn_venv.py

# The same server plus the libraries of FEDn's splitlearning_diabetes example (torch CPU,
# pandas, scikit-learn): its combiner runs FEDn's torch aggregator, its python the example.
fedn-torch-venv: venv
	$(PY) tests/interop/fedn_venv.py .fedn-torch-venv

# fedclient alone (no extras: no numpy, no fedn), as a site installs it; tests/interop
# runs fedclient from here. Cached by a stamp: a no-op unless pyproject.toml changed.
# Beside it fedclient[privacy] (numpy, dp-accounting) for tests/interop/test_privacy.py.
site-venv: venv
	$(PY) tests/interop/site_venv.py
	$(PY) tests/interop/site_venv.py --privacy

protos: venv
	$(PY) scripts/gen_protos.py

# docs/CONFIG.md is generated from the Settings model; a test fails when it is stale.
docs: venv
	$(PY) scripts/gen_config_docs.py

lint: venv
	$(VENV)/bin/ruff check src tests examples scripts bench
	$(VENV)/bin/ruff format --check src tests examples scripts bench
	$(VENV)/bin/mypy src/domain
	$(VENV)/bin/lint-imports
	$(VENV)/bin/vulture

# Everything but the torch example (its own target below, so that `make test` never pulls a
# multi-GB CUDA torch on an ordinary Linux machine); CI runs both. Two workers (pytest-xdist),
# each taking whole test files: most tests wait on servers and subprocesses, and a file's
# module fixtures (the Ray cluster) and the one TLS file (port 443) stay on one worker.
# 2 cores: 470 s against 817 s in one process.
test: lint fedn-venv site-venv
	$(PY) -m pytest -q -m "not torch" -n 2 --dist loadfile

# FEDn's splitlearning_diabetes example on a real FEDn with its torch aggregator. torch is
# pinned to 2.13.0: the CPU build that this project's machines keep on disk for pip; elsewhere
# that pin is PyPI's CUDA build (several GB).
test-torch: fedn-torch-venv site-venv
	$(PY) -m pytest -q -m torch tests/interop

unit: venv
	$(PY) -m pytest -q tests/unit

contract: venv
	$(PY) -m pytest -q tests/contract

e2e: venv
	$(PY) -m pytest -q tests/e2e

interop: fedn-venv site-venv
	$(PY) -m pytest -q -m "interop and not torch" tests/interop

# Figures, not tests, in quick mode: transfer, rounds, scale and simulate's stop (about 5 minutes on 2 vCPU),
# then the soak (rounds, losses, RSS, fds, tasks; a few minutes). Full runs: docs/PERFORMANCE.md.
bench: fedn-venv
	$(PY) bench/transfer.py --quick
	$(PY) bench/rounds.py --quick
	$(PY) bench/scale.py --quick
	$(PY) bench/stop.py --clients 1000 --after 3 --runs 1
	$(PY) bench/soak.py --quick

demo: $(DEMO_STAMP)
	$(VENV)/bin/fedclient sandbox --rounds 3 --clients 2 --package examples/digits --plot sandbox-rounds.png

clean:
	rm -rf $(VENV) .fedn-venv .fedn-venv.lock .fedn-torch-venv .fedn-torch-venv.lock .site-venv .site-venv.lock .site-privacy-venv .site-privacy-venv.lock .pytest_cache .mypy_cache .ruff_cache
