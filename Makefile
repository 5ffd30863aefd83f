# causalbook: `make book` builds the executed HTML book, `make test` runs every test.
# Both create the virtualenv (.venv) and vendor MathJax when they are missing.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
JB     := $(VENV)/bin/jupyter-book
STAMP  := $(VENV)/.installed
LOCK   := requirements.lock
MATHJAX_VERSION := 3.2.2
MATHJAX := _vendor/mathjax/tex-chtml.js

.PHONY: venv lock mathjax reveal slides book test lint unit notebooks build packaging student student-check html-student ipynb ipynb-check browser lab pdf site chapter bench robustness clean

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
# (pyproject.toml) states ranges, so that people who pip-install it are not pinned. pip would
# byte-compile every module on one core (about a minute); compileall does it on every core. The .pyc
# files must exist: where PYTHONDONTWRITEBYTECODE is set (this project's machines set it), Python
# never writes them itself, and every kernel and test process would compile torch, scikit-learn and
# the rest from source again. The last line checks that they were written.
$(STAMP): pyproject.toml $(LOCK) lab/overrides.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile -r $(LOCK)
	$(PY) -m compileall -q -j 0 $(VENV)/lib >/dev/null || true
	$(PY) -c "import importlib.util as u, os, torch; assert os.path.exists(u.cache_from_source(torch.__file__)), 'no .pyc for torch'"
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	bash postBuild --settings-only "$$($(PY) -c 'from jupyterlab.commands import get_app_dir; print(get_app_dir())')/settings"
	touch $@

# Re-resolve the lock file from pyproject.toml's ranges in a throw-away virtualenv (torch stays at
# 2.13.0, the CPU build this project's machines carry). Review the diff before committing it.
lock:
	rm -rf _build/lockenv && $(PYTHON) -m venv _build/lockenv
	_build/lockenv/bin/pip install --quiet --disable-pip-version-check torch==2.13.0 '.[book,lab,lint,test]'
	( echo "# Exact versions that make, CI and Binder install; regenerate with 'make lock'."; \
	  echo "# pyproject.toml keeps ranges for people who install causalbook_lib on its own."; \
	  _build/lockenv/bin/pip freeze --exclude-editable | grep -v '^causalbook' | sed 's/^torch==\([0-9.]*\)+cpu$$/torch==\1/' ) > $(LOCK)
	rm -rf _build/lockenv

# MathJax 3 is served from a local copy (no CDN): fetched once from the npm registry into
# _vendor/mathjax, which Sphinx copies to _build/html/mathjax (html_extra_path). Not under _static:
# Jupyter Book adds every .js file under _static to every page, and the page needs only
# tex-chtml.js, which loads its other components itself when a page asks for them.
mathjax: $(MATHJAX)

$(MATHJAX):
	rm -rf _build/mathjax _static/mathjax && mkdir -p _build/mathjax _vendor
	cd _build/mathjax && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null && tar xzf mathjax-$(MATHJAX_VERSION).tgz
	rm -rf _vendor/mathjax && cp -r _build/mathjax/package/es5 _vendor/mathjax
	test -f $@

# reveal.js for the chapters' slide decks (_ext/slides.py), vendored like MathJax: fetched once from
# the npm registry into _vendor/reveal.js (its dist/ and licence). No CDN at view time.
REVEAL_VERSION := 5.2.1
REVEAL := _vendor/reveal.js/dist/reveal.js
reveal: $(REVEAL)

$(REVEAL):
	rm -rf _build/revealjs && mkdir -p _build/revealjs _vendor
	cd _build/revealjs && npm pack --silent reveal.js@$(REVEAL_VERSION) >/dev/null && tar xzf reveal.js-$(REVEAL_VERSION).tgz
	rm -rf _vendor/reveal.js && mkdir -p _vendor/reveal.js
	cp -r _build/revealjs/package/dist _build/revealjs/package/LICENSE _vendor/reveal.js/
	test -f $@

# One reveal.js deck per chapter in _build/html/slides, after `make book` (figures and glued values
# from its execution cache), loading reveal.js and MathJax from the book's own copies (_vendor is
# the book's html_extra_path); `make site` publishes them with the book.
slides: venv mathjax reveal
	@test -f _build/html/index.html || { echo "run make book first"; exit 1; }
	rm -rf _build/html/slides _build/html/reveal.js && cp -r _vendor/reveal.js _build/html/reveal.js
	$(PY) _ext/slides.py --out _build/html/slides --vendor-url ..
	@echo "The slide decks are in _build/html/slides"

# The chapters are executed first, two at a time on one thread each, into MyST-NB's execution cache
# (_ext/execute_book.py); the build then takes every chapter from the cache.
JOBS ?= 2
book: venv mathjax
	$(PY) _ext/execute_book.py --jobs $(JOBS)
	$(JB) build . --nitpick --keep-going
	@echo "The book is in _build/html/index.html"

# Everything CI runs: unit tests, nbval over every chapter, a clean book build with -n -W
# --keep-going, then the four checks that need the built book, all at once: the library as a wheel,
# the student edition, a real-browser check of the built pages, and Binder's JupyterLab in a real
# browser (each is a mix of pip, Sphinx, Chromium and waiting, so four side by side finish sooner
# than two pairs one after another; their timeouts are minutes, not seconds). --output-sync keeps
# each one's output together. Independent steps run side by side ($(JOBS) at a time); nbval and the
# build, which use every core, run alone.
SUBMAKE := $(MAKE) --no-print-directory -j$(JOBS) --output-sync=target
POST_JOBS ?= 4
test:
	$(SUBMAKE) venv mathjax reveal $(CFF_VENV)/.installed
	$(SUBMAKE) lint unit
	$(MAKE) --no-print-directory notebooks
	$(MAKE) --no-print-directory build
	$(MAKE) --no-print-directory -j$(POST_JOBS) --output-sync=target packaging student-check browser lab

# The workflows (schema, zizmor's security audit, both offline, and the project's own static checks:
# actions pinned by SHA, per-job permissions, the publish steps) and the citation file.
# cffconvert needs jsonschema 3, the book jsonschema 4: it gets a virtualenv of its own.
LINT_BIN ?= $(VENV)/bin
CFF_VENV := _build/cffenv
CFF_LOCK := requirements-cff.lock

$(CFF_VENV)/.installed: $(CFF_LOCK)
	test -x $(CFF_VENV)/bin/python || $(PYTHON) -m venv $(CFF_VENV)
	$(CFF_VENV)/bin/pip install --quiet --disable-pip-version-check -r $(CFF_LOCK)
	touch $@

lint: venv $(CFF_VENV)/.installed
	$(LINT_BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(LINT_BIN)/zizmor --offline .github/workflows
	$(PY) -m pytest tests/build/test_workflows.py -q -p no:cacheprovider
	$(CFF_VENV)/bin/cffconvert --validate -i CITATION.cff

# The unit tests on $(JOBS) pytest-xdist workers with one thread each (jobs x threads = cores).
unit: venv
	env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest tests/unit -q -n $(JOBS)

# nbval over every chapter, $(JOBS) chapters at a time on one thread each (tests/nbval_parallel.py).
notebooks: venv
	rm -rf _build/nbval && $(PY) -m tests.notebooks convert _build/nbval >/dev/null
	@echo "nbval: CAUSALBOOK_SEED=$(NBVAL_SEED) $(SECOND_PATH), $(JOBS) chapters at a time"
	env CAUSALBOOK_SEED=$(NBVAL_SEED) $(SECOND_PATH) $(PY) -m tests.nbval_parallel --jobs $(JOBS) _build/nbval

build: venv mathjax
	rm -rf _build/html _build/.doctrees _build/jupyter_execute _build/.jupyter_cache results/claims
	$(PY) _ext/execute_book.py --jobs $(JOBS)
	$(PY) -m pytest tests/build/test_book.py tests/build/test_figures.py -q

# The built pages and one chapter's slide deck in headless Chromium.
browser: venv reveal
	$(PY) -m pytest tests/build/test_browser.py tests/build/test_slides.py -q

# The library as people install it: pip resolves the wheel on Python 3.10/3.12/3.13, the plain
# notebooks' numbers and links match the HTML, and chapter 01's notebook runs from the wheel in a
# fresh virtualenv outside the repository (after `build`, whose executed chapters give the glue).
packaging: venv
	$(PY) -m pytest tests/build/test_python_versions.py tests/build/test_ipynb_wheel.py -q

# The plain notebooks for Colab, Binder's stable branch and downloads (needs the executed book).
ipynb: book
	rm -rf _build/ipynb && $(PY) _ext/ipynb_export.py --out _build/ipynb >/dev/null
	@echo "The plain notebooks are in _build/ipynb"

# Student and instructor editions of the plain notebooks, from the generator of `make ipynb`: the
# student notebooks have every exercise and no solution (no cell tagged `solution`), the instructor
# notebooks have the solutions. Needs the executed book for the glued numbers.
.PHONY: student student-notebooks html-student editions-check
# The student edition's spoiler checks: notebooks and a solution-free mini HTML build (not executed),
# and the student notebooks of chapters 01 and 02 run without their solutions.
# `make test` runs it after `build`: it makes both editions of every chapter from the executed book
# (exactly what `make student` makes) and checks them.
student-check: venv student-notebooks
	$(PY) -m pytest tests/build/test_student_edition.py -q

# Every chapter's student and instructor notebooks executed under nbval, strict, outside the
# repository (the two editions side by side, one thread each). The publish workflow runs it.
editions-check: book
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 CAUSALBOOK_EDITION_CHAPTERS=all $(PY) -m pytest tests/build/test_student_edition.py -q -k edition_notebooks_run

student: book
	$(MAKE) --no-print-directory student-notebooks
	@echo "Student notebooks in _build/student, instructor notebooks in _build/instructor"

student-notebooks: venv
	rm -rf _build/student _build/instructor
	$(PY) _ext/editions.py --student _build/student --instructor _build/instructor >/dev/null

# The solution-free HTML edition: the book's configuration plus sphinx-exercise's hide_solutions and
# _ext/hide_solutions.py (which hides the gated solutions that hide_solutions leaves in, and makes
# the download buttons offer the student notebooks). Reuses the main build's execution cache.
html-student: venv mathjax
	$(PY) _ext/editions.py html-config _build/student-config >/dev/null
	$(JB) build . --config _build/student-config/_config.yml --path-output _build/student-html --keep-going
	@echo "The student edition is in _build/student-html/_build/html/index.html"

# The whole book as one PDF: a single-page HTML build (from the execution cache of `make book`, so
# run that first), typeset by MathJax and printed by the system Chromium. Nothing is downloaded.
PDF := _build/pdf/causalbook.pdf
pdf: venv mathjax
	rm -rf _build/singlehtml
	$(JB) build . --builder singlehtml
	$(PY) _ext/book_pdf.py --html _build/singlehtml --out $(PDF)
	$(PY) -m pytest tests/build/test_pdf.py -q

# Exactly what the publish workflow deploys (after make book, make pdf, make ipynb and make slides):
# the HTML with the slide decks, the PDF and the plain notebooks, crawled offline (links, anchors,
# titles, no local paths).
site: venv
	@test -f _build/html/index.html || { echo "run make book first"; exit 1; }
	@test -f $(PDF) || { echo "run make pdf first"; exit 1; }
	@test -d _build/ipynb || { echo "run make ipynb first"; exit 1; }
	@test -d _build/html/slides || { echo "run make slides first"; exit 1; }
	rm -rf _build/site && cp -r _build/html _build/site
	rm -rf _build/site/.buildinfo _build/site/.doctrees
	cp $(PDF) _build/site/causalbook.pdf
	mkdir -p _build/site/ipynb && cp _build/ipynb/*.ipynb _build/site/ipynb/
	touch _build/site/.nojekyll
	$(PY) -m pytest tests/build/test_site.py -q
	@echo "The site is in _build/site"

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
	rm -rf _build results _static/mathjax _vendor
