# Two commands: `make run` starts the whole stack, `make test` runs the tests. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TRAIN_STAMP := $(VENV)/.installed-train

.PHONY: install install-train run test test-fast lint format train export evaluate bench flower clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .  # the `oilspill` command; imports from any folder
	touch $@

install: $(STAMP) ## create .venv with runtime and test dependencies

$(TRAIN_STAMP): $(STAMP) requirements-train.txt
	$(BIN)/python -m pip install --quiet -r requirements-train.txt
	touch $@

install-train: $(TRAIN_STAMP) ## add torch (CPU) and onnx for training/export

run: $(STAMP) ## start Redis (embedded if none), ML service, worker, beat and API; Ctrl-C stops all
	$(BIN)/python -m scripts.stack

test: $(STAMP) ## the whole test suite (unit + end-to-end with real processes)
	$(BIN)/python -m pytest

test-fast: $(STAMP) ## unit tests only
	$(BIN)/python -m pytest -m "not e2e"

lint: $(STAMP) ## ruff (style) and mypy (types); CI runs it before the tests
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

train: $(TRAIN_STAMP) ## train SlickNet (resumes from runs/slicknet/last.pt)
	$(BIN)/python -m ml.training.train --resume

export: $(TRAIN_STAMP) ## export runs/slicknet/best.pt to ml/models/slicknet.onnx
	$(BIN)/python -m ml.training.export

evaluate: $(STAMP) ## validation figures of the committed model (needs ../shared data)
	$(BIN)/python -m ml.training.evaluate --images ../shared/data/sos-sentinel1-train/images \
		--masks ../shared/data/sos-sentinel1-train/masks --split val

bench: $(STAMP) ## throughput, upload and status benchmarks (docs/benchmarks.md); each starts its own stack
	$(BIN)/python -m bench.ml_latency
	$(BIN)/python -m bench.pipeline --rounds 15
	$(BIN)/python -m bench.ml_parts
	$(BIN)/python -m bench.upload_memory
	$(BIN)/python -m bench.status_latency
	$(BIN)/python -m bench.scene
	$(BIN)/python -m bench.far_range

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache var

flower: $(STAMP) ## Celery monitoring UI on http://127.0.0.1:5555, behind FLOWER_AUTH=user:password
	FLOWER_BASIC_AUTH="$${FLOWER_AUTH:?set FLOWER_AUTH=user:password}" $(BIN)/python -m scripts.processes flower
