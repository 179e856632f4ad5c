# The course's commands. `make lab` to study, `make test` to check everything.
# Both create .venv and install labs_lib (editable) with its dependencies on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Extra arguments for `jupyter lab`, e.g. make lab LAB_ARGS="--no-browser --port=8890".
LAB_ARGS ?=
# Jupyter refuses to run as root unless told; containers and CI machines often are root.
ROOT_ARGS := $(if $(filter 0,$(shell id -u)),--allow-root)
# Seconds one notebook cell may run under nbval (nbval's default is 2000). The longest cell takes
# 50–75 s on a slow 2-core CPU (half of Lab 07's training); the limit bounds an occasional kernel-messaging stall (see
# tests/test_notebooks.py, CELL_TIMEOUT_S, the same limit for the student notebooks).
NBVAL_CELL_TIMEOUT ?= 120
# Test processes at once (pytest-xdist): `auto` is one per core. The notebooks are most of the run
# and each trains on one thread, so a second core nearly halves it. --dist loadscope hands out whole
# files: a notebook's nbval cells share one kernel and must run in order on one worker (the student
# notebooks, all in tests/test_notebooks.py, go to one worker too). TEST_JOBS=0: one process.
TEST_JOBS ?= auto
# What `make test` lints with ruff (rules in pyproject.toml; .pre-commit-config.yaml lints the same).
# Not notebooks/: generated from solutions/, whose stubs leave the solution's imports unused by design.
LINT_PATHS := labs_lib tests benchmarks browser_tests book examples solutions
# The browser that `make test-browser` drives; installed from Debian when it is missing.
CHROMIUM ?= /usr/bin/chromium

.PHONY: setup lab test test-browser test-browser-all stress bench bridges book notebooks solutions figures clean help

help:
	@echo "make lab        start JupyterLab on the course (http://127.0.0.1:8888, token login)"
	@echo "make test       run every test and execute every notebook (what CI runs)"
	@echo "make test-browser  a student's, a solution's and a slideshow's view in headless Chromium (installs it)"
	@echo "make test-browser-all  the same for every lab (a few minutes more)"
	@echo "make stress     execute every notebook N times (N=20, JOBS=1): stalls and time spread"
	@echo "make bridges    the optional libraries of the labs' closing sections (torchcfm, diffusers)"
	@echo "make book       the course's website in build/book/html/ (open index.html), from the stored outputs"
	@echo "make bench      benchmarks: simulators vs plain loops/torchsde/torchdiffeq, samplers, notebook times"
	@echo "make notebooks  regenerate notebooks/ from solutions/ (instructors)"
	@echo "make solutions  re-execute the solution notebooks, store outputs, regenerate (instructors)"
	@echo "make figures    course-map pictures docs/figures/NN_topic.png from the solutions' outputs"

# JupyterLab's defaults for this course's environment (jupyter/overrides.json): no news or
# update toast over the first screen of every lab. Students can still change both in Settings.
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.json
# A solution notebook's tab reads "solution · NN_….ipynb" (jupyter/custom/custom.css): student and
# solution versions share their file names, and their tabs would look alike.
LAB_STYLE := --LabApp.custom_css=True \
	--ServerApp.tornado_settings='{"static_custom_path": ["$(CURDIR)/jupyter/custom"]}'

# Re-install whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10 or newer is needed"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev]'
	touch $(STAMP)

$(LAB_OVERRIDES): jupyter/overrides.json $(STAMP)
	mkdir -p $(dir $@) && cp $< $@

setup: $(STAMP) $(LAB_OVERRIDES)

lab: setup
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=. $(LAB_STYLE) $(ROOT_ARGS) $(LAB_ARGS) notebooks/01_simulating_odes_and_sdes.ipynb

test: setup
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/python -m labs_lib.authoring --check
	$(BIN)/python -m pytest tests solutions --nbval --nbval-current-env --nbval-cell-timeout=$(NBVAL_CELL_TIMEOUT) \
		--nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider --durations=10 \
		-n $(TEST_JOBS) --dist loadscope

# A real browser: `make lab` in headless Chromium through Playwright (the optional `browser`
# extra, installed once). browser_tests/ lies outside tests/, so `make test` never runs it.
$(VENV)/.browser-stamp: $(STAMP)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev,browser]'
	touch $@

test-browser: setup $(VENV)/.browser-stamp book
	bash browser_tests/ensure_chromium.sh $(CHROMIUM)
	CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest browser_tests -m "not full" -p no:cacheprovider -v --durations=5

# The same tests for every lab: each student notebook, each solution run, each slideshow.
test-browser-all: setup $(VENV)/.browser-stamp book
	bash browser_tests/ensure_chromium.sh $(CHROMIUM)
	CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest browser_tests -p no:cacheprovider -v --durations=10

# Every notebook, solution and student version, N times: per-notebook time spread, and every
# kernel message that reached the client late (a stall). Exits non-zero on a stall or a failure.
stress: setup
	$(BIN)/python -m labs_lib.authoring.execution --runs $(N) --jobs $(JOBS)

# The libraries students meet next, for the closing sections of Labs 05, 09 and 10 and
# tests/test_bridges.py (both skip them when missing). torchcfm comes without its dependencies:
# the one it uses (POT) is in the extra, but it also asks for torchdyn, hence torchvision, which
# pins another PyTorch build than the course's.
$(VENV)/.bridges-stamp: $(STAMP)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev,bridges]'
	$(BIN)/python -m pip install --disable-pip-version-check -q --no-deps 'torchcfm>=1.0.7'
	touch $@

bridges: $(VENV)/.bridges-stamp

# The course's website from the solutions' stored outputs (nothing re-runs): build/book/html/index.html.
# The `book` extra (Sphinx, MyST-NB) is installed once; see labs_lib/authoring/book.py.
$(VENV)/.book-stamp: $(STAMP)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev,book]'
	touch $@

book: setup $(VENV)/.book-stamp
	$(BIN)/python -m labs_lib.authoring --book

# The comparison packages are an optional extra; the benchmark says so when they are missing.
bench: setup
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev,bench]'
	$(BIN)/python -m benchmarks --write-readme

notebooks: setup
	$(BIN)/python -m labs_lib.authoring

# After executing: the course-map figures and the run times (read from the fresh outputs and
# timestamps; nothing runs twice), then the student notebooks.
solutions: setup
	$(BIN)/python -m labs_lib.authoring --execute-solutions
	$(BIN)/python -m labs_lib.authoring --figures
	$(BIN)/python -m benchmarks --only course --write-readme
	$(BIN)/python -m labs_lib.authoring

figures: setup
	$(BIN)/python -m labs_lib.authoring --figures

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
