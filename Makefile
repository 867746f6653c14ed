# The two Quick start commands: `make demo` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := .demo

FONT_DIR  := /usr/share/fonts/truetype
FONTS     := $(FONT_DIR)/dejavu/DejaVuSans.ttf $(FONT_DIR)/dejavu/DejaVuSans-Bold.ttf \
             $(FONT_DIR)/droid/DroidSansFallbackFull.ttf

.PHONY: demo test lint typecheck unit bench soak clean fonts

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); apt-get update -qq && \
	  apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install --quiet --upgrade pip==25.3
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## fonts: the fonts every PDF embeds (Latin, Greek, Cyrillic; CJK), from Debian (ADR 0028)
fonts:
	@for f in $(FONTS); do test -f $$f || { apt-get update -qq && apt-get install -y -qq \
	  --no-install-recommends fonts-dejavu-core fonts-droid-fallback; break; }; done

## demo: set up, initialise an embedded gateway (SQLite + folders) and run it over samples/
demo: $(STAMP) fonts
	rm -rf $(DEMO)
	$(BIN)/edi-gateway init $(DEMO) --samples samples
	$(BIN)/edi-gateway --config $(DEMO)/gateway.yaml run --once
	$(BIN)/edi-gateway --config $(DEMO)/gateway.yaml orders list

## test: set up and run the whole suite (lint, types, tests)
test: $(STAMP) fonts lint typecheck
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
