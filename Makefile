# The documented entry points. CI runs `make test` (through .ci/run).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# The Python the venv runs; mypy also checks the code for it when it is newer than the oldest
# one the package claims (pyproject's [tool.mypy] python_version).
PYV     = $(shell $(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
MYPY_OLDEST := $(shell sed -n 's/^python_version = "\(.*\)"/\1/p' pyproject.toml)

.PHONY: install run demo test test-fast lint format bench fuzz dist docs docs-serve clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all,test,docs]'
	touch $(STAMP)

install: $(STAMP)

## Start the key service on an embedded SQLite database (./.jwkit); prints the console URL.
run: $(STAMP)
	$(BIN)/jwkit serve

## Generate a key, sign a token and verify it; print both.
demo: $(STAMP)
	$(BIN)/jwkit demo

## Lint, then the whole suite (unit, vectors, interop, HTTP, SQLite, PostgreSQL, browser, the
## built wheel in a fresh venv, the strict docs build and its code blocks), with branch coverage
## of jwkit and a floor under it: 86.37 % (lines and branches) measured on 2026-12-06 without
## the browser, PostgreSQL, release and docs tests; the whole suite covers at least that.
COV_FLOOR := 86
## The JOSE core has its own floor, read from the same run's coverage data (no second run):
## every line and branch of src/jwkit/jose (issue 17); tests/jose and tests/vectors alone reach them.
JOSE_COV_FLOOR := 100
## In parallel (pytest-xdist): one worker per CPU, each test file on one worker (its module and
## package fixtures -- servers, PostgreSQL, Chromium -- start once per worker that runs it);
## pytest-cov combines the workers' coverage. `make test XDIST=` runs it in one process.
XDIST ?= -n auto --dist loadfile
test: $(STAMP) lint
	$(BIN)/python -m pytest $(XDIST) --cov=jwkit --cov-branch --cov-report=term:skip-covered \
		--cov-fail-under=$(COV_FLOOR)
	$(BIN)/python -m coverage report --include='*/jwkit/jose/*' --show-missing \
		--skip-covered --fail-under=$(JOSE_COV_FLOOR)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not postgres and not browser and not interop and not release and not docs" -x -q

## ruff (lint and format check), then mypy --strict for the oldest Python the package claims (requires-python) and for
## the Python installed in the venv when that one is newer.
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples docs/_hooks
	$(BIN)/ruff format --check src tests benchmarks examples docs/_hooks
	$(BIN)/mypy
	test "$(PYV)" = "$(MYPY_OLDEST)" || $(BIN)/mypy --python-version $(PYV) --cache-dir .mypy_cache/newest

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks examples docs/_hooks
	$(BIN)/ruff format src tests benchmarks examples docs/_hooks

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

## Long fuzz run: atheris on token parsing/verification, JWK import, status lists; hypothesis on
## raw HTTP to a real server. FUZZ_SECONDS per target; corpora and findings in .fuzz/.
FUZZ_SECONDS ?= 300
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz.run --seconds $(FUZZ_SECONDS)

## The release: sdist and wheel in dist/ (version from src/jwkit/_version.py).
## tests/release installs the wheel into a fresh venv; JWKIT_DIST_DIR=dist tests these very files.
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

## The documentation site in site/ (strict: a broken link or reference fails the build).
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

docs-serve: $(STAMP)
	$(BIN)/mkdocs serve

clean:
	rm -rf $(VENV) .jwkit .pytest_cache .mypy_cache .ruff_cache build dist site
