# The documented entry points. CI runs `make test` (through .ci/run).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run demo test test-fast lint format bench fuzz clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all,test]'
	touch $(STAMP)

install: $(STAMP)

## Start the key service on an embedded SQLite database (./.jwkit); prints the console URL.
run: $(STAMP)
	$(BIN)/jwkit serve

## Generate a key, sign a token and verify it; print both.
demo: $(STAMP)
	$(BIN)/jwkit demo

## Lint, then the whole suite (unit, vectors, interop, HTTP, SQLite, PostgreSQL, browser).
test: $(STAMP) lint
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not postgres and not browser and not interop" -x -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks examples
	$(BIN)/ruff format src tests benchmarks examples

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

## Long fuzz run: atheris on token parsing/verification, JWK import, status lists; hypothesis on
## raw HTTP to a real server. FUZZ_SECONDS per target; corpora and findings in .fuzz/.
FUZZ_SECONDS ?= 300
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz.run --seconds $(FUZZ_SECONDS)

clean:
	rm -rf $(VENV) .jwkit .pytest_cache .mypy_cache .ruff_cache build dist
