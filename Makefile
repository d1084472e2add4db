# Two entry points: `make run` and `make test` each set everything up first.
SHELL := /bin/bash
VENV ?= .venv
# durable-rules supports Python 3.11 and 3.12 only.
# (pyenv shims exist for versions that are not enabled, so each candidate is tried for real.)
PYTHON ?= $(shell for p in python3.12 python3.11 python3; do \
	$$p -c 'import sys; assert (3, 11) <= sys.version_info[:2] <= (3, 12)' 2>/dev/null && { echo $$p; break; }; done)
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint typecheck unit generate bench fuzz-long clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "need Python 3.11 or 3.12 (durable-rules)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# A request naming no ruleset gets safeguarding; without a default it would be refused (two are bundled).
run: setup
	$(BIN)/rules-engine serve --rulesets rulesets --plaintext --default-ruleset safeguarding

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy rules_engine

unit: setup
	bash .ci/ensure-tools
	$(BIN)/pytest

test: lint typecheck unit

generate: setup
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python proto/generate.py

bench: setup
	$(BIN)/python benchmarks/run.py

# The long profile of the property-based request test (100,000 requests; RELIABILITY.md has its figures).
fuzz-long: setup
	RULES_ENGINE_PROPERTY_EXAMPLES=100000 $(BIN)/pytest -s -p no:cacheprovider tests/reliability/test_properties.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
