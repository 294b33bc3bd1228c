# One command to set up and run the main job, one to set up and run the tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv repro test bench clean

$(BIN)/quickdraw: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

venv: $(BIN)/quickdraw

# The stages call bin/quickdraw, which finds $(BIN)/quickdraw by itself: nothing needs activating.
repro: venv
	$(BIN)/dvc repro

test: venv
	$(BIN)/pytest -q

bench: venv
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache
