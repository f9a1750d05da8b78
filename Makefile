# sdlib: the two commands are `make demo` and `make test` (see README.md).
# Each creates .venv if it is missing, installs what it needs (torch first, pinned), and is
# quick once set up.

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.sdlib-installed
export PATH := $(BIN):$(PATH)
export MPLBACKEND := Agg
export HF_HUB_OFFLINE ?= 1
DEMO_DIR ?= outputs/demo

.PHONY: all install test test-fast lint demo demo-notebooks figures notebooks clean

all: test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch is installed first, pinned, so that nothing pulls an unpinned (CUDA) build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .

test: install lint
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not notebook"

notebooks: install
	cd notebooks && for f in *.py; do $(BIN)/jupytext --quiet --to ipynb "$$f"; done

# The main job: text-to-3D on the CPU with the shipped ShapeZoo models (SDS, 300 steps, about
# 1.5 minutes on 2 idle cores): an mp4 turntable, a mesh and ground-truth metrics.
demo: install
	$(BIN)/python scripts/demo_generate.py --out $(DEMO_DIR)/generate
	@echo
	@echo "Turntable, mesh and metrics (final_metrics.json) are in $(DEMO_DIR)/generate:"
	@ls -1 $(DEMO_DIR)/generate

# Notebooks 10-12 headless, full parameters, on CPU (about 1 minute).
demo-notebooks: install
	@mkdir -p $(DEMO_DIR)/figures $(DEMO_DIR)/notebooks
	@for nb in 10_control_variates 11_stein_identity 12_score_distillation_2d; do \
		echo "== running notebooks/$$nb.ipynb"; \
		(cd notebooks && $(BIN)/papermill $$nb.ipynb ../$(DEMO_DIR)/notebooks/$$nb.ipynb \
			-k python3 --no-progress-bar -p device cpu \
			-p out_dir $(abspath $(DEMO_DIR))/figures) || exit 1; \
	done
	@echo
	@echo "Figures (PNG + JSON sidecar) are in $(DEMO_DIR)/figures:"
	@ls -1 $(DEMO_DIR)/figures
	@echo "Executed notebooks are in $(DEMO_DIR)/notebooks."

# Regenerate every committed figure from its sidecar (writes into figures/).
figures: install
	$(BIN)/python -m sdlib.figures regenerate --all

clean:
	rm -rf outputs .pytest_cache
