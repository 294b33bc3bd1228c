# One command to set up and run the main job, one to set up and run the tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv repro test bench sweep clean

$(BIN)/quickdraw: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	# Compile and cache the ndjson scanner now (numba, ~3 CPU-s), so the user's first fetch is as fast as the next.
	$(BIN)/python -c "import quickdraw.sources._kernel"
	# The raw path's kernels (simplification, raw scanner) likewise, for the first `fetch --format raw`.
	$(BIN)/python -c "import quickdraw.sources._raw_kernel"
	@touch $@

venv: $(BIN)/quickdraw

# The stages call bin/quickdraw, which finds $(BIN)/quickdraw by itself: nothing needs activating.
repro: venv
	$(BIN)/dvc repro

test: venv
	$(BIN)/pytest -q

bench: venv
	$(BIN)/python benchmarks/run_all.py

# The model study (issue 16): dvc exp run --queue over arch x hidden x augmentation, dvc queue start, then
# reports/sweep.md + sweep.png from dvc exp show --json. Needs a reproduced, committed pipeline; SWEEP adds
# options, e.g. make sweep SWEEP="--hidden 96 --aug off,on --set train.min_steps=600".
SWEEP ?=
sweep: venv
	$(BIN)/python scripts/sweep.py all $(SWEEP)

clean:
	rm -rf $(VENV) .pytest_cache
