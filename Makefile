# archive_pipeline: two commands do all the set-up on a fresh machine.
#   make demo   install everything, run the main job on the embedded default, print the result
#   make test   install everything, then ruff + definitions check + pytest
SHELL := /bin/bash
.DEFAULT_GOAL := help

ARCHIVE_HOME ?= $(CURDIR)/.archive
DAGSTER_HOME ?= $(ARCHIVE_HOME)/dagster_home
export ARCHIVE_HOME DAGSTER_HOME
UV_VERSION := 0.13.8
PYTHON ?= python3
UV := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/uv
VENV := .venv
EXTRAS := --extra ml --extra speech --extra vision --extra dev
BIN := $(VENV)/bin
# chromium + chromium-driver: the search page's browser test (Selenium)
# tesseract-ocr-script-frak: Tesseract's Fraktur model (historic print; Tesseract itself is inside
# the tesserocr wheel)
APT_PACKAGES := ffmpeg espeak-ng fonts-dejavu-core postgresql procps iproute2 libgl1 libglib2.0-0 \
  chromium chromium-driver tesseract-ocr-script-frak
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help system uv install install-paddle fonts demo test test-fast lint ui serve screenshot bench instance clean

help:
	@echo "make demo  - install and run the pipeline on the demo archive (ARCHIVE_HOME=$(ARCHIVE_HOME))"
	@echo "make test  - install and run ruff + pytest"
	@echo "make ui    - Dagster UI + daemon on http://127.0.0.1:3000 against the same instance"
	@echo "make serve - search service and page on http://127.0.0.1:$(SEARCH_PORT) (after make demo)"
	@echo "make bench - benchmarks (see benchmarks/)"

# System packages: media tools, speech synthesis for the demo, PostgreSQL for the storage test.
system:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

uv:
	@[ -x "$(UV)" ] && "$(UV)" --version | grep -q "$(UV_VERSION)" || $(PYTHON) -m pip install -q "uv==$(UV_VERSION)"

# Python environment from the lock file (uv.lock); editable install of this package.
install: system uv
	@"$(UV)" sync --frozen $(EXTRAS) --quiet
	@# an environment made before opencv-python was dropped lost cv2 with it: put it back
	@$(BIN)/python -c "import cv2" 2>/dev/null || "$(UV)" sync --frozen $(EXTRAS) --quiet --reinstall-package opencv-python-headless
	@echo "environment ready: $(VENV) ($$($(BIN)/python --version))"

# PaddleOCR pins numpy < 2.4 and OpenCV 4.10: it gets its own environment from the same lock.
PADDLE_VENV := .venv-paddle
install-paddle: system uv
	@UV_PROJECT_ENVIRONMENT=$(PADDLE_VENV) "$(UV)" sync --frozen --extra paddle --extra dev --quiet
	@echo "PaddleOCR environment ready: $(PADDLE_VENV)"

# The instance folder with dagster.yaml, its storage created once here: the webserver and
# the daemon starting together on a brand-new SQLite instance can race to migrate it.
instance:
	@mkdir -p "$(DAGSTER_HOME)" && cp dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"
	@$(BIN)/python -c "from archive_pipeline.ops.runner import prepare_instance; prepare_instance()"

# Two Fraktur fonts (OFL, from npm's @expo-google-fonts packages) for the generated Fraktur pages
# that the OCR tests and vision_quality.py read (archive_pipeline.quality.generated).
FONTS := .cache/fonts
fonts:
	@[ -f $(FONTS)/UnifrakturMaguntia_400Regular.ttf ] && [ -f $(FONTS)/UnifrakturCook_700Bold.ttf ] || { \
	  command -v npm >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends npm >/dev/null; }; \
	  tmp=$$(mktemp -d) && (cd $$tmp && npm pack -q @expo-google-fonts/unifrakturmaguntia@0.4.1 @expo-google-fonts/unifrakturcook@0.4.1 >/dev/null) \
	  && for t in $$tmp/*.tgz; do tar xzf $$t -C $$tmp; done && mkdir -p $(FONTS) \
	  && cp $$tmp/package/*/*.ttf $(FONTS)/ && rm -rf $$tmp && echo "Fraktur fonts ready: $(FONTS)"; }

demo: install instance
	$(BIN)/archive-pipeline demo

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install install-paddle fonts lint
	DAGSTER_HOME=$$(mktemp -d) $(BIN)/dagster definitions validate -w workspace.yaml
	@# two pytest processes at once, then the 25 slowest tests (scripts/test_lanes.sh says how)
	@scripts/test_lanes.sh

# The fast lane while working (the slow tests still run in `make test` and CI), in two pytest
# processes at once as `make test` runs the suite.
test-fast: install fonts lint
	@FAST=1 scripts/test_lanes.sh

# `dagster dev` runs the webserver and the daemon (run queue, sensors, backfills) together,
# beside the warm model workers (`archive-pipeline workers`: a local Ray that runs join, models
# kept loaded); `archive-pipeline ui` stops all of it on Ctrl-C or SIGTERM (make itself only
# passes a signal sent to its process group: stop it with Ctrl-C, `kill -- -PGID`, or run the
# command directly).
ui: install instance
	@echo "Dagster UI and daemon: http://127.0.0.1:3000, warm model workers (Ctrl-C stops all)"
	$(BIN)/archive-pipeline ui --port 3000

# The search API and page over the same warehouse (the query model loads once, at start).
SEARCH_PORT ?= 8765
serve: install
	@echo "Search page: http://127.0.0.1:$(SEARCH_PORT)/  (API: /search?q=..., /openapi.json; Ctrl-C stops it)"
	$(BIN)/archive-search serve --host 127.0.0.1 --port $(SEARCH_PORT)

screenshot: install instance
	$(BIN)/python scripts/screenshot_ui.py --out-dir screenshots

bench: install fonts instance
	$(BIN)/python benchmarks/catalog.py
	$(BIN)/python benchmarks/scale.py
	$(BIN)/python benchmarks/speech_quality.py
	$(BIN)/python benchmarks/speech.py
	$(BIN)/python benchmarks/vision.py
	$(BIN)/python benchmarks/vision_quality.py
	$(BIN)/python benchmarks/search.py
	$(BIN)/python benchmarks/threads.py
	$(BIN)/archive-pipeline demo >/dev/null  # the demo warehouse the relevance queries are labelled on
	$(BIN)/python benchmarks/search_quality.py
	$(BIN)/python benchmarks/retrieval_quality.py --warehouse "$(ARCHIVE_HOME)/warehouse"

clean:
	rm -rf "$(ARCHIVE_HOME)"
