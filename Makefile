# The course's commands. `make lab` to study, `make test` to check everything.
# Both create .venv and install labs_lib (editable) with its dependencies on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup lab test bench notebooks solutions clean help

help:
	@echo "make lab        start JupyterLab on the course (http://127.0.0.1:8888, token login)"
	@echo "make test       run every test and execute every notebook (what CI runs)"
	@echo "make bench      benchmarks: simulators vs plain loops/torchsde/torchdiffeq, samplers, notebook times"
	@echo "make notebooks  regenerate notebooks/ from solutions/ (instructors)"
	@echo "make solutions  re-execute the solution notebooks, store outputs, regenerate (instructors)"

# Re-install whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10 or newer is needed"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

lab: setup
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=. notebooks/01_simulating_odes_and_sdes.ipynb

test: setup
	$(BIN)/python -m labs_lib.authoring --check
	$(BIN)/python -m pytest tests solutions --nbval --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider --durations=10

# The comparison packages are an optional extra; the benchmark says so when they are missing.
bench: setup
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev,bench]'
	$(BIN)/python -m benchmarks --write-readme

notebooks: setup
	$(BIN)/python -m labs_lib.authoring

solutions: setup
	$(BIN)/python -m labs_lib.authoring --execute-solutions
	$(BIN)/python -m labs_lib.authoring

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
