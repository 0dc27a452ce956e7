# Developer entry points of the toolchain itself. `make demo` and `make test` set up
# everything they need in .venv from a fresh clone (Python 3.11+, make).

PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
SOURCES := pyproject.toml Makefile.plugin $(shell find toolchain templates scripts -type f -not -name '*.pyc')
export PATH := $(BIN):$(PATH)

.PHONY: demo test lint bench install clean tools

# A non-editable install: templates and Makefile.plugin are found inside the package.
$(VENV)/.installed: $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --force-reinstall --no-deps .
	$(BIN)/python -m pip install --quiet '.[test]'
	touch $@

install: $(VENV)/.installed ## set up .venv with the toolchain and the test tools

demo: $(VENV)/.installed ## bootstrap, release, install and run the default template
	bash examples/demo.sh

lint: $(VENV)/.installed
	$(BIN)/ruff check toolchain tests $(wildcard bench)
	$(BIN)/ruff format --check toolchain tests $(wildcard bench)
	$(BIN)/mypy

tools: ## git, make, node, npm and rsync, which the tests run (apt-get as root)
	bash scripts/system-tools

test: lint tools ## lint, type-check and run the whole test suite (real-input tier included)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The [fast] extra (uv, google-re2) too, for the uv rows; BENCH_ARGS=--quick for a short run.
$(VENV)/.installed-fast: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet '.[fast]'
	touch $@

bench: $(VENV)/.installed-fast ## run the benchmark suite (bench/results/latest.json)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
