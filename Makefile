# Two commands for a fresh machine with Python 3.11+:
#   make run    set everything up and run the daemon (embedded PostgreSQL)
#   make test   set everything up and run every check and the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
STATIC := arbengine/api/static

.PHONY: run run-sim test lint typecheck unit install clean system-deps

# The dashboard's npm packages (the chart library; axe-core for the browser tests) come from
# the lockfile, with the node and npm that pip installed.
$(STAMP): pyproject.toml $(STATIC)/package.json $(STATIC)/package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/npm ci --prefix $(STATIC) --no-audit --no-fund --loglevel=error
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/arbengine run

run-sim: $(STAMP)
	$(BIN)/arbengine run --sim

lint: $(STAMP)
	$(BIN)/ruff check arbengine tests
	$(BIN)/ruff format --check arbengine tests
	$(BIN)/lint-imports

# The whole package is held to mypy --strict ([tool.mypy] in pyproject.toml).
typecheck: $(STAMP)
	$(BIN)/mypy arbengine

# Debian's Chromium for the browser test of the page (installed when missing and we are root;
# otherwise that one test is skipped and says why).
system-deps:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	fi

# A temporary tree of its own: pytest's shared one (/tmp/pytest-of-USER) is made private again by
# any other pytest session that starts meanwhile, which locks out the embedded PostgreSQL's user.
# Two workers (each with its own embedded PostgreSQL and temporary tree): most of the suite's
# time is e2e tests waiting on daemons and the sim. Work stealing: the default scheduling hands
# each worker a quarter of the suite up front, and with the slow e2e tests first in that share
# one worker was left with minutes of them while the other had finished everything else. The
# slowest tests are listed at the end: the whole run must stay well under 20 minutes.
test: system-deps lint typecheck
	$(BIN)/pytest --basetemp="$${TMPDIR:-/tmp}/arbengine-tests" -n 2 --dist worksteal --durations=30

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
