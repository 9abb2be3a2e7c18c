# antisym: make train | make test | make lint | make bench | make kernel-report (+ figures, reproduce-table from mk/*.mk;
# the campaign and the lent-device targets from campaign/mk/*.mk)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Any train.py overrides for `make train`, e.g. ARGS="model=gated dataset=pmnist"
ARGS ?=
# pytest-xdist workers for `make test`: auto = one per CPU core, at most 4 (each holds torch, ~1 GB, and starts
# training subprocesses). Most tests wait on subprocesses and files, so two workers on a 2-core machine take the suite
# from ~9 to 5-8 minutes. TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= auto
# UPDATE=1: tables and figures go to the committed results/campaign/ and results/figures/, not results/local/
UPDATE ?=

.PHONY: help venv train test lint bench kernel-report

help:  ## this list
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-zA-Z0-9_-]+):.*## (.*)/  make \1\t\2/' | expand -t 32

# torch 2.14.1 / torchvision 0.29.1 are pinned to the wheels on this machine's disk (pip finds them offline).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[dev,launchers]"
	touch $@

venv: $(VENV)/.installed  ## create .venv and install the package (torch from the wheels on disk)

# Hydra overrides typed after ARGS= without quotes reach make as its own variables, never train.py: refuse them.
STRAY_OVERRIDES := $(strip $(foreach w,$(MAKEOVERRIDES),$(if $(or $(findstring .,$(firstword $(subst =, ,$(w)))),\
	$(filter model=% dataset=% optimizer=% trainer=% logger=% data=% paths=% tags=% +%,$(w))),$(w))))

train: venv  ## train one configuration: make train ARGS="model=gated dataset=pmnist"
	@if [ -n '$(STRAY_OVERRIDES)' ]; then echo "make train: $(STRAY_OVERRIDES) reached make, not train.py (make takes \
	key=value words as its own variables), so the run would silently train without them. Quote every override \
	inside ARGS: make train ARGS=\"$(strip $(ARGS) $(STRAY_OVERRIDES))\"" >&2; exit 2; fi
	@echo "make train: $(if $(ARGS),$(ARGS),the default experiment (AntisymmetricRNN, pixel MNIST, 50,000 iterations: hours on a CPU); the log names the iterations and the bar's ETA the time. A one-minute look: make train ARGS=debug=smoke)"
	$(PY) train.py $(ARGS)

test: venv  ## run the test suite (what CI runs), one worker per core
	$(PY) -m pytest -q -n $(TEST_WORKERS) --maxprocesses 4

lint: venv  ## ruff check and format check
	$(PY) -m ruff check antisym campaign scripts tests train.py hydra_plugins examples
	$(PY) -m ruff format --check antisym campaign scripts tests train.py hydra_plugins examples

bench: venv  ## time training iterations (scripts/bench.py) into results/
	$(PY) scripts/bench.py

# What the fused kernels need on an H100 / A100 (shared memory, registers, spills), compiled here without a GPU.
kernel-report: venv  ## compile-time resources of the fused kernels (no GPU needed)
	$(PY) scripts/kernel_report.py

-include mk/*.mk campaign/mk/*.mk
