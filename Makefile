# Two commands: `make run` (everything, with demo data) and `make test` (the whole suite).
# Production: `make serve` (no demo data, no DEBUG, no embedded servers; see README "Production").
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt | sha1sum | cut -c1-12)

.PHONY: install run serve test bench lint messages

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: install
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m portal.run

serve: install
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m portal.run --production

test: install
	$(PY) -m pytest

bench: install
	$(PY) -m bench all --small

# Types: the settings are read in demo mode, and the database URL is parsed, never connected to
# (tests/test_types.py runs the same check in the suite). makemigrations reads the embedded database.
TYPECHECK_ENV := XIAOER_DEMO=1 DATABASE_URL=postgresql://typecheck@127.0.0.1:1/none

lint: install
	$(VENV)/bin/ruff check .
	$(TYPECHECK_ENV) $(VENV)/bin/mypy
	XIAOER_DEMO=1 $(PY) manage.py makemigrations --check --dry-run

messages: install
	$(PY) manage.py makemessages -l zh_Hans -l en --ignore=.venv --ignore=.run --ignore=bench --ignore=tests --ignore="wecom_sandbox/*"
	$(PY) manage.py compilemessages --ignore=.venv
