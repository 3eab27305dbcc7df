# `make demo`: set up and run the main job end to end on the embedded digits dataset.
# `make test`: set up and run the test suite. Each creates .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= demo_output

.PHONY: demo test bench clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

test: $(VENV)/.installed
	$(PY) -m pytest -q -n 2 --durations=15 tests

clean:
	rm -rf $(VENV) $(DEMO_DIR) *.egg-info
