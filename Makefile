# The two commands: `make demo` and `make test`. Each bootstraps .venv, the Debian
# packages and the data/model files itself, only where they are missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
GLASSES := $(VENV)/bin/glasses

.PHONY: help setup data demo test bench fuzz lint format lock clean

help:
	@echo "make demo   run the demo on embedded defaults, write demo-report/index.html"
	@echo "make test   set up everything, lint, type-check and run the tests"
	@echo "make bench  run every benchmark (tables; ARGS=--json for JSON Lines)"

setup:
	@scripts/setup

data: setup
	@$(GLASSES) data install
	@$(GLASSES) models build

demo: data
	@$(GLASSES) demo --out demo-report

test:
	@scripts/test

# Every comparison in benchmarks/, one after another; with ARGS=--json each prints one
# JSON document on a line of its own (JSON Lines).
BENCHES ?= bridge capture cloud wakeword chaos assistant
bench: data
	@$(GLASSES) bench preprocess $(ARGS)
	@$(GLASSES) models bench $(ARGS)
	@for b in $(BENCHES); do $(VENV)/bin/python -m benchmarks.bench_$$b $(ARGS) || exit 1; done

# The protocol fuzzer for longer than CI runs it (FUZZ_SECONDS, default 600).
fuzz: setup
	@mkdir -p .cache/fuzz-corpus
	@$(VENV)/bin/python tests/fuzz/fuzz_protocol.py -max_total_time=$${FUZZ_SECONDS:-600} \
	  -rss_limit_mb=2048 -timeout=5 -print_final_stats=1 .cache/fuzz-corpus

lint: setup
	@$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

format: setup
	@$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

# Re-pins requirements/lock.txt from pyproject.toml in a throw-away venv. Existing pins
# are kept (passed as constraints) so that adding a dependency upgrades nothing else;
# delete a line, or run `make lock LOCK_KEEP=`, to let a package move.
LOCK_KEEP ?= -c requirements/lock.txt
lock:
	@rm -rf .lock-venv && python3.11 -m venv .lock-venv
	@.lock-venv/bin/pip install --quiet --upgrade "pip>=25"
	@.lock-venv/bin/pip install --quiet $(LOCK_KEEP) ".[cloud,serve,tracing,ble,models,dev]"
	@{ echo "# Pinned by 'make lock' from pyproject.toml extras cloud, serve, tracing, ble, models, dev. Do not edit."; \
	   .lock-venv/bin/pip freeze --exclude-editable | grep -v '^glasses-sdk'; } > requirements/lock.txt
	@rm -rf .lock-venv && echo "requirements/lock.txt updated"

clean:
	rm -rf $(VENV) .cache demo-report .mypy_cache .ruff_cache .hypothesis
