# The two commands a newcomer needs:
#   make serve   set up .venv and run the server on ./var (FileStorage)
#   make test    set up .venv and run the whole suite (tests/ and docs/)

PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed
LISTEN ?= tcp:8080:interface=127.0.0.1
DATA ?= var
PYTEST_ARGS ?=

.PHONY: serve test venv bench docs buildout clean

venv: $(STAMP)

# The C extension (src/linksync/tracked/_speedups.c) is compiled by the
# editable install: a change to it reinstalls.
$(STAMP): setup.py setup.cfg src/linksync/tracked/_speedups.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	# postgresql: RelStorage and psycopg2 for the PostgreSQL tests of
	# scale-out (they also need Debian's postgresql server, else they are
	# skipped).
	$(BIN)/python -m pip install --quiet -e '.[test,zeo,docs,postgresql]'
	touch $@

serve: $(STAMP)
	$(BIN)/linksync serve --data $(DATA) --listen '$(LISTEN)'

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

docs: $(STAMP)
	$(BIN)/sphinx-build -W -b html docs docs/_build/html

buildout:
	test -x .buildout-env/bin/buildout || ($(PYTHON) -m venv .buildout-env && .buildout-env/bin/pip install --quiet 'zc.buildout>=3' wheel)
	.buildout-env/bin/buildout -N

clean:
	rm -rf $(VENV) .buildout-env bin parts eggs develop-eggs .installed.cfg docs/_build
