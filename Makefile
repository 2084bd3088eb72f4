# Quick start: `make demo` (the main job, offline) and `make test` (the suite).
# Both create .venv in the repo root if missing and install the pinned stack.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat setup.py | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: install demo test test-quick test-extra bench lint clean

install: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m garden.demo --out runs/demo

# The whole suite: sweep, unit tests and the `large` behavioural checks.
test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

# The fast loop while developing: no behavioural training runs.
test-quick: $(STAMP)
	$(PY) -m pytest -n 2 -m "not large and not extra_large" $(PYTEST_ARGS)

# Paper-scale checks; never in CI.
test-extra: $(STAMP)
	$(PY) -m pytest -m extra_large $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m garden bench mae

clean:
	rm -rf $(VENV) runs
