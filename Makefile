# livefuse: `make run` starts the daemon, `make test` runs the tests. Both set up what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

TRITON_VENV := .venv-triton

.PHONY: setup run test bench lint browser triton-env clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q 'torch==2.13.0' || echo "note: torch unavailable; the export tests will skip"
	touch $(STAMP)

setup: $(STAMP)

# A real Triton Inference Server for the Triton tests: PyTriton's tritonserver, whose Python-backend stub
# needs a shared-library Python 3.11 (Debian's; pyenv's fails in the stub). Skipped where there is none.
$(TRITON_VENV)/.installed:
	@if [ -x /usr/bin/python3.11 ]; then \
	  /usr/bin/python3.11 -m venv $(TRITON_VENV) && \
	  $(TRITON_VENV)/bin/pip install -q 'nvidia-pytriton==0.7.0' onnxruntime numpy && touch $@; \
	else echo "note: no /usr/bin/python3.11, so the Triton tests will skip"; fi

triton-env: $(TRITON_VENV)/.installed

# Debian's chromium for the browser tests (root or sudo; skipped where apt is missing).
browser:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core; \
	fi

run: setup
	$(BIN)/livefuse run $(ARGS)

test: lint browser triton-env
	$(BIN)/pytest -q

bench: setup
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/run_all.py

# ruff on everything, mypy on the package (its settings: [tool.mypy] in pyproject.toml). `make test` runs it first.
lint: setup
	$(BIN)/ruff check livefuse tests tools benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(TRITON_VENV) .pytest_cache .ruff_cache
