# Two commands on a fresh machine: `make run` (the studio) and `make test` (the suite).
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 7860

.PHONY: setup run test test-all lint bench clean

setup:
	@./scripts/bootstrap.sh

run: setup
	$(BIN)/reelforge ui --host $(HOST) --port $(PORT) --sample

test: setup
	$(BIN)/python -m pytest -q

test-all: setup
	$(BIN)/python -m pytest -q -m "slow or not slow"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache
