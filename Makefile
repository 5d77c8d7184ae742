# Two commands for a new user:   make demo   and   make test
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install test unit integration lint mutation demo bench bench-quick bench-scale docs clean

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[sandbox,dev]'
	touch $@

install: $(VENV)/.installed  ## create .venv with the client, the sandbox and dev tools

test: install  ## the whole test suite: unit and integration
	$(BIN)/python -m pytest

unit: install  ## unit tests only (no sandbox process)
	$(BIN)/python -m pytest -m "not integration"

integration: install  ## integration tests against a real sandbox process
	$(BIN)/python -m pytest -m integration

lint: install  ## ruff, formatting, mypy and the layer contracts (import-linter)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy src/ghga_connector
	$(BIN)/lint-imports

# MODULES="core/decrypt.py c4gh/": only the mutants of those modules (paths under
# src/ghga_connector/) are run and reported; the unit tests still run once unmutated.
MODULES ?=
MUTANTS = $(foreach m,$(MODULES),ghga_connector.$(subst /,.,$(patsubst %.py,%,$(patsubst %/,%,$(patsubst src/ghga_connector/%,%,$(m))))).*)

mutation: install  ## mutation testing of core/, c4gh/ and adapters/ against the unit tests (mutmut; long); MODULES="core/decrypt.py c4gh/" for some modules only
ifeq ($(strip $(MODULES)),)
	rm -rf mutants
	$(BIN)/mutmut run
	$(BIN)/mutmut results
else
	$(BIN)/mutmut run $(foreach p,$(MUTANTS),'$(p)')
	$(BIN)/mutmut results | grep -F $(foreach p,$(MUTANTS),-e '$(patsubst %.*,%.,$(p))') || echo "No surviving mutants in $(MODULES)."
endif

docs: install  ## regenerate docs/configuration.md from the settings model
	$(BIN)/python -m ghga_connector.docs_gen > docs/configuration.md

demo: install  ## upload, archive, download and decrypt the example files on a local sandbox
	$(BIN)/python examples/demo.py

bench: install  ## the full benchmark, 3 repetitions (over an hour on 2 cores; --reps 1: ~25 min)
	$(BIN)/python -m benchmarks --reps 3

bench-scale: install  ## 200 GB up and down through the real client, sink S3 (about an hour on 2 cores)
	$(BIN)/python -m benchmarks --cases scale --scale-gb 200

bench-quick: install  ## a short benchmark, 1 repetition (about 3 minutes on 2 idle cores)
	$(BIN)/python -m benchmarks --quick --reps 1

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache mutants
