# Two entry points, both doing all set-up from a bare python3:
#   make demo  - create .venv, install maskcli, run the pipeline on sample_data/
#   make test  - same set-up, then the whole test suite
PYTHON ?= python3
# bash with pipefail, so a failing first stage of a demo pipeline fails make.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	@echo "== maskcli pad sample_data/keras_guide.jsonl --padding post | maskcli inspect-mask" >&2
	$(BIN)/maskcli pad sample_data/keras_guide.jsonl --padding post | $(BIN)/maskcli inspect-mask --format table

test: $(STAMP)
	$(BIN)/python -m pytest -n 2

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_pad.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
