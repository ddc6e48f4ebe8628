# One entry point with short verbs. `make run` serves, `make test` checks everything.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint unit bench bench-quick train clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[train,dev]'
	rm -f $(VENV)/.installed-* && touch $@

## run: train the notes' model if no bundle exists, then serve it on http://127.0.0.1:5000
run: $(STAMP)
	$(BIN)/mlkube train --if-missing
	$(BIN)/mlkube serve

train: $(STAMP)
	$(BIN)/mlkube train

## test: lint, then the whole test suite
test: lint unit

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

## bench: the full benchmark against the notes' app and MLServer (writes bench/RESULTS.md)
bench: $(STAMP)
	$(BIN)/python bench/run.py

bench-quick: $(STAMP)
	$(BIN)/python bench/run.py --quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
