# The two Quick start commands: `make demo` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := .demo

.PHONY: demo test lint typecheck unit bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); apt-get update -qq && \
	  apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install --quiet --upgrade pip==25.3
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## demo: set up, initialise an embedded gateway (SQLite + folders) and run it over samples/
demo: $(STAMP)
	rm -rf $(DEMO)
	$(BIN)/edi-gateway init $(DEMO) --samples samples
	$(BIN)/edi-gateway --config $(DEMO)/gateway.yaml run --once
	$(BIN)/edi-gateway --config $(DEMO)/gateway.yaml orders list

## test: set up and run the whole suite (lint, types, tests)
test: $(STAMP) lint typecheck
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/intake.py

soak: $(STAMP)
	$(BIN)/python bench/fuzz.py --inputs 20000
	$(BIN)/python bench/soak_instances.py

clean:
	rm -rf $(VENV) $(DEMO) build *.egg-info src/*.egg-info
