# ChipChip Pulse: one command each to run, test and benchmark (see README).
#   make run            demo data (if the database is empty) + dashboard on http://$(HOST):$(PORT)
#   make run SIMULATE=1 the same with the live-order simulator running beside it
#   make test           test requirements + system packages + the whole pytest suite
#   make bench          the project's benchmark command
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8050
SIMULATE ?= 0
SIMULATE_CMD ?= $(PY) -m dashboard simulate
# Extra pytest arguments, e.g. make test PYTEST_ARGS="-k cohort -x"
PYTEST_ARGS ?=
# A hung test (a browser waiting forever) fails alone instead of eating CI's time.
PYTEST_TIMEOUT ?= 600
BENCH_ARGS ?=

.PHONY: help venv venv-test services run test bench clean

help:
	@echo "make run [SIMULATE=1] | make test [PYTEST_ARGS=...] | make bench | make venv | make clean"

# The venv is made once; requirements are (re)installed only when a requirements file changes.
$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-runtime: requirements.txt | $(PY)
	$(PY) -m pip install -q -r requirements.txt
	@touch $@

$(VENV)/.installed-test: requirements-test.txt requirements.txt $(VENV)/.installed-runtime
	$(PY) -m pip install -q -r requirements-test.txt
	@touch $@

venv: $(VENV)/.installed-runtime

venv-test: $(VENV)/.installed-test

services:
	@bash scripts/ensure_services.sh

run: venv
	$(PY) -m dashboard seed --if-empty
	$(PY) -m dashboard sweep
	@if [ "$(SIMULATE)" = "1" ]; then \
		echo "starting the simulator and the pipeline: $(SIMULATE_CMD); $(PY) -m dashboard etl --follow"; \
		$(SIMULATE_CMD) & sim=$$!; \
		$(PY) -m dashboard etl --follow --interval 5 & follow=$$!; \
		trap 'kill $$sim $$follow 2>/dev/null; wait $$sim $$follow 2>/dev/null' EXIT INT TERM; \
		$(PY) -m dashboard run --host $(HOST) --port $(PORT); \
	else \
		exec $(PY) -m dashboard run --host $(HOST) --port $(PORT); \
	fi

# pytest exit codes pass through unchanged, except 5 (no tests collected), which is a failure
# here: a suite that silently ran nothing must not look green.
test: venv-test services
	@set +e; \
	$(PY) -m pytest --headless -p no:cacheprovider --timeout=$(PYTEST_TIMEOUT) $(PYTEST_ARGS); \
	rc=$$?; \
	if [ $$rc -eq 5 ]; then \
		echo "make test: FAILED: pytest collected no tests (exit code 5)" >&2; exit 1; \
	fi; \
	exit $$rc

bench: venv
	$(PY) -m dashboard bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache bench-results screenshots
	find . -path ./.venv -prune -o -path ./.git -prune -o -name __pycache__ -type d -exec rm -rf {} +
