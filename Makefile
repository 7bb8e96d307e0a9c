# rs_seg2any — the two commands at the top of the README are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
DEMO_OUT ?= demo_out
STAMP  := $(VENV)/.installed-dev

.PHONY: install demo test lint typecheck pytest bench clean

# torch is pinned first so that pip takes the CPU build instead of pulling CUDA packages.
TORCH ?= torch==2.13.0

# One environment for everything: the library, its CLI, the generators and the dev tools.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## demo: install, then render the demo town (a layout made by code) with the embedded model
## on CPU into $(DEMO_OUT)/: image.tif plus label, instance and contour maps on one grid
demo: $(STAMP)
	test -f $(DEMO_OUT)/demo_town.gpkg || $(VENV)/bin/rs-seg2any demo-layer $(DEMO_OUT)/demo_town.gpkg
	$(VENV)/bin/rs-seg2any generate $(DEMO_OUT)/demo_town.gpkg --class-field landcover \
		--description-field description --taxonomy dubai_aerial --resolution 0.5 \
		--seed 1 --out $(DEMO_OUT)

## test: install, then lint, type-check and run every test (the QGIS plugin's too where
## Debian's QGIS is installed: CI installs it, other machines may not have it)
QGIS_PROCESS_BIN ?= /usr/bin/qgis_process.bin
test: $(STAMP) lint typecheck pytest $(if $(wildcard $(QGIS_PROCESS_BIN)),test-qgis)

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
	$(PY) bench/bench_tiny.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .mypy_cache .ruff_cache

# --- QGIS plugin (qgis_plugin/, GPL-2.0-or-later) ---------------------------------------
# QGIS 3.22 from Debian runs on the system Python 3.11 and has no torch: the plugin's tests
# run in their own venv on top of it and drive the CLI of $(VENV) like a user's backend.
QGIS_VENV  ?= .venv-qgis
QGIS_STAMP := $(QGIS_VENV)/.installed-qgis
QGIS_PY    := $(QGIS_VENV)/bin/python
QGIS_ENV   := QT_QPA_PLATFORM=offscreen RS_SEG2ANY_CLI=$(CURDIR)/$(VENV)/bin/rs-seg2any

.PHONY: test-qgis lint-qgis plugin qgis-screenshots

$(QGIS_STAMP):
	/usr/bin/python3 -m venv --system-site-packages $(QGIS_VENV)
	$(QGIS_VENV)/bin/pip install --quiet "pytest>=8" "pytest-qgis==2.1.0" "qgis-plugin-tools<2"
	touch $(QGIS_STAMP)

## test-qgis: the plugin's tests in real QGIS, offscreen (needs: apt install qgis python3-qgis)
test-qgis: $(STAMP) $(QGIS_STAMP) lint-qgis
	$(QGIS_ENV) $(QGIS_PY) -m pytest -c tests/qgis/pytest.ini tests/qgis -q

lint-qgis: $(STAMP)
	$(VENV)/bin/ruff check qgis_plugin tests/qgis
	$(VENV)/bin/ruff format --check qgis_plugin tests/qgis

## plugin: the installable plugin zip (qgis-plugin-tools bundled) in dist/
plugin: $(QGIS_STAMP)
	$(QGIS_PY) qgis_plugin/tools/build_plugin.py --out dist

## qgis-screenshots: docs/images/qgis_dialog.png and qgis_result.png, under Xvfb
qgis-screenshots: $(STAMP) $(QGIS_STAMP)
	RS_SEG2ANY_CLI=$(CURDIR)/$(VENV)/bin/rs-seg2any xvfb-run -a -s "-screen 0 1600x1000x24" $(QGIS_PY) \
		qgis_plugin/tools/screenshots.py --out docs/images
