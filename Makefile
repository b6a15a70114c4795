# Two commands: `make demo` (set up, encode/decode the bundled sample with the default model)
# and `make test` (set up, run the test suite). Both work on a fresh machine.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test eval-kodak clean

$(BIN)/codec: pyproject.toml
	$(PY) -m venv $(VENV)
	# CPU build of torch first: a bare `torch` requirement would pull a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	# setuptools and wheel in the venv: tests/test_install.py builds the wheel without build isolation
	$(BIN)/pip install -q 'setuptools>=68' wheel
	$(BIN)/pip install -q -e '.[test,cluster,research]'
	touch $(BIN)/codec

setup: $(BIN)/codec

demo: setup
	$(BIN)/python scripts/demo.py

test: setup
	$(BIN)/python -m pytest -q

eval-kodak: setup
	$(BIN)/python scripts/eval_kodak.py

clean:
	rm -rf $(VENV) out .pytest_cache
