# rs_seg2any — the two commands at the top of the README are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
DEMO_OUT ?= demo_out
STAMP  := $(VENV)/.installed-dev

.PHONY: install demo test lint typecheck pytest bench clean

# One environment for everything: the library, its CLI and the developer tools.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## demo: install, then render the demo town (a layout made by code) into $(DEMO_OUT)/
demo: $(STAMP)
	$(VENV)/bin/rs-seg2any demo-layer $(DEMO_OUT)/demo_town.gpkg
	$(VENV)/bin/rs-seg2any layout $(DEMO_OUT)/demo_town.gpkg --class-field landcover \
		--description-field description --taxonomy dubai_aerial --resolution 0.5 \
		--out $(DEMO_OUT)

## test: install, then lint, type-check and run every test
test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check rs_seg2any geoconf tests bench
	$(VENV)/bin/ruff format --check rs_seg2any geoconf tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy rs_seg2any

pytest: $(STAMP)
	$(PY) -m pytest -q

## bench: speed and memory ratios against baselines measured in the same run
bench: $(STAMP)
	$(PY) bench/bench_rasterize.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .mypy_cache .ruff_cache
