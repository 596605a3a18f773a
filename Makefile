# The two commands a new user needs: `make run` and `make test`. Both build .venv themselves.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The hot paths that setup.py compiles into modules beside their sources (the detectors with mypyc, the
# office-markup scanner from C): rebuilt whenever one of these sources changes, so that an edited source
# never hides behind a stale .so.
NATIVE := $(VENV)/.native
NATIVE_SOURCES := setup.py $(shell sed -n 's/^    "\(.*\.py\)",$$/\1/p' setup.py) $(wildcard dlp/*/*.c)  # COMPILED, C
DATA_DIR ?= $(CURDIR)/.dlp-data

.PHONY: run test lint venv clean bench

$(STAMP): pyproject.toml scripts/find-python
	@PYTHON=$$(scripts/find-python) || exit 1; \
	  if [ ! -x $(PY) ]; then echo "creating $(VENV) with $$PYTHON"; $$PYTHON -m venv $(VENV); fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP) $(NATIVE)

$(NATIVE): $(STAMP) $(NATIVE_SOURCES)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(NATIVE)

venv: $(NATIVE)

run: $(NATIVE)
	$(VENV)/bin/dlp serve --data-dir $(DATA_DIR)

test: $(NATIVE)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(NATIVE)
	$(VENV)/bin/dlp bench

clean:
	rm -rf $(VENV) .dlp-data .pytest_cache build *.so detectors/*.so dlp/*.so dlp/*/*.so
