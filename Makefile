# Two entry points, both doing all set-up from a bare python3:
#   make demo  - create .venv, install maskcli, run the pipeline on sample_data/
#   make test  - same set-up, then lint (ruff), the layer contracts (import-linter)
#                and the whole test suite (which builds the docs too)
#   make docs  - same set-up, then the documentation site into site/ (mkdocs, strict)
PYTHON ?= python3
# bash with pipefail, so a failing first stage of a demo pipeline fails make.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

ENGINES_STAMP := $(VENV)/.installed-engines

.PHONY: demo test docs test-engines bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m compileall -q maskcli  # as a pip install does: every command starts sooner
	touch $(STAMP)

# The main job: pad the Keras guide's example, inspect its mask, audit the loss
# of a real model on it; then the same audit with a model that leaks (exit 1),
# and a trace of a transformer whose attention lets padding in (exit 1).
demo: $(STAMP)
	@mkdir -p out
	@echo "== maskcli pad sample_data/keras_guide.jsonl --padding post" >&2
	$(BIN)/maskcli pad sample_data/keras_guide.jsonl --padding post
	$(BIN)/maskcli pad sample_data/keras_guide.jsonl --padding post -o out/keras_guide.npz
	@echo "== maskcli inspect-mask out/keras_guide.npz" >&2
	$(BIN)/maskcli inspect-mask out/keras_guide.npz --format table
	@echo "== maskcli audit-loss out/keras_guide.npz" >&2
	$(BIN)/maskcli audit-loss out/keras_guide.npz --format table
	@echo "== maskcli audit-loss out/keras_guide.npz --arch embedding-conv  (a model that leaks)" >&2
	$(BIN)/maskcli audit-loss out/keras_guide.npz --arch embedding-conv --format table \
		|| echo "exit status $$?: padding leaks, as expected for embedding-conv" >&2
	@echo "== maskcli trace-mask --arch transformer-unmasked  (where padding enters)" >&2
	$(BIN)/maskcli trace-mask --arch transformer-unmasked --format table \
		|| echo "exit status $$?: padding enters at the attention, as expected for transformer-unmasked" >&2

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2

docs: $(STAMP)
	$(BIN)/mkdocs build --strict

# pad_arrow and pack_arrow on Ray Data in local mode: Ray is heavy (240 MB, a
# local cluster per run), so it has its own extra and target, which CI runs
# after `make test` (whose suite already covers datasets).
$(ENGINES_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,engines]'
	touch $(ENGINES_STAMP)

test-engines: $(ENGINES_STAMP)
	MASKCLI_TEST_ENGINES=1 $(BIN)/python -m pytest -n 0 tests/engines/test_ray_data.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_pad.py
	$(BIN)/python benchmarks/bench_parquet.py
	$(BIN)/python benchmarks/bench_audit.py
	$(BIN)/python benchmarks/bench_pack.py

clean:
	rm -rf $(VENV) build site *.egg-info .pytest_cache .hypothesis
