# citygen: `make demo` runs the main job on the shipped sample cities, `make test` runs the tests.
# Both create the virtual environment on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.citygen-installed
export WANDB_MODE ?= offline

.PHONY: install demo test test-all check lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# A bare `torch` pulls a multi-GB CUDA build; take the CPU build first when no torch is present.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: install
	$(BIN)/citygen demo

# `make test` runs the static checks first: a lint error, a type error or an upward import fails CI.
test: check
	WANDB_MODE=disabled $(BIN)/python -m pytest -q --nbmake tests notebooks

test-all: install
	WANDB_MODE=disabled $(BIN)/python -m pytest -q --nbmake -m "not network" tests notebooks

# lint and format (ruff), static types (mypy, config in pyproject), layer and no-circle contracts (import-linter)
check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

lint: check

bench: install
	$(BIN)/python benchmarks/bench_pipeline.py

clean:
	rm -rf $(VENV) data/processed runs
