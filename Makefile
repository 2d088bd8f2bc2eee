# Everything installs into .venv from scratch. Override TORCH for a CUDA build, e.g.
#   make install TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
# Changing TORCH (or pyproject.toml) redoes the install: .venv/.torch records the TORCH used.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_FILE := $(VENV)/.torch

.PHONY: install demo test lint bench gpu-check mutation clean FORCE

install: $(STAMP)

# Rewritten only when TORCH differs from the recorded value, so its date changes only then.
$(TORCH_FILE): FORCE
	@mkdir -p $(VENV)
	@if [ "$$(cat $@ 2>/dev/null)" != '$(TORCH)' ]; then printf '%s\n' '$(TORCH)' > $@; fi

# A changed TORCH reinstalls torch over the old one (pip keeps an installed torch of the
# same version, e.g. the CPU build when TORCH names a CUDA index).
$(STAMP): pyproject.toml $(TORCH_FILE)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(if $(wildcard $(STAMP)),$(if $(filter $(TORCH_FILE),$?),--force-reinstall)) $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/latprof profile zoo:dscnn --threads 1 --trials 20

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

bench: install
	$(BIN)/python bench/run_all.py

# On a GPU machine, after make install TORCH="torch==... --index-url .../whl/cu128":
gpu-check: install
	$(BIN)/python bench/gpu_check.py

# Mutation testing with mutmut (docs/testing.md); not part of `make test`, tens of minutes.
# MUTANTS narrows it to some mutant names, e.g. make mutation MUTANTS='latprof.stats.*';
# JOBS is the number of mutants run at once.
MUTANTS ?=
JOBS ?= 2
mutation: install
	$(BIN)/pip install --quiet -e '.[dev,mutation]'
	set -f; $(BIN)/mutmut run --max-children $(JOBS) $(MUTANTS)
	$(BIN)/mutmut results

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info mutants

FORCE:
