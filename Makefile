# causalbook: `make book` builds the executed HTML book, `make test` runs every test.
# Both create the virtualenv (.venv) and vendor MathJax when they are missing.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
JB     := $(VENV)/bin/jupyter-book
STAMP  := $(VENV)/.installed
LOCK   := requirements.lock
MATHJAX_VERSION := 3.2.2
MATHJAX := _static/mathjax/tex-chtml.js

.PHONY: venv lock mathjax book test unit notebooks build packaging ipynb ipynb-check browser lab chapter bench robustness clean

# A failed claim fails the run here (readers without this variable get a visible box instead).
export CAUSALBOOK_STRICT := 1
# The book is built with seed 0 on this CPU's native kernels. The nbval pass runs every chapter a
# second time with another seed on a second numeric path (portable ATen kernels, MKL's
# conditional-numerical-reproducibility mode), so CI sees two seeds and two summation orders.
CAUSALBOOK_SEED ?= 0
NBVAL_SEED ?= $(shell echo $$(( $(CAUSALBOOK_SEED) + 1 )))
SECOND_PATH := ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE
export CAUSALBOOK_SEED

venv: $(STAMP)

# The book, the tests and CI install the exact versions of the lock file; the library itself
# (pyproject.toml) states ranges, so that people who pip-install it are not pinned.
$(STAMP): pyproject.toml $(LOCK) lab/overrides.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r $(LOCK)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	bash postBuild --settings-only "$$($(PY) -c 'from jupyterlab.commands import get_app_dir; print(get_app_dir())')/settings"
	touch $@

# Re-resolve the lock file from pyproject.toml's ranges in a throw-away virtualenv (torch stays at
# 2.13.0, the CPU build this project's machines carry). Review the diff before committing it.
lock:
	rm -rf _build/lockenv && $(PYTHON) -m venv _build/lockenv
	_build/lockenv/bin/pip install --quiet --disable-pip-version-check torch==2.13.0 '.[book,lab,test]'
	( echo "# Exact versions that make, CI and Binder install; regenerate with 'make lock'."; \
	  echo "# pyproject.toml keeps ranges for people who install causalbook_lib on its own."; \
	  _build/lockenv/bin/pip freeze --exclude-editable | grep -v '^causalbook' | sed 's/^torch==\([0-9.]*\)+cpu$$/torch==\1/' ) > $(LOCK)
	rm -rf _build/lockenv

# MathJax 3 is served from a local copy (no CDN): fetched once from the npm registry.
mathjax: $(MATHJAX)

$(MATHJAX):
	rm -rf _build/mathjax && mkdir -p _build/mathjax _static
	cd _build/mathjax && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null && tar xzf mathjax-$(MATHJAX_VERSION).tgz
	rm -rf _static/mathjax && cp -r _build/mathjax/package/es5 _static/mathjax
	test -f $@

book: venv mathjax
	$(JB) build . --nitpick --keep-going
	@echo "The book is in _build/html/index.html"

# Everything CI runs, in order: unit tests, nbval over every chapter, a clean book build with
# -n -W --keep-going, the library as a wheel, a real-browser check of the built pages, and Binder's
# JupyterLab in a real browser.
test: venv mathjax unit notebooks build packaging browser lab

unit: venv
	$(PY) -m pytest tests/unit -q

notebooks: venv
	rm -rf _build/nbval && $(PY) -m tests.notebooks convert _build/nbval >/dev/null
	@echo "nbval: CAUSALBOOK_SEED=$(NBVAL_SEED) $(SECOND_PATH)"
	env CAUSALBOOK_SEED=$(NBVAL_SEED) $(SECOND_PATH) $(PY) -m pytest -p tests.nbval_timing --nbval-lax --nbval-current-env --nbval-cell-timeout=600 \
		-o testpaths= -q _build/nbval

build: venv mathjax
	rm -rf _build/html _build/.doctrees _build/jupyter_execute _build/.jupyter_cache results/claims
	$(PY) -m pytest tests/build/test_book.py -q

browser: venv
	$(PY) -m pytest tests/build/test_browser.py -q

# The library as people install it: pip resolves the wheel on Python 3.10/3.12/3.13, the plain
# notebooks' numbers and links match the HTML, and chapter 01's notebook runs from the wheel in a
# fresh virtualenv outside the repository (after `build`, whose executed chapters give the glue).
packaging: venv
	$(PY) -m pytest tests/build/test_python_versions.py tests/build/test_ipynb_wheel.py -q

# The plain notebooks for Colab, Binder's stable branch and downloads (needs the executed book).
ipynb: book
	rm -rf _build/ipynb && $(PY) _ext/ipynb_export.py --out _build/ipynb >/dev/null
	@echo "The plain notebooks are in _build/ipynb"

# Every plain notebook executed from the wheel in a fresh virtualenv outside the repository.
ipynb-check: book
	CAUSALBOOK_WHEEL_CHAPTERS=all $(PY) -m pytest tests/build/test_ipynb_wheel.py -q -k "wheel or install"

# Binder's JupyterLab in headless Chromium: the launch URL opens chapters as notebooks, Run All works.
lab: venv
	$(PY) -m pytest tests/build/test_lab.py -q

# Build a mini-book with one chapter (plus the bibliography) and print its warnings:
#   make chapter NB=03-gradients-and-ig
chapter: venv mathjax
	$(PY) -m tests.build.mini_book $(NB)

# Every chapter for seeds 0-4 on the native numeric path and seeds 0-2 on the second one, in reader
# mode, two at a time; writes results/robustness/summary.json (read by the status page).
robustness: venv
	$(PY) -m tests.robustness run --jobs 2

bench: venv
	for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf _build results _static/mathjax
