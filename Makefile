# Thin wrappers; the work is done by chapterkit/, tests/ and benchmarks/. `make help` lists the targets.
# Set-up from a fresh clone is two commands: `make chapter`, then `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The PyTorch release this chapter is tested with, installed before the project so that pip keeps
# it (pyproject.toml admits any 2.x >= 2.1). Override e.g. with `make chapter TORCH=torch`.
TORCH  ?= torch==2.13.0
# Notebooks to execute: name prefixes, e.g. `make notebooks NB=05` or NB="02 03"; empty: all.
NB     ?=
# `make notebooks FORCE=1` re-executes notebooks whose outputs are already up to date.
FORCE  ?=
STAMP  := $(VENV)/.installed
BOOK_STAMP := $(VENV)/.book-installed

.DEFAULT_GOAL := help
.PHONY: help chapter test export export-check data notebooks quick bench bench-check book book-deps screenshots lint clean

help: ## list the targets
	@echo "usage: make TARGET [NB=05] [FORCE=1] [TORCH=torch]"
	@awk -F ':.*## ' '/^[a-z-]+:.*## / { printf "  %-13s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

$(BOOK_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e ".[book]"
	touch $@

chapter: $(STAMP) export data notebooks ## set-up 1/2: venv + install, export chapter.py, fetch data, execute the notebooks (full)

test: $(STAMP) $(BOOK_STAMP) ## set-up 2/2: the whole test suite (notebooks in quick mode; the book test needs chromium)
	$(PY) -m pytest

export: $(STAMP) ## rebuild chapter.py from the notebooks' %%save cells
	$(PY) -m chapterkit.export

export-check: $(STAMP) ## fail if chapter.py is stale
	$(PY) -m chapterkit.export --check

data: $(STAMP) ## download (or copy them from CHAPTER_DATA_MIRROR) and verify the datasets
	$(PY) -c "import chapterdata; chapterdata.fetch_all()"

notebooks: $(STAMP) ## execute notebooks in full mode into notebooks/*.ipynb (NB=05: one; FORCE=1: even if up to date)
	$(PY) -m chapterkit.execute $(if $(FORCE),--force) $(NB)

quick: $(STAMP) ## execute notebooks in quick mode into build/quick (seconds; NB= works too)
	$(PY) -m chapterkit.execute --quick --out build/quick $(if $(FORCE),--force) $(NB)

bench: $(STAMP) ## full-budget benchmarks -> benchmarks/results.json and RESULTS.md
	$(PY) -m benchmarks.run

bench-check: $(STAMP) ## check that the records match the chapter's configurations (no training)
	$(PY) -m benchmarks.run --check

book-deps: $(BOOK_STAMP) ## install the book's dependencies (the `book` extra)

book: $(BOOK_STAMP) ## the chapter as a static HTML site in _build/book/html
	$(PY) -m book.build

screenshots: book ## PNG screenshots of every page of the book (needs chromium)
	$(PY) -m book.screenshots

lint: $(STAMP) ## ruff on the code (chapter.py, chapterkit, experiments, tests, benchmarks, book, img)
	$(PY) -m ruff check chapter.py chapterdata.py fastrnn.py chapterkit experiments tests benchmarks book img

clean: ## remove build output and caches
	rm -rf build _build .pytest_cache
	rm -f benchmarks/results-quick.json benchmarks/RESULTS-quick.md benchmarks/results-quick.svg
