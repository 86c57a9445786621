# Two commands for a fresh machine:  `make book`  and  `make test`.
# Both create .venv and install everything from requirements.txt (+ gen_utils, editable).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed-stamp

# Data root: $GEN_UTILS_DATA if set, else ../shared/data when it sits beside the checkout,
# else gen_utils' default (data/ in this checkout).
SHARED_DATA := $(abspath ../shared/data)
ifeq ($(strip $(GEN_UTILS_DATA)),)
ifneq ($(wildcard $(SHARED_DATA)),)
export GEN_UTILS_DATA := $(SHARED_DATA)
endif
endif

NB ?= notebooks/01_generative_modeling.ipynb
PROFILE ?=
TIMEOUT ?= 1800
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))

.PHONY: help install book screenshots test unit nbval lint export execute execute-all bootstrap clean gpu-check dry-run

help:
	@echo "make book      build the site from the committed notebook outputs (_build/html)"
	@echo "make screenshots  build the site, then PNGs of the intro and each chapter's first screen (_build/screenshots)"
	@echo "make test      unit tests, notebook hygiene, nbval (smoke profile), book build (-W), browser test"
	@echo "make execute NB=notebooks/01_generative_modeling.ipynb PROFILE=cpu   re-run one notebook in place"
	@echo "make bootstrap regenerate every notebook's Colab bootstrap cell from _config.yml"
	@echo "make export    write the cells marked '# export' to gen_utils/chapters/chNN_topic.py"
	@echo "make lint      ruff over gen_utils, tests and every notebook's code cells"
	@echo "make gpu-check every chapter in the gpu profile on a CUDA machine; one table of results"
	@echo "make dry-run   every chapter in the gpu profile, loops cut to a few steps, on this machine"

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build . --all -W -n --keep-going
	@echo "Open $(abspath _build/html/index.html)"

# What a reader sees, offline, in headless Chromium (Debian's `chromium`; see tests/browser.py).
screenshots: book
	$(BIN)/python tests/browser.py _build/html _build/screenshots

# The whole suite in one pytest run (so it ends with pytest's summary line):
# unit tests + hygiene + book build (tests/) and nbval of every notebook in the smoke profile.
test: $(STAMP)
	GEN_UTILS_PROFILE=smoke GEN_UTILS_HEADLESS=1 MPLBACKEND=Agg \
	  $(BIN)/python -m pytest tests $(NOTEBOOKS) --nbval-lax --nbval-cell-timeout=120 \
	  --durations=10 -q

unit: $(STAMP)
	$(BIN)/python -m pytest tests -q -k "not book_build"

nbval: $(STAMP)
	GEN_UTILS_PROFILE=smoke GEN_UTILS_HEADLESS=1 $(BIN)/python -m pytest $(NOTEBOOKS) \
	  --nbval-lax --nbval-cell-timeout=120 -q

# Notebook code cells are linted too (ruff reads .ipynb); `make test` runs the same check.
lint: $(STAMP)
	$(BIN)/ruff check gen_utils tests notebooks

# Chapter code is importable from one source: the notebook cells marked `# export`.
export: $(STAMP)
	$(BIN)/python -m gen_utils.export

# Re-execute a notebook in place (committed outputs come from here), then refresh its module.
execute: $(STAMP)
	GEN_UTILS_PROFILE=$(PROFILE) GEN_UTILS_HEADLESS=1 \
	  $(BIN)/python -m gen_utils.execute $(NB) --timeout $(TIMEOUT)
	$(BIN)/python -m gen_utils.export

# Every chapter in the gpu profile on a CUDA machine, 3 at a time, into _build/gpu; prints one table
# (seconds, peak GPU memory, headline metrics, gpu targets). Sized for < 9 min on one H100/H200.
gpu-check: $(STAMP)
	$(BIN)/python scripts/gpu_check.py --jobs 3

# Every chapter in the gpu profile as a dry run on this machine, each in <= 120 s (tests/test_dry_run.py).
dry-run: $(STAMP)
	$(BIN)/python -m pytest tests/test_dry_run.py -q --durations=0

execute-all: $(STAMP)
	for nb in $(NOTEBOOKS); do $(MAKE) execute NB=$$nb PROFILE=$(PROFILE) || exit 1; done

bootstrap: $(STAMP)
	$(BIN)/python -m gen_utils.bootstrap $(NOTEBOOKS)

clean:
	rm -rf _build
