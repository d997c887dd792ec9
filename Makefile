# Lookalike: the two commands of the README, and the pieces they are made of.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8000
BIN := $(VENV)/bin

.PHONY: demo test test-fast lint bench install install-dev test-deps

## demo: set up everything offline, train, ingest the demo catalogue, search once, then serve the web app
demo: install
	$(BIN)/lookalike demo
	$(BIN)/lookalike serve --port $(PORT)

## test: install the test dependencies (Python packages, MariaDB, Chromium, nginx), lint, and run every test
test: install-dev test-deps lint
	$(BIN)/python -m pytest

## test-fast: the unit tier only: no database server, no ../shared, no browser (tests/README.md)
test-fast: install-dev
	$(BIN)/python -m pytest -m unit

## lint: ruff, and mypy on the core packages (configured in pyproject.toml)
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/mypy

## bench: measure every speed figure against its baseline (under 15 minutes); writes docs/benchmarks.md
bench: install-dev test-deps
	$(BIN)/python -m bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt -e .

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt -e .

test-deps:
	scripts/install-test-deps.sh
