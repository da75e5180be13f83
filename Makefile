# Thin wrappers; the work is done by chapterkit/, tests/ and benchmarks/.
#   make chapter   venv + install, export chapter.py, fetch data, execute every notebook (full mode)
#   make test      the whole test suite (notebooks run in quick mode)
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The PyTorch release this chapter is tested with, installed before the project so that pip keeps
# it (pyproject.toml admits any 2.x >= 2.1). Override e.g. with `make chapter TORCH=torch`.
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed
BOOK_STAMP := $(VENV)/.book-installed

.PHONY: chapter test export export-check data notebooks quick bench book book-deps screenshots lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

$(BOOK_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e ".[book]"
	touch $@

chapter: $(STAMP) export data notebooks

export: $(STAMP)
	$(PY) -m chapterkit.export

export-check: $(STAMP)
	$(PY) -m chapterkit.export --check

data: $(STAMP)
	$(PY) -c "import chapter; chapter.fetch_all()"

notebooks: $(STAMP)
	$(PY) -m chapterkit.execute

quick: $(STAMP)
	$(PY) -m chapterkit.execute --quick --out build/quick

# The book's browser test needs Debian's chromium; without it (and outside CI) it is skipped.
test: $(STAMP) $(BOOK_STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m benchmarks.run

book-deps: $(BOOK_STAMP)

book: $(BOOK_STAMP)
	$(PY) -m book.build

screenshots: book
	$(PY) -m book.screenshots

lint: $(STAMP)
	$(PY) -m ruff check chapter.py chapterkit tests benchmarks book img

clean:
	rm -rf build _build .pytest_cache
