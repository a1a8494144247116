# The two commands a new user needs:
#   make demo   install, then build a demo data root and select from it
#   make test   install from scratch, then run the test suite
# torch is installed first, pinned, so pip takes the CPU build instead of a multi-GB CUDA one;
# the deploy extra lets the test suite check deploy/k8s against dagster-k8s's schemas, and the
# s3 extra lets it run the pipeline with outputs on S3 (a local moto server, from the test extra).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
NAG_HOME ?= $(CURDIR)/nag_home
export HF_HUB_OFFLINE := 1

.PHONY: install demo test bench-smoke bench ui

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,deploy,s3]'

demo: install
	$(BIN)/nag-select demo --home $(NAG_HOME)

test: install
	$(BIN)/python -m pytest

ui: install
	$(BIN)/nag-select ui --home $(NAG_HOME)

bench-smoke: install
	$(BIN)/python benchmarks/run_all.py --smoke

bench: install
	$(BIN)/python benchmarks/run_all.py
