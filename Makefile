# dlrun: `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=

.DEFAULT_GOAL := help
.PHONY: help install run test test-all bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv if missing and install dlrun with its test tools

run: $(STAMP) ## train the default experiment (MLP on digits); pass overrides with ARGS="..."
	$(BIN)/dlrun train $(ARGS)

test: $(STAMP) ## run the fast test suite (fails when no test runs)
	$(BIN)/python -m pytest -m "not slow" -q $(ARGS)

test-all: $(STAMP) ## run every test, slow ones included
	$(BIN)/python -m pytest -q $(ARGS)

bench: $(STAMP) ## run benchmarks/ (several minutes) and rewrite benchmarks/RESULTS.md
	$(BIN)/python benchmarks/run_all.py

clean: ## remove caches and build files (keeps .venv and experiments/)
	rm -rf build dist *.egg-info .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
