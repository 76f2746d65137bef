# livefuse: `make run` starts the daemon, `make test` runs the tests. Both set up what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: setup run test bench lint browser clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q 'torch==2.13.0' || echo "note: torch unavailable; the export tests will skip"
	touch $(STAMP)

setup: $(STAMP)

# Debian's chromium for the browser tests (root or sudo; skipped where apt is missing).
browser:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core; \
	fi

run: setup
	$(BIN)/livefuse run $(ARGS)

test: setup browser
	$(BIN)/ruff check livefuse tests tools benchmarks
	$(BIN)/pytest -q

bench: setup
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/run_all.py

lint: setup
	$(BIN)/ruff check livefuse tests tools benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
