# livefuse: `make run` starts the daemon, `make test` runs the tests. Both set up what they need: `make run` only
# what the daemon runs with, `make test` the test tools and PyTorch on top.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

TRITON_VENV := .venv-triton

.PHONY: setup setup-test run test bench lint hooks browser triton-env clean

TEST_STAMP := $(VENV)/.installed-test
# On a machine with an NVIDIA GPU, CUDA and cuDNN come from NVIDIA's wheels (livefuse[cuda]); EXTRAS= turns it off.
EXTRAS ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo cuda)
SPEC := .$(if $(strip $(EXTRAS)),[$(strip $(EXTRAS))])

# `make run`: the runtime set only (no test tools, no PyTorch).
$(STAMP): pyproject.toml setup.py
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '$(SPEC)'
	touch $(STAMP)

# `make test` adds the test set, and PyTorch for `models export` and its tests.
$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q 'torch==2.13.0' || echo "note: torch unavailable; the export tests will skip"
	touch $(TEST_STAMP)

setup: $(STAMP)

setup-test: $(TEST_STAMP)

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

# ruff (lint and format) on everything, mypy on the package and its tests (its settings: [tool.mypy] in pyproject.toml). `make test`
# runs it first.
lint: setup-test
	$(BIN)/ruff check livefuse tests tools benchmarks
	$(BIN)/ruff format --check livefuse tests tools benchmarks
	$(BIN)/mypy

# git's commit-msg hook: "area: change" subjects of at most 72 characters (tools/commit_msg.py says why not).
hooks:
	hook="$$(git rev-parse --git-path hooks)/commit-msg"; mkdir -p "$$(dirname "$$hook")" && \
	  printf '#!/bin/sh\nexec "$$(git rev-parse --show-toplevel)/tools/commit_msg.py" "$$1"\n' > "$$hook" && \
	  chmod +x "$$hook"

clean:
	rm -rf $(VENV) $(TRITON_VENV) .pytest_cache .ruff_cache
